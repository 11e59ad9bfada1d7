"""Normalisation, preprocessing and training targets (nucleilib.preprocess)."""

from __future__ import annotations

import numpy as np
import pytest

from nucleilib.morphology import touching_labels
from nucleilib.preprocess import (
    COLOUR_INPUTS,
    hematoxylin,
    is_bright_background,
    is_colour,
    make_distance_target,
    make_targets,
    percentile_normalise,
    preprocess,
)

# --------------------------------------------------------------------------- helpers


def two_squares(gap: int, side: int = 10, shape: tuple[int, int] = (30, 40)) -> np.ndarray:
    """Labels 1 and 2: side x side squares on the same rows, ``gap`` background columns apart."""
    labels = np.zeros(shape, np.uint16)
    labels[10 : 10 + side, 5 : 5 + side] = 1
    left = 5 + side + gap
    labels[10 : 10 + side, left : left + side] = 2
    return labels


# --------------------------------------------------------------------------- normalisation


def test_percentile_normalise_maps_percentiles_to_zero_and_one():
    rng = np.random.default_rng(0)
    image = rng.integers(20, 230, size=(64, 64, 3), dtype=np.uint8)
    x = percentile_normalise(image, low=1, high=99)
    assert x.dtype == np.float32 and x.shape == image.shape
    assert x.min() == 0.0 and x.max() == 1.0
    lo, hi = np.percentile(image, [1, 99])
    inside = (image > lo) & (image < hi)
    np.testing.assert_allclose(x[inside], (image[inside] - lo) / (hi - lo), rtol=1e-5)
    # Clipped beyond the percentiles, and the input is untouched.
    assert np.all(x[image <= lo] == 0) and np.all(x[image >= hi] == 1)
    assert image.dtype == np.uint8


def test_percentile_normalise_is_scale_invariant():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
    np.testing.assert_allclose(
        percentile_normalise(image), percentile_normalise(image.astype(np.uint16) * 257), atol=1e-6
    )


@pytest.mark.parametrize("value", [0, 7, 255])
def test_percentile_normalise_flat_image_gives_zeros(value):
    x = percentile_normalise(np.full((16, 16, 3), value, np.uint8))
    assert x.dtype == np.float32 and not x.any()


def test_percentile_normalise_sparse_bright_pixels_fall_back_to_min_max():
    image = np.zeros((100, 100), np.uint8)
    image[0, :5] = 200  # 0.05 % of the pixels, rarer than 100 - 99.8 %
    x = percentile_normalise(image)
    assert x[0, 0] == 1.0 and x[50, 50] == 0.0


@pytest.mark.parametrize(("low", "high"), [(50, 50), (60, 40), (-1, 99), (1, 101)])
def test_percentile_normalise_rejects_bad_percentiles(low, high):
    with pytest.raises(ValueError, match="percentiles"):
        percentile_normalise(np.zeros((4, 4), np.uint8), low=low, high=high)


def test_percentile_normalise_rejects_nan_and_bool():
    with pytest.raises(ValueError, match="NaN"):
        percentile_normalise(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="dtype"):
        percentile_normalise(np.zeros((4, 4), bool))


# --------------------------------------------------------------------------- preprocess


@pytest.mark.parametrize(("kind", "bright"), [("fluorescence", False), ("brightfield", True), ("stained", True)])
def test_is_bright_background(dsb, kind, bright):
    assert is_bright_background(dsb.draw_rgb(kind)) is bright


@pytest.mark.parametrize("kind", ["fluorescence", "brightfield", "stained"])
def test_preprocess_makes_nuclei_bright_in_every_modality(dsb, kind):
    image = dsb.draw_rgb(kind, discs=((32, 32, 10),), noise=0)
    x = preprocess(image)
    assert x.shape == (64, 64, 3) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    nucleus, background = x[32, 32].mean(), x[2, 2].mean()
    assert nucleus > 0.5 > background


