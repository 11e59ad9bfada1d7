"""nucleilib.backends: the Keras and XLA predict functions, the TensorFlow Lite predictor,
and loading a model folder for one backend.

A tiny untrained network (``tiny_unet`` of conftest.py) keeps this fast; no speed is asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_images, tiny_config

from nucleilib import backends, models
from nucleilib.errors import BackendUnavailableError, ModelNotFoundError, NucleiError
from nucleilib.export import save_tflite
from nucleilib.inference import predict_tiled
from nucleilib.segmenter import Segmenter


@pytest.fixture(scope="module")
def model_dir(tiny_unet, tflite_buffers, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with the float weights and a float16 TensorFlow Lite file (no int8 one)."""
    folder = tmp_path_factory.mktemp("model")
    models.save_model(tiny_unet, tiny_config(), folder, float16=False)
    save_tflite(tflite_buffers["float16"], folder, "float16")
    return folder


def keras_out(model, batch: np.ndarray) -> np.ndarray:
    return np.asarray(model(batch, training=False))


# --------------------------------------------------------------------------- Keras and XLA


def test_keras_predict_fn_matches_the_model(tiny_unet) -> None:
    batch = np.stack(smooth_images(2, (64, 96), seed=6))
    out = backends.keras_predict_fn(tiny_unet)(batch)
    assert isinstance(out, np.ndarray) and out.shape == (2, 64, 96, 2)
    np.testing.assert_allclose(out, keras_out(tiny_unet, batch), atol=1e-6)


def test_xla_predict_fn_matches_keras(tiny_unet) -> None:
    fn = backends.keras_predict_fn(tiny_unet, jit_compile=True)
    for shape in [(64, 96), (48, 48)]:  # a new shape is compiled again
        batch = np.stack(smooth_images(2, shape, seed=7))
        np.testing.assert_allclose(fn(batch), keras_out(tiny_unet, batch), atol=1e-4)


# --------------------------------------------------------------------------- TensorFlow Lite


def test_one_predictor_serves_many_input_sizes(tiny_unet, tflite_buffers) -> None:
    fn = backends.tflite_predict_fn(tflite_buffers["float32"], num_threads=1)
    assert isinstance(fn, backends.TFLitePredictor) and fn.channels == 3
    for shape in [(1, 64, 64), (3, 48, 80), (1, 256, 128), (1, 64, 64)]:
        batch = np.random.default_rng(sum(shape)).random(shape + (3,), dtype=np.float32)
        out = fn(batch)
        assert out.shape == shape + (2,)
        np.testing.assert_allclose(out, keras_out(tiny_unet, batch), atol=1e-4)
    assert len(fn._interpreters) == 3  # one interpreter per distinct shape


def test_the_interpreter_cache_keeps_the_most_recent_shapes(tflite_buffers) -> None:
    fn = backends.TFLitePredictor(tflite_buffers["float32"], num_threads=1, cache_size=2)
    for side in (32, 48, 32, 64):
        fn(np.zeros((1, side, side, 3), np.float32))
    assert list(fn._interpreters) == [(1, 32, 32, 3), (1, 64, 64, 3)]


def test_tflite_is_a_predict_fn_for_tiling_and_the_segmenter(tiny_unet, tflite_buffers) -> None:
    config = tiny_config()
    image = smooth_images(1, (300, 410), seed=5)[0]
    fn = backends.tflite_predict_fn(tflite_buffers["float32"])
    tiled = predict_tiled(fn, image, tile=128)
    np.testing.assert_allclose(tiled, predict_tiled(backends.keras_predict_fn(tiny_unet), image, tile=128), atol=1e-4)
    rgb = (image * 255).astype(np.uint8)
    segmenter = Segmenter(fn, config, backend="tflite-float32", tile=128)
    probs = segmenter.probabilities(rgb)
    assert probs.shape == (300, 410, 2)
    reference = Segmenter.from_keras(tiny_unet, config, tile=128).probabilities(rgb)
    np.testing.assert_allclose(probs, reference, atol=1e-4)
    assert segmenter.labels(probs).shape == (300, 410)


