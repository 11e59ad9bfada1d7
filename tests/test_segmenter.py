"""nucleilib.segmenter: the Segmenter (on stand-in networks, a tiny U-Net and the shipped
model), labels from probabilities, evaluation, and the classical baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.draw import disk

from nucleilib import models
from nucleilib.data import Sample
from nucleilib.errors import BackendUnavailableError, DatasetError, ModelNotFoundError, NucleiError
from nucleilib.inference import METHODS
from nucleilib.preprocess import preprocess
from nucleilib.segmenter import (
    AUTO_TOLERANCE,
    SEPARATION_METHODS,
    Segmenter,
    classical_labels,
    evaluate_classical,
    evaluate_model,
    labels_from_probabilities,
)

#: A one-output model whose "network" is the identity on channel 0: bright pixels are nuclei.
BRIGHT = models.ModelConfig(outputs=("foreground",), invert_bright=False, separation="components", min_size=4)
#: (centre_y, centre_x, radius) of three separate discs.
DISCS = ((12, 14, 6), (30, 50, 8), (50, 20, 7))


def bright_channel(batch: np.ndarray) -> np.ndarray:
    """A stand-in network: the foreground probability is the preprocessed channel 0."""
    assert batch.ndim == 4 and batch.dtype == np.float32
    assert batch.shape[1] % 16 == 0 and batch.shape[2] % 16 == 0, batch.shape
    return batch[..., :1]


def disc_grey(shape: tuple[int, int] = (64, 72), discs=DISCS, *, seed: int = 0) -> np.ndarray:
    """A grey uint8 image of bright discs on a dark, slightly noisy background."""
    image = np.full(shape, 20, np.uint8)
    for cy, cx, r in discs:
        image[disk((cy, cx), r, shape=shape)] = 200
    noise = np.random.default_rng(seed).integers(0, 6, shape, dtype=np.uint8)
    return image + noise


@pytest.fixture
def segmenter() -> Segmenter:
    return Segmenter(bright_channel, BRIGHT, name="stand-in")


# --------------------------------------------------------------------------- segment


def test_segment_finds_each_disc_of_an_image(segmenter: Segmenter) -> None:
    image = disc_grey()
    labels = segmenter.segment(image)
    assert labels.shape == image.shape and np.issubdtype(labels.dtype, np.integer)
    assert labels.max() == len(DISCS) and labels.min() == 0
    for cy, cx, _ in DISCS:
        assert labels[cy, cx] > 0
    assert len({labels[cy, cx] for cy, cx, _ in DISCS}) == len(DISCS)
    assert labels[0, 0] == 0


@pytest.mark.parametrize("shape", [(17, 23), (37, 53), (64, 9), (130, 301), (257, 64)])
def test_segment_keeps_odd_sizes_and_tiles_large_images(shape: tuple[int, int]) -> None:
    seen: list[tuple[int, ...]] = []

    def recording(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape)
        return bright_channel(batch)

    segmenter = Segmenter(recording, BRIGHT, tile=80)
    discs = ((shape[0] // 2, shape[1] // 2, max(2, min(shape) // 4)),)
    image = disc_grey(shape, discs)
    probs = segmenter.probabilities(image)
    assert probs.shape == (*shape, 1) and probs.dtype == np.float32
    labels = segmenter.segment(image)
    assert labels.shape == shape
    assert labels[shape[0] // 2, shape[1] // 2] > 0
    assert all(h <= 80 and w <= 80 for _, h, w, _ in seen)  # tiled at ``tile``, never larger


def test_grey_rgb_rgba_and_16_bit_images_give_the_same_labels(segmenter: Segmenter) -> None:
    grey = disc_grey()
    reference = segmenter.segment(grey)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    alpha = np.random.default_rng(1).integers(0, 256, grey.shape, dtype=np.uint8)
    variants = {
        "grey (H, W, 1)": grey[..., None],
        "RGB": rgb,
        "RGBA": np.dstack([rgb, alpha]),
        "grey + alpha": np.dstack([grey, alpha]),
        "grey uint16": grey.astype(np.uint16) * 257,
        "RGB uint16": rgb.astype(np.uint16) * 257,
    }
    for name, image in variants.items():
        np.testing.assert_array_equal(segmenter.segment(image), reference, err_msg=name)
    floating = segmenter.segment(grey.astype(np.float64) / 255)
    assert floating.max() == reference.max()


def test_the_image_given_is_not_modified(segmenter: Segmenter) -> None:
    image = np.dstack([disc_grey()] * 3)
    before = image.copy()
    segmenter.segment(image)
    np.testing.assert_array_equal(image, before)


def test_an_image_file_path_gives_the_same_labels_as_its_array(segmenter: Segmenter, tmp_path: Path) -> None:
    import tifffile

    grey = disc_grey()
    reference = segmenter.segment(grey)
    Image.fromarray(np.dstack([grey] * 3)).save(tmp_path / "rgb.png")
    Image.fromarray(grey).save(tmp_path / "grey.png")
    tifffile.imwrite(tmp_path / "deep.tif", grey.astype(np.uint16) * 257)
    for name in ("rgb.png", "grey.png", "deep.tif"):
        np.testing.assert_array_equal(segmenter.segment(tmp_path / name), reference, err_msg=name)
    np.testing.assert_array_equal(segmenter.segment(str(tmp_path / "rgb.png")), reference)


def test_a_missing_or_broken_file_is_a_dataset_error_naming_it(segmenter: Segmenter, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="absent.png"):
        segmenter.segment(tmp_path / "absent.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DatasetError, match="notes.png"):
        segmenter.segment(tmp_path / "notes.png")
    with pytest.raises(DatasetError, match="shape"):
        segmenter.segment(np.zeros((4, 4, 4, 3), np.uint8))


def test_labels_and_measure(segmenter: Segmenter) -> None:
    probs = segmenter.probabilities(disc_grey())
    labels = segmenter.labels(probs)
    np.testing.assert_array_equal(labels, labels_from_probabilities(probs, BRIGHT))
    table = segmenter.measure(labels)
    assert list(table["label"]) == [1, 2, 3]
    assert set(table.columns) >= {"label", "area", "centroid_y", "centroid_x"}
    areas = sorted(table["area"])
    expected = sorted(int(disk((40, 40), r, shape=(80, 80))[0].size) for _, _, r in DISCS)
    assert all(abs(a - e) <= 0.15 * e for a, e in zip(areas, expected))


def test_borders_falls_back_to_watershed_without_a_border_map() -> None:
    probs = Segmenter(bright_channel, BRIGHT).probabilities(disc_grey())
    np.testing.assert_array_equal(
        labels_from_probabilities(probs, BRIGHT, "borders"), labels_from_probabilities(probs, BRIGHT, "watershed")
    )
    with pytest.raises(ValueError, match="choose one of components, watershed, borders"):
        labels_from_probabilities(probs, BRIGHT, "magic")


def test_separation_methods_are_the_inference_methods() -> None:
    assert SEPARATION_METHODS == METHODS == ("components", "watershed", "borders")


# --------------------------------------------------------------------------- construction and settings


def test_with_settings_changes_a_copy_only(segmenter: Segmenter) -> None:
    changed = segmenter.with_settings(threshold=0.3, border_threshold=0.7, separation="watershed", min_size=0)
    assert (changed.config.threshold, changed.config.border_threshold) == (0.3, 0.7)
    assert (changed.config.separation, changed.config.min_size) == ("watershed", 0)
    assert segmenter.config == BRIGHT
    assert changed.predict_fn is segmenter.predict_fn
    assert (changed.name, changed.backend, changed.tile) == (segmenter.name, segmenter.backend, segmenter.tile)
    assert segmenter.with_settings().config == BRIGHT  # None keeps the model's settings
    assert segmenter.with_settings(threshold=0.95).segment(disc_grey()).max() == len(DISCS)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.0}, "threshold"),
        ({"threshold": 1.5}, "threshold must be between 0 and 1"),
        ({"threshold": "high"}, "threshold must be a number"),
        ({"threshold": float("nan")}, "threshold"),
        ({"border_threshold": -0.1}, "border_threshold"),
        ({"separation": "magic"}, "choose one of components, watershed, borders"),
        ({"min_size": -1}, "min_size must be .*got -1"),
        ({"min_size": 2.5}, "min_size"),
        ({"min_size": "big"}, "min_size"),
        ({"colour_input": "lab"}, "colour input"),
    ],
)
def test_with_settings_refuses_bad_values(segmenter: Segmenter, settings: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        segmenter.with_settings(**settings)


def test_colour_input_decides_what_the_network_sees_of_a_stained_image() -> None:
    # Purple (haematoxylin-like) discs on a pale pink background, as stained tissue is.
    image = np.full((64, 72, 3), (235, 180, 215), np.uint8)
    for cy, cx, r in DISCS:
        image[disk((cy, cx), r, shape=image.shape[:2])] = (90, 40, 150)
    seen: list[np.ndarray] = []

    def recording(batch: np.ndarray) -> np.ndarray:
        seen.append(batch[0, :64, :72].copy())
        return batch[..., :1]

    stained = models.ModelConfig(outputs=("foreground",), separation="components", min_size=4)
    for colour_input in ("rgb", "hematoxylin"):
        labels = Segmenter(recording, stained).with_settings(colour_input=colour_input).segment(image)
        assert labels.max() == len(DISCS)
    np.testing.assert_allclose(seen[0], preprocess(image), atol=1e-6)
    np.testing.assert_allclose(seen[1], preprocess(image, colour_input="hematoxylin"), atol=1e-6)
    assert not np.allclose(seen[0], seen[1])


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="callable"):
        Segmenter("model", BRIGHT)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tile must be a positive multiple of 16"):
        Segmenter(bright_channel, BRIGHT, tile=100)
    with pytest.raises(ValueError, match="tile must be a multiple of 16 above 64"):
        Segmenter(bright_channel, BRIGHT, tile=64)  # the tiles' overlap would not fit
    assert Segmenter(bright_channel, BRIGHT, tile=80).tile == 80


def test_repr_names_the_model_backend_and_method(segmenter: Segmenter) -> None:
    text = repr(segmenter)
    assert "stand-in" in text and "custom" in text and "components" in text


def test_an_unknown_model_name_lists_the_shipped_models() -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        Segmenter.from_pretrained("no-such-model")
    message = str(caught.value)
    assert "no-such-model" in message and "\n" not in message
    shipped = models.available_models()
    assert shipped and all(name in message for name in shipped)
    assert isinstance(caught.value, NucleiError)


def test_an_unknown_backend_lists_the_backends() -> None:
    with pytest.raises(ValueError, match="choose one of keras, xla, tflite-float16, tflite-int8"):
        Segmenter.from_pretrained("unet-dsb2018", backend="onnx")


@pytest.mark.parametrize("backend", ["tflite-int8", "tflite-float16"])
def test_a_tflite_backend_without_its_file_is_unavailable(tmp_path: Path, backend: str) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text(models.ModelConfig().to_json())
    kind = backend.removeprefix("tflite-")
    with pytest.raises(BackendUnavailableError) as caught:
        Segmenter.from_folder(folder, backend=backend)
    message = str(caught.value)
    assert str(folder / f"model-{kind}.tflite") in message and backend in message
    assert isinstance(caught.value, ModelNotFoundError) and isinstance(caught.value, NucleiError)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, models.ModelConfig, Path]:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    config = models.ModelConfig(base_filters=2, depth=2, min_size=1)
    model = models.build_unet(config)
    folder = tmp_path_factory.mktemp("tiny") / "tiny-unet"
    models.save_model(model, config, folder, float16=False)
    return model, config, folder


def test_a_keras_model_in_memory_and_its_saved_folder_agree(tiny) -> None:
    from nucleilib.backends import keras_predict_fn
    from nucleilib.inference import predict_tiled
    from nucleilib.preprocess import preprocess

    model, config, folder = tiny
    image = np.dstack([disc_grey((50, 70))] * 3)
    in_memory = Segmenter.from_keras(model, config, name="tiny")
    loaded = Segmenter.from_folder(folder)
    assert (loaded.name, loaded.backend, loaded.config) == ("tiny-unet", "keras", config)
    probs = in_memory.probabilities(image)
    assert probs.shape == (50, 70, 2)
    np.testing.assert_allclose(loaded.probabilities(image), probs, atol=1e-6)
    by_hand = predict_tiled(
        keras_predict_fn(model), preprocess(image, sigma=config.sigma, invert_bright=config.invert_bright)
    )
    np.testing.assert_allclose(probs, by_hand, atol=1e-6)
    assert loaded.segment(image).shape == (50, 70)
    xla = Segmenter.from_keras(model, config, jit_compile=True)
    assert xla.backend == "xla"
    np.testing.assert_allclose(xla.probabilities(image), probs, atol=1e-4)


# --------------------------------------------------------------------------- evaluate_model


def test_evaluate_model_scores_every_usable_method(segmenter: Segmenter) -> None:
    image = disc_grey()
    truth = np.zeros(image.shape, np.uint16)
    for k, (cy, cx, r) in enumerate(DISCS, start=1):
        truth[disk((cy, cx), r, shape=image.shape)] = k
    samples = [Sample("a", np.dstack([image] * 3), truth), Sample("b", np.dstack([image] * 3), truth)]
    frame, kept = evaluate_model(segmenter, None, samples, keep_probabilities=True)
    assert sorted(set(frame["method"])) == ["components", "watershed"]  # no border map: no "borders"
    assert len(frame) == 4 and (frame["dsb_score"] > 0.8).all() and (frame["predict_s"] > 0).all()
    assert sorted(kept) == ["a", "b"] and kept["a"].shape == (*image.shape, 1)
    with pytest.raises(ValueError, match="config"):
        evaluate_model(object(), None, samples)


# --------------------------------------------------------------------------- the shipped model


@pytest.mark.realdata
def test_the_shipped_model_gives_the_same_labels_through_segmenter_and_keras(real_data_root: Path) -> None:
    from nucleilib.backends import keras_predict_fn
    from nucleilib.data import read_sample, sample_folders
    from nucleilib.inference import predict_tiled
    from nucleilib.preprocess import preprocess

    sample = read_sample(sample_folders(real_data_root)[0])
    segmenter = Segmenter.from_pretrained("unet-dsb2018", diameter=None)  # one pass at the image's own scale
    labels = segmenter.segment(sample.image)
    assert labels.shape == sample.image.shape[:2] and labels.max() > 0

    model, config = models.load_model("unet-dsb2018")
    x = preprocess(sample.image, sigma=config.sigma, invert_bright=config.invert_bright, grey=config.in_channels == 1)
    probs = predict_tiled(keras_predict_fn(model), x, tile=512)
    np.testing.assert_array_equal(labels, labels_from_probabilities(probs, config))
    path = next((real_data_root / sample.image_id / "images").glob("*.png"))
    np.testing.assert_array_equal(segmenter.segment(path), labels)


def test_the_shipped_model_rescales_to_its_reference_diameter_by_default(real_data_root: Path) -> None:
    from nucleilib.data import read_sample, sample_folders

    sample = read_sample(sample_folders(real_data_root)[0])
    segmenter = Segmenter.from_pretrained("unet-dsb2018")
    assert segmenter.diameter == "auto" and segmenter.config.diameter == 24.0
    result = segmenter.segment_instances(sample.image)
    assert result.labels.shape == sample.image.shape[:2] and result.labels.max() > 0
    # the working scale brings the estimated nuclei to about 24 pixels (within the auto tolerance)
    assert np.isfinite(result.diameter)
    assert abs(np.log(result.scale * result.diameter / 24.0)) <= np.log(AUTO_TOLERANCE) + 1e-6


# --------------------------------------------------------------------------- classical baseline


def _two_nuclei(bright_background: bool = False) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros((80, 96), np.uint16)
    labels[disk((25, 25), 10)] = 1
    labels[disk((55, 70), 12)] = 2
    image = np.where(labels > 0, 190, 25).astype(np.uint8)
    if bright_background:
        image = 255 - image
    noise = np.random.default_rng(0).integers(0, 12, image.shape, dtype=np.uint8)
    return np.stack([image + noise] * 3, axis=-1), labels


@pytest.mark.parametrize("bright_background", [False, True])
def test_classical_finds_separate_nuclei_on_either_background(bright_background: bool) -> None:
    image, truth = _two_nuclei(bright_background)
    labels = classical_labels(image)
    assert labels.max() == 2
    overlap = (labels > 0) & (truth > 0)
    assert overlap.sum() / (truth > 0).sum() > 0.9


def test_classical_splits_two_touching_nuclei() -> None:
    labels = np.zeros((60, 90), np.uint16)
    labels[disk((30, 30), 16)] = 1
    labels[disk((30, 58), 16)] = 2
    image = np.where(labels > 0, 200, 20).astype(np.uint8)
    assert classical_labels(image).max() == 2


def test_classical_on_a_blank_image_finds_nothing() -> None:
    assert classical_labels(np.full((32, 32, 3), 7, np.uint8)).max() == 0


def test_evaluate_classical_scores_a_clean_image_highly() -> None:
    image, truth = _two_nuclei()
    frame = evaluate_classical([Sample("a", image, truth)])
    assert list(frame["image_id"]) == ["a"] and list(frame["method"]) == ["classical"]
    assert frame["dsb_score"].iloc[0] > 0.5 and frame["iou"].iloc[0] > 0.9
    assert frame["predict_s"].iloc[0] > 0