def test_preprocess_inverts_bright_images_only(dsb):
    dark = dsb.draw_rgb("fluorescence", discs=((32, 32, 10),), noise=0)
    bright = dsb.draw_rgb("brightfield", discs=((32, 32, 10),), noise=0)
    np.testing.assert_allclose(preprocess(dark), percentile_normalise(dark), atol=1e-6)
    np.testing.assert_allclose(preprocess(bright), 1 - percentile_normalise(bright), atol=1e-6)
    # invert_bright=False leaves the bright background bright.
    assert preprocess(bright, invert_bright=False)[2, 2, 0] == pytest.approx(1.0)


def test_preprocess_sigma_smooths_spatially_but_not_across_channels():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    image[..., 2] = 0  # a blank channel must stay blank: no mixing across channels
    raw = preprocess(image, invert_bright=False)
    smooth = preprocess(image, sigma=1.5, invert_bright=False)
    assert smooth.shape == raw.shape == (64, 64, 3)
    assert smooth[..., 0].var() < 0.5 * raw[..., 0].var()
    assert not smooth[..., 2].any()
    np.testing.assert_array_equal(preprocess(image, sigma=0.0, invert_bright=False), raw)


def test_preprocess_grey_gives_one_channel_spanning_zero_to_one(dsb):
    image = dsb.draw_rgb("stained")
    x = preprocess(image, grey=True)
    assert x.shape == (64, 64, 1) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0


@pytest.mark.parametrize("shape", [(40, 50), (40, 50, 1), (40, 50, 3)])
def test_preprocess_accepts_uint16_and_grey_shapes(shape):
    rng = np.random.default_rng(3)
    image8 = rng.integers(0, 256, size=shape, dtype=np.uint8)
    image16 = image8.astype(np.uint16) * 257
    x16 = preprocess(image16)
    assert x16.shape == (40, 50, 3) and x16.dtype == np.float32
    np.testing.assert_allclose(x16, preprocess(image8), atol=1e-5)
    if len(shape) < 3 or shape[-1] == 1:  # grey input is repeated to three equal channels
        np.testing.assert_array_equal(x16[..., 0], x16[..., 2])


def test_preprocess_is_deterministic_and_pure(dsb):
    image = dsb.draw_rgb("brightfield")
    before = image.copy()
    np.testing.assert_array_equal(preprocess(image, sigma=1.5), preprocess(image, sigma=1.5))
    np.testing.assert_array_equal(image, before)


@pytest.mark.parametrize("kind", ["fluorescence", "brightfield"])
@pytest.mark.parametrize("colour_input", COLOUR_INPUTS)
def test_colour_input_leaves_grey_images_unchanged(dsb, kind, colour_input):
    image = dsb.draw_rgb(kind)
    assert not is_colour(image)
    np.testing.assert_array_equal(preprocess(image, colour_input=colour_input), preprocess(image))


@pytest.mark.parametrize("colour_input", ["grey", "hematoxylin"])
def test_colour_input_gives_stained_tissue_bright_nuclei_in_equal_channels(dsb, colour_input):
    image = dsb.draw_rgb("stained", discs=((32, 32, 10),))
    assert is_colour(image)
    x = preprocess(image, colour_input=colour_input)
    assert x.shape == (64, 64, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], x[..., 1])
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    assert x[32, 32, 0] > 0.8 and x[2, 2, 0] < 0.2
    assert not np.array_equal(x, preprocess(image))  # the RGB input keeps colour


@pytest.mark.parametrize("colour_input", COLOUR_INPUTS)
def test_colour_input_leaves_colour_fluorescence_alone(colour_input):
    # A DAPI image stored in the blue channel: colour, but dark around its nuclei.
    image = np.zeros((32, 32, 3), np.uint8)
    image[8:16, 8:16, 2] = 200
    assert is_colour(image)
    np.testing.assert_array_equal(preprocess(image, colour_input=colour_input), preprocess(image))


def test_hematoxylin_separates_the_nuclear_stain_from_the_counterstain():
    # Haematoxylin-purple nuclei on an eosin-pink background: the optical density of
    # haematoxylin is higher on the nuclei; a grey average would see the pink too.
    image = np.full((16, 16, 3), (235, 160, 200), np.uint8)
    image[4:8, 4:8] = (80, 50, 160)
    density = hematoxylin(image)[..., 0]
    assert density.shape == (16, 16)
    assert density[5, 5] > density[0, 0] + 0.05
    np.testing.assert_allclose(hematoxylin(image.astype(np.uint16) * 257), hematoxylin(image), atol=1e-4)