def test_predictor_errors(tflite_buffers, tmp_path: Path) -> None:
    fn = backends.tflite_predict_fn(tflite_buffers["float32"])
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        fn(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="channel"):
        fn(np.zeros((1, 32, 32, 1), np.float32))
    with pytest.raises(ValueError, match="multiples of 16"):
        fn(np.zeros((1, 30, 30, 3), np.float32))
    with pytest.raises(ValueError, match="empty batch"):
        fn(np.zeros((0, 32, 32, 3), np.float32))
    with pytest.raises(ModelNotFoundError, match="nothing.tflite"):
        backends.tflite_predict_fn(tmp_path / "nothing.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"not a flat buffer at all")
    with pytest.raises(ValueError, match="junk.tflite"):
        backends.tflite_predict_fn(tmp_path / "junk.tflite")
    with pytest.raises(ValueError, match="num_threads"):
        backends.tflite_predict_fn(tflite_buffers["float32"], num_threads=0)


# --------------------------------------------------------------------------- model folders and backends


def test_backends_load_from_a_model_folder(tiny_unet, model_dir: Path) -> None:
    assert (model_dir / "model-float16.tflite").is_file()
    batch = np.stack(smooth_images(1, (64, 64), seed=9))
    reference = keras_out(tiny_unet, batch)
    for backend, tolerance in [("keras", 1e-5), ("xla", 1e-4), ("tflite-float16", 1e-2)]:
        fn, config = backends.load_predict_fn(model_dir, backend)
        assert config == tiny_config()
        assert np.abs(fn(batch) - reference).max() < tolerance, backend


def test_every_backend_segments_through_the_segmenter(model_dir: Path) -> None:
    image = (smooth_images(1, (70, 90), seed=10)[0] * 255).astype(np.uint8)
    keras = Segmenter.from_pretrained(model_dir).probabilities(image)
    for backend in ("xla", "tflite-float16"):
        segmenter = Segmenter.from_pretrained(model_dir, backend=backend, num_threads=1)
        assert segmenter.backend == backend and segmenter.name == model_dir.name
        assert np.abs(segmenter.probabilities(image) - keras).max() < 1e-2, backend


def test_auto_takes_the_tflite_model_the_folder_has(model_dir: Path) -> None:
    # The folder ships float16 only: auto takes it whatever the CPU.
    segmenter = Segmenter.from_pretrained(model_dir, backend="auto", num_threads=1)
    assert segmenter.backend == "tflite-float16"
    assert backends.default_backend(model_dir, cpu_flags=["avx512_vnni"]) == "tflite-float16"


def test_a_missing_backend_file_is_named_in_the_error(model_dir: Path) -> None:
    with pytest.raises(BackendUnavailableError) as caught:
        backends.load_predict_fn(model_dir, "tflite-int8")
    message = str(caught.value)
    assert str(model_dir / "model-int8.tflite") in message and "\n" not in message
    assert "model-float16.tflite" in message  # what is there instead
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, ValueError)
    assert isinstance(caught.value, ModelNotFoundError) and isinstance(caught.value, NucleiError)


def test_a_tflite_file_with_the_wrong_channels_is_refused(tiny_unet, tmp_path: Path) -> None:
    from nucleilib.export import to_tflite

    models.save_model(tiny_unet, tiny_config(), tmp_path, float16=False)
    grey = models.build_unet(models.ModelConfig(base_filters=2, depth=2, in_channels=1))
    save_tflite(to_tflite(grey, "float16"), tmp_path, "float16")
    with pytest.raises(ValueError, match="channel"):
        backends.load_predict_fn(tmp_path, "tflite-float16")


def test_backend_and_folder_errors(model_dir: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        backends.load_predict_fn(model_dir, "onnx")
    with pytest.raises(ModelNotFoundError, match="unknown model"):
        backends.load_predict_fn("no-such-model", "keras")
    with pytest.raises(ValueError, match="unknown TensorFlow Lite kind"):
        backends.tflite_filename("bfloat16")
    assert backends.tflite_filename("int8") == "model-int8.tflite"
    assert backends.BACKENDS == ("keras", "xla", "tflite-float16", "tflite-int8")
    assert {b.removeprefix("tflite-") for b in backends.BACKENDS if b.startswith("tflite-")} <= set(
        backends.TFLITE_KINDS
    )
