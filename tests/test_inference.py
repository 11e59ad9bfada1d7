"""Padding, tiled prediction and instance separation (nucleilib.inference)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk

from nucleilib.inference import (
    METHODS,
    crop_to_size,
    label_components,
    label_distance_watershed,
    label_with_borders,
    object_table,
    pad_to_multiple,
    predict_tiled,
    separate,
)


class Recorder:
    """A predict_fn that records the shape of every batch it is given."""

    def __init__(self, fn):
        self.fn = fn
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.float32
        self.shapes.append(batch.shape)
        return self.fn(batch)


def first_channel(batch: np.ndarray) -> np.ndarray:
    return batch[..., :1]


def mean3x3(batch: np.ndarray) -> np.ndarray:
    """Translation-equivariant model: a 3x3 mean filter of each image of the batch."""
    return ndi.uniform_filter(batch, size=(1, 3, 3, 1), mode="reflect")


def random_image(height: int, width: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)


def discs(shape: tuple[int, int], *circles: tuple[int, int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    for cy, cx, r in circles:
        mask[disk((cy, cx), r, shape=shape)] = True
    return mask


def assert_consecutive(labels: np.ndarray) -> None:
    present = np.unique(labels[labels > 0])
    assert present.tolist() == list(range(1, len(present) + 1))


# --------------------------------------------------------------------------- padding


@pytest.mark.parametrize("shape", [(100, 130, 3), (16, 32), (1, 5, 2), (17, 1)])
def test_pad_then_crop_round_trip(shape):
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    padded, size = pad_to_multiple(image, 16)
    assert size == shape[:2]
    assert padded.shape[0] % 16 == 0 and padded.shape[1] % 16 == 0
    assert padded.shape[0] - shape[0] < 16 and padded.shape[1] - shape[1] < 16
    assert padded.shape[2:] == image.shape[2:]
    np.testing.assert_array_equal(crop_to_size(padded, size), image)


def test_padding_reflects():
    image = np.arange(20, dtype=float).reshape(4, 5)
    padded, _ = pad_to_multiple(image, 8)
    assert padded.shape == (8, 8)
    np.testing.assert_array_equal(padded[4, :5], image[2])  # reflection without repeating the edge
    np.testing.assert_array_equal(padded[:4, 5], image[:, 3])


def test_pad_rejects_bad_input():
    with pytest.raises(ValueError, match="multiple"):
        pad_to_multiple(np.zeros((4, 4)), 0)
    with pytest.raises(ValueError, match="shape"):
        pad_to_multiple(np.zeros(4))


# --------------------------------------------------------------------------- tiled prediction


@pytest.mark.parametrize("shape", [(100, 130), (256, 256), (700, 1100), (300, 90), (33, 600)])
def test_predict_tiled_reproduces_identity(shape):
    image = random_image(*shape, seed=shape[0])
    fn = Recorder(first_channel)
    out = predict_tiled(fn, image, tile=256, batch_size=3)
    assert out.dtype == np.float32
    assert out.shape == (*shape, 1)
    np.testing.assert_allclose(out[..., 0], image[..., 0], atol=1e-5)
    for _, h, w, _ in fn.shapes:
        assert h % 16 == 0 and w % 16 == 0
        assert h <= 256 and w <= 256


def test_small_image_goes_whole_in_one_call():
    fn = Recorder(first_channel)
    out = predict_tiled(fn, random_image(200, 250), tile=256)
    assert fn.shapes == [(1, 208, 256, 3)]
    assert out.shape == (200, 250, 1)


def test_large_image_is_tiled_in_batches():
    fn = Recorder(first_channel)
    predict_tiled(fn, random_image(700, 1100), tile=256, overlap=32, batch_size=4)
    tiles = sum(shape[0] for shape in fn.shapes)
    assert len(fn.shapes) > 1
    # 3 rows x 5 columns of 256-pixel tiles with at least 32 pixels of overlap.
    assert tiles == 15
    assert all(shape[0] <= 4 for shape in fn.shapes)
    assert all(shape[1:] == (256, 256, 3) for shape in fn.shapes)


def test_grey_image_and_several_output_channels():
    def two_maps(batch):
        return np.concatenate([batch, 1 - batch], axis=-1)

    image = random_image(300, 520, 1)[..., 0]
    out = predict_tiled(two_maps, image, tile=128, overlap=16)
    assert out.shape == (300, 520, 2)
    np.testing.assert_allclose(out[..., 0], image, atol=1e-5)
    np.testing.assert_allclose(out[..., 1], 1 - image, atol=1e-5)


@pytest.mark.parametrize("shape", [(700, 1100), (520, 300)])
def test_no_seams_for_a_translation_equivariant_model(shape):
    image = random_image(*shape, seed=1)
    whole = mean3x3(pad_to_multiple(image, 16)[0][np.newaxis])[0, : shape[0], : shape[1], :1]
    tiled = predict_tiled(lambda b: mean3x3(b)[..., :1], image, tile=256, overlap=32)
    inner = (slice(2, -2), slice(2, -2))
    # The first and last rows of each tile see reflected, not true, neighbours:
    # their differences reach ~0.2, the window must weight them down to ~nothing.
    np.testing.assert_allclose(tiled[inner], whole[inner], atol=5e-4)
    # Juxtaposed tiles (no overlap, no blending) do show the seams.
    hard = predict_tiled(lambda b: mean3x3(b)[..., :1], image, tile=256, overlap=0)
    assert np.abs(hard[inner] - whole[inner]).max() > 0.05


def test_predict_tiled_checks_arguments_and_model_output():
    image = random_image(40, 40)
    with pytest.raises(ValueError, match="tile"):
        predict_tiled(first_channel, image, tile=100)
    with pytest.raises(ValueError, match="overlap"):
        predict_tiled(first_channel, image, tile=64, overlap=32)
    with pytest.raises(ValueError, match="batch_size"):
        predict_tiled(first_channel, image, batch_size=0)
    with pytest.raises(ValueError, match="callable"):
        predict_tiled(None, image)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="predict_fn returned shape"):
        predict_tiled(lambda b: b[:, ::2, ::2], image)


# --------------------------------------------------------------------------- instance separation


def test_components_separate_discs_and_drop_specks():
    mask = discs((80, 80), (20, 20, 10), (55, 55, 12))
    mask[70, 5] = mask[5, 70:72] = True  # specks of 1 and 2 pixels
    labels = label_components(mask.astype(np.float32), min_size=8)
    assert labels.max() == 2
    assert_consecutive(labels)
    assert labels[20, 20] != labels[55, 55]
    assert labels[70, 5] == 0 and labels[5, 70] == 0
    assert (labels > 0).sum() == mask.sum() - 3


def test_components_fill_small_holes_and_respect_threshold():
    mask = discs((60, 60), (30, 30, 15))
    mask[29:31, 29:31] = False  # a 4-pixel hole
    prob = np.where(mask, 0.7, 0.2)
    assert (label_components(prob, threshold=0.5) == 1).sum() == discs((60, 60), (30, 30, 15)).sum()
    assert label_components(prob, threshold=0.8).max() == 0
    assert label_components(prob, max_hole_size=0)[30, 30] == 0


def test_min_size_boundary_is_inclusive():
    prob = np.zeros((20, 20))
    prob[2:4, 2:6] = 1  # 8 px
    prob[10:12, 10:13] = 1  # 6 px
    labels = label_components(prob, min_size=8)
    assert labels.max() == 1 and labels[2, 2] == 1


FIGURE_EIGHT = ((40, 36, 18), (40, 66, 18))  # discs overlapping by 6 px


def test_figure_eight_components_merge_watershed_splits():
    prob = discs((80, 104), *FIGURE_EIGHT).astype(np.float32)
    assert label_components(prob).max() == 1
    labels = label_distance_watershed(prob)
    assert labels.max() == 2
    assert_consecutive(labels)
    assert labels[40, 36] != labels[40, 66]
    assert ((labels > 0) == (prob > 0.5)).all()
    # The cut is near the contact line x = 51.
    left = labels == labels[40, 36]
    assert abs(np.nonzero(left)[1].max() - 51) <= 2


def test_watershed_keeps_single_discs_whole():
    prob = discs((100, 100), (25, 25, 15), (70, 70, 20), (80, 15, 4)).astype(np.float32)
    labels = label_distance_watershed(prob)
    assert labels.max() == 3
    assert_consecutive(labels)
    assert ((labels > 0) == (prob > 0.5)).all()


@pytest.mark.parametrize("radii", [(18, 18), (18, 16)])
def test_watershed_h_controls_splitting(radii):
    # Centres 30 px apart: the neck is ~8 px (half-width) thinner than either disc.
    (y1, x1, _), (y2, x2, _) = FIGURE_EIGHT
    prob = discs((80, 104), (y1, x1, radii[0]), (y2, x2, radii[1])).astype(np.float32)
    assert label_distance_watershed(prob, h=3).max() == 2
    assert label_distance_watershed(prob, h=10).max() == 1


def test_borders_split_touching_nuclei_and_give_borders_back():
    mask = discs((80, 104), *FIGURE_EIGHT)
    border = np.zeros(mask.shape, np.float32)
    border[:, 49:54] = 1.0
    border[~mask] = 0.0
    labels = label_with_borders(mask.astype(np.float32), border)
    assert labels.max() == 2
    assert_consecutive(labels)
    assert labels[40, 36] != labels[40, 66]
    covered = (labels > 0).sum() / mask.sum()
    assert covered >= 0.99
    # The border band is shared out between the two nuclei.
    band = labels[:, 49:54][mask[:, 49:54]]
    assert set(np.unique(band)) == {1, 2}


def test_borders_keep_a_nucleus_that_is_all_border():
    mask = discs((60, 60), (15, 15, 5), (40, 40, 10))
    border = np.zeros(mask.shape, np.float32)
    border[discs((60, 60), (15, 15, 5))] = 0.9
    labels = label_with_borders(mask.astype(np.float32), border)
    assert labels.max() == 2
    assert ((labels > 0) == mask).all()


def test_empty_maps_give_no_labels():
    empty = np.zeros((32, 32), np.float32)
    for method in METHODS:
        labels = separate(np.stack([empty, empty], axis=-1), method)
        assert labels.shape == (32, 32) and labels.max() == 0
        assert object_table(labels).empty


def test_labels_are_consecutive_after_removals():
    mask = discs((100, 100), (15, 15, 8), (50, 50, 2), (80, 80, 9), (20, 80, 1))
    prob = mask.astype(np.float32)
    for labels in (
        label_components(prob),
        label_distance_watershed(prob),
        label_with_borders(prob, np.zeros_like(prob)),
    ):
        assert labels.dtype == np.int32
        assert labels.max() == 3  # the 1-pixel speck, second in raster order, is gone
        assert labels[20, 80] == 0
        assert_consecutive(labels)


# --------------------------------------------------------------------------- dispatcher


def test_separate_dispatches():
    mask = discs((80, 104), *FIGURE_EIGHT)
    border = np.zeros(mask.shape, np.float32)
    border[:, 49:54] = mask[:, 49:54]
    probs = np.stack([mask.astype(np.float32), border], axis=-1)
    assert separate(probs, "components").max() == 1
    assert separate(probs, "watershed").max() == 2
    assert separate(probs, "borders", border_threshold=0.5).max() == 2
    assert separate(probs[..., 0], "components", threshold=0.5, min_size=4).max() == 1


def test_separate_rejects_unknown_method_and_missing_border_channel():
    probs = np.zeros((16, 16, 1), np.float32)
    with pytest.raises(ValueError, match="components, watershed, borders"):
        separate(probs, "magic")
    with pytest.raises(ValueError, match="border channel"):
        separate(probs, "borders")
    with pytest.raises(ValueError, match="border channel"):
        separate(probs[..., 0], "borders")


def test_separation_validates_inputs():
    prob = np.zeros((16, 16), np.float32)
    with pytest.raises(ValueError, match="threshold"):
        label_components(prob, threshold=1.5)
    with pytest.raises(ValueError, match="min_size"):
        label_distance_watershed(prob, min_size=-1)
    with pytest.raises(ValueError, match="2-D"):
        label_components(np.zeros((4, 4, 2)))
    with pytest.raises(ValueError, match="differ in shape"):
        label_with_borders(prob, np.zeros((8, 8)))


# --------------------------------------------------------------------------- object table


def test_object_table():
    labels = np.zeros((40, 40), np.uint16)
    labels[2:6, 10:20] = 1
    labels[disk((30, 30), 5)] = 2
    table = object_table(labels)
    assert list(table.columns) == ["label", "area", "centroid_y", "centroid_x"]
    assert table["label"].tolist() == [1, 2]
    assert table["area"].tolist() == [40, int((labels == 2).sum())]
    assert table.loc[0, "centroid_y"] == pytest.approx(3.5)
    assert table.loc[0, "centroid_x"] == pytest.approx(14.5)
    assert table.loc[1, ["centroid_y", "centroid_x"]].tolist() == pytest.approx([30.0, 30.0])
    with pytest.raises(ValueError, match="2-D"):
        object_table(np.zeros((2, 2, 2), int))


@pytest.mark.parametrize("transforms", [4, 8])
def test_dihedral_average_makes_any_network_equivariant(transforms):
    from nucleilib.inference import dihedral_average

    ramp = np.linspace(0.0, 1.0, 32, dtype=np.float32)

    def lopsided(batch):  # weighs the right-hand side more: not equivariant
        return batch[..., :1] * ramp[None, None, :, None]

    x = np.random.default_rng(1).random((2, 32, 32, 3), dtype=np.float32)
    tta = dihedral_average(lopsided, transforms)
    assert not np.allclose(tta(x), lopsided(x))
    np.testing.assert_allclose(tta(x[:, :, ::-1]), tta(x)[:, :, ::-1], atol=1e-6)
    if transforms == 8:
        np.testing.assert_allclose(tta(np.rot90(x, 1, (1, 2))), np.rot90(tta(x), 1, (1, 2)), atol=1e-6)
    with pytest.raises(ValueError, match="transforms"):
        dihedral_average(lopsided, 3)