def test_hematoxylin_rejects_grey_input():
    with pytest.raises(ValueError, match="RGB"):
        hematoxylin(np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((8, 8, 3), np.uint8), {"colour_input": "lab"}, "colour_input"),
        (np.zeros((8, 8, 4), np.uint8), {}, "shape"),
        (np.zeros((8,), np.uint8), {}, "shape"),
        (np.zeros((8, 8), np.int64), {}, "dtype"),
        (np.zeros((8, 8), np.uint8), {"sigma": -1.0}, "sigma"),
    ],
)
def test_preprocess_rejects_bad_input(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        preprocess(image, **kwargs)


# --------------------------------------------------------------------------- targets


def test_make_targets_touching_squares_have_a_border_exactly_at_the_contact():
    labels = two_squares(gap=0)  # label 1 columns 5..14, label 2 columns 15..24, rows 10..19
    targets = make_targets(labels, border_width=2)
    assert targets.shape == (30, 40, 2) and targets.dtype == np.float32
    np.testing.assert_array_equal(targets[..., 0], labels > 0)
    expected = np.zeros(labels.shape, bool)
    expected[10:20, 13:17] = True  # two columns on each side of the contact
    np.testing.assert_array_equal(targets[..., 1], expected)


def test_make_targets_separated_squares_have_no_border():
    targets = make_targets(two_squares(gap=5), border_width=2)
    assert targets[..., 0].sum() == 200
    assert not targets[..., 1].any()


def test_make_targets_border_width_sets_the_reach():
    one_pixel_gap = two_squares(gap=1)
    assert not make_targets(one_pixel_gap, border_width=1)[..., 1].any()
    border = make_targets(one_pixel_gap, border_width=2)[..., 1]
    assert border.sum() == 2 * 10 * 1  # columns 14 and 16: the gap column is background
    wide = make_targets(two_squares(gap=0), border_width=3)[..., 1]
    assert wide.sum() == 2 * 10 * 3
    assert not make_targets(two_squares(gap=0), border_width=0)[..., 1].any()


def test_make_targets_lone_nucleus_and_image_edges_give_no_border():
    labels = np.zeros((20, 20), np.uint16)
    labels[:8, :8] = 1  # touches the image corner
    labels[12:18, 12:18] = 7
    targets = make_targets(labels)
    assert targets[..., 0].sum() == 64 + 36
    assert not targets[..., 1].any()
    assert not make_targets(np.zeros((5, 5), np.uint16))[..., 1].any()


def test_make_targets_width_one_matches_touching_labels():
    rng = np.random.default_rng(4)
    for _ in range(5):
        labels = rng.integers(0, 6, size=(12, 12)).astype(np.uint16)
        labels[rng.random((12, 12)) < 0.5] = 0
        border = make_targets(labels, border_width=1)[..., 1] > 0
        assert set(np.unique(labels[border]).tolist()) == touching_labels(labels)
        assert np.all(labels[border] > 0)


def test_make_targets_rejects_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        make_targets(np.zeros((4, 4, 1), np.uint16))
    with pytest.raises(ValueError, match="integer"):
        make_targets(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="border_width"):
        make_targets(np.zeros((4, 4), np.uint16), border_width=-1)


def test_make_distance_target_peaks_at_one_in_each_nucleus():
    labels = two_squares(gap=0, side=9)
    distance = make_distance_target(labels)
    assert distance.dtype == np.float32 and distance.shape == labels.shape
    assert not distance[labels == 0].any()
    for k in (1, 2):
        assert distance[labels == k].max() == pytest.approx(1.0)
        assert distance[labels == k].min() > 0
    # The contact of the touching squares is low: they are separated.
    assert distance[14, 13] < 0.3 and distance[14, 14] < 0.3
    assert distance[14, 9] == pytest.approx(1.0) and distance[14, 18] == pytest.approx(1.0)
