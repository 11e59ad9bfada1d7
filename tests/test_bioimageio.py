"""The bioimage.io model package (nucleilib.bioimageio, `nuclei export --bioimageio`): written by us,
validated by bioimage.io's own packages, and its test output reproduced by bioimageio.core's
preprocessing with each of its weight formats."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from nucleilib import bioimageio, cli

spec = pytest.importorskip("bioimageio.spec", reason="the bioimageio extra is not installed")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return bioimageio.export_package("unet-dsb2018", tmp_path_factory.mktemp("bioimageio") / "unet.zip").path


def _adapter_class(weights: str) -> type:
    """A bioimageio.core model adapter running the package's own weights file on TensorFlow 2.14
    (core 0.11's adapters need Keras 3)."""
    import tensorflow as tf
    from bioimageio.core._model_adapter import LocalModelAdapter

    class TensorFlow2Adapter(LocalModelAdapter):
        def _parse_devices(self, devices):
            return (None,)

        def _init_model_on_device(self, device):
            source = Path(str(getattr(self._model_descr.weights, weights).source.absolute()))
            if weights == "keras_hdf5":
                return tf.keras.models.load_model(source, compile=False)
            folder = source.parent / "unzipped-savedmodel"
            with zipfile.ZipFile(source) as archive:
                archive.extractall(folder)
            return tf.saved_model.load(str(folder)).signatures["serving_default"]

        def _forward_impl(self, device, model, input_arrays):
            if weights == "keras_hdf5":
                return [np.asarray(model(input_arrays[0], training=False))]
            outputs = model(**{bioimageio.INPUT_ID: tf.constant(input_arrays[0])})
            return [outputs[bioimageio.OUTPUT_ID].numpy()]

        def _cleanup_pre_model_deletion(self, device, model):
            return None

        def _cleanup_post_model_deletion(self, device):
            return None

    return TensorFlow2Adapter


@pytest.mark.slow
def test_the_package_passes_bioimageio_spec_validation(package: Path) -> None:
    summary = bioimageio.validate_package(package)
    assert summary.status == "valid-format", bioimageio.validation_problems(summary)
    assert bioimageio.validation_problems(summary) == []
    with zipfile.ZipFile(package) as archive:
        names = set(archive.namelist())
        rdf: dict[str, Any] = yaml.safe_load(archive.read("rdf.yaml"))
    assert {"rdf.yaml", *bioimageio.FILES.values()} == names
    assert rdf["inputs"][0]["preprocessing"][0]["kwargs"] == {
        "axes": ["y", "x", "channel"],
        "min_percentile": 1.0,
        "max_percentile": 99.8,
    }
    assert set(rdf["weights"]) == {"tensorflow_saved_model_bundle", "keras_hdf5"}


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["tensorflow_saved_model_bundle", "keras_hdf5"])
def test_core_preprocessing_and_each_weight_format_reproduce_the_test_output(
    package: Path, weights: str, tmp_path: Path
) -> None:
    from bioimageio.core import create_prediction_pipeline
    from bioimageio.core.digest_spec import get_test_inputs, get_test_outputs
    from bioimageio.spec import load_description

    description = load_description(str(bioimageio.unpack(package, tmp_path / "package") / "rdf.yaml"))
    adapter = _adapter_class(weights)(model_description=description, devices=None)
    pipeline = create_prediction_pipeline(description, model_adapter=adapter)
    predicted = pipeline.predict_sample_without_blocking(get_test_inputs(description))
    expected = get_test_outputs(description)
    got = predicted.members[bioimageio.OUTPUT_ID].data.to_numpy()
    want = expected.members[bioimageio.OUTPUT_ID].data.to_numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)
    # Not a blank map: the synthetic sample's nuclei are found.
    assert 0.05 < float((want[..., 0] > 0.5).mean()) < 0.6


def test_an_existing_package_is_kept_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "mine.zip"
    target.write_bytes(b"the user's file")
    with pytest.raises(bioimageio.PackageError, match="mine.zip: exists; pass --overwrite"):
        bioimageio.export_package("unet-dsb2018", target)
    assert target.read_bytes() == b"the user's file"


def test_a_bright_background_sample_is_refused(tmp_path: Path) -> None:
    bright = 255 - bioimageio.synthetic_sample(64)
    with pytest.raises(bioimageio.PackageError, match="bright background"):
        bioimageio.export_package("unet-dsb2018", tmp_path / "p.zip", sample=bright)
    assert not list(tmp_path.iterdir())


def test_the_command_names_a_target_that_is_not_a_zip(tmp_path: Path, capsys) -> None:
    assert cli.main(["export", "--bioimageio", str(tmp_path / "p.txt")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "p.txt: a bioimage.io package is a .zip file" in err
