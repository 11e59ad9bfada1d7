"""The augmented training pipeline: rotation crops, windows, tf.data (nucleilib.pipeline)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nucleilib.pipeline import (
    augment_pair,
    context_size,
    random_windows,
    training_dataset,
    validation_tiles,
)

tf = pytest.importorskip("tensorflow")


# --------------------------------------------------------------------------- helpers


def l_shape(size: int) -> np.ndarray:
    """A float32 L-shaped mask, off-centre and without any symmetry."""
    fg = np.zeros((size, size), np.float32)
    c = size // 2
    fg[c - 12 : c + 10, c - 10 : c - 4] = 1  # long vertical bar
    fg[c + 4 : c + 10, c - 10 : c + 8] = 1  # foot pointing right
    fg[c - 12 : c - 8, c + 2 : c + 6] = 1  # a separate blob, top right
    return fg


def encode(fg: np.ndarray) -> np.ndarray:
    """An image whose value exceeds 0.5 exactly on ``fg``, plus a smooth ramp (3 channels)."""
    yy, xx = np.mgrid[: fg.shape[0], : fg.shape[1]] / max(fg.shape)
    ramp = np.stack([yy, xx, (yy + xx) / 2], axis=-1)
    return (0.25 + 0.5 * fg[..., None] + 0.1 * (ramp - 0.5)).astype(np.float32)


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels on either side of a change in ``mask`` (4-neighbourhood)."""
    return ndimage.binary_dilation(mask) ^ ndimage.binary_erosion(mask, border_value=1)


def misalignment(image_channel: np.ndarray, fg: np.ndarray) -> tuple[float, bool]:
    """How far ``image_channel > 0.5`` is from ``fg``.

    Returns the number of disagreeing pixels as a fraction of the outline pixels
    of ``fg``, and whether any disagreement lies more than one pixel away from the
    outline. Bilinear vs nearest interpolation of an aligned pair gives a few
    percent on the outline and nothing away from it; a one-pixel shift gives
    about a third.
    """
    edge = outline(fg)
    band = ndimage.binary_dilation(edge, structure=np.ones((3, 3), bool))
    wrong = (image_channel > 0.5) != fg
    return wrong.sum() / max(edge.sum(), 1), bool(np.any(wrong & ~band))


def dihedral(array: np.ndarray) -> list[np.ndarray]:
    """The 8 right-angle rotations and mirror images of a 2-D array."""
    out = []
    for a in (array, array.T):
        for k in range(4):
            out.append(np.rot90(a, k))
    return out


# --------------------------------------------------------------------------- augment_pair


def test_context_size():
    assert [context_size(c) for c in (1, 32, 64, 128, 256)] == [2, 46, 92, 182, 364]
    for crop in range(1, 200):
        side = context_size(crop)
        assert side % 2 == 0 and side >= crop * np.sqrt(2) and side - crop * np.sqrt(2) < 2
    with pytest.raises(ValueError, match="crop"):
        context_size(0)


CROP = 48


@pytest.fixture(scope="module")
def l_window() -> tuple[np.ndarray, np.ndarray]:
    size = context_size(CROP)
    fg = l_shape(size)
    return encode(fg), np.stack([fg, 1 - fg], axis=-1)


def test_augment_pair_keeps_target_aligned_with_image(l_window):
    image, target = l_window
    augment = tf.function(lambda s: augment_pair(image, target, crop=CROP, jitter=False, seed=s))
    fractions = []
    for s in range(40):
        x, y = (a.numpy() for a in augment(tf.constant([s, 7], tf.int64)))
        assert x.shape == (CROP, CROP, 3) and y.shape == (CROP, CROP, 2)
        assert set(np.unique(y).tolist()) <= {0.0, 1.0}  # nearest interpolation: no new values
        np.testing.assert_array_equal(y[..., 0] + y[..., 1], 1.0)
        fg = y[..., 0] > 0.5
        assert fg.any() and not fg.all()
        assert np.mean((x[..., 0] > 0.5) != fg) < 0.01  # nearly all pixels agree
        for channel in range(3):
            fraction, away = misalignment(x[..., channel], fg)
            assert not away, f"seed {s}: image and target disagree away from the outline"
            fractions.append(fraction)
    assert max(fractions) < 0.12
    assert np.mean(fractions) < 0.05


def test_alignment_check_detects_a_one_pixel_shift(l_window):
    # The criterion above would catch an off-by-one between image and target.
    image, target = l_window
    fractions = []
    for s in range(10):
        x, y = (a.numpy() for a in augment_pair(image, target, crop=CROP, jitter=False, seed=(s, 7)))
        for axis in (0, 1):
            fraction, away = misalignment(x[..., 0], np.roll(y[..., 0], 1, axis=axis) > 0.5)
            fractions.append(fraction if not away else 1.0)
    assert min(fractions) > 0.12


def test_augment_pair_rotates_by_arbitrary_angles(l_window):
    image, target = l_window
    start = (context_size(CROP) - CROP) // 2
    plain = target[start : start + CROP, start : start + CROP, 0]
    right_angles = dihedral(plain)
    outcomes = set()
    rotated = 0
    for s in range(12):
        _, y = augment_pair(image, target, crop=CROP, flip=False, jitter=False, seed=(s, 1))
        fg = y.numpy()[..., 0]
        outcomes.add(fg.tobytes())
        if not any(np.array_equal(fg, r) for r in right_angles):
            rotated += 1
        # Rotation is about the centre: the foreground area is (nearly) preserved.
        assert abs(fg.sum() - plain.sum()) <= 0.1 * plain.sum()
    assert rotated >= 10
    assert len(outcomes) == 12
    # The image is interpolated (bilinear), not just resampled like the target.
    x, _ = augment_pair(image, target, crop=CROP, flip=False, jitter=False, seed=(0, 1))
    assert np.isin(x.numpy(), image).mean() < 0.5


def test_augment_pair_rotates_about_the_crop_centre():
    size = context_size(32)
    fg = np.zeros((size, size), np.float32)
    c = size // 2
    fg[c - 3 : c + 3, c - 3 : c + 3] = 1  # centred square
    for s in range(5):
        _, y = augment_pair(encode(fg), fg[..., None], crop=32, jitter=False, seed=(s, 3))
        cy, cx = ndimage.center_of_mass(y.numpy()[..., 0])
        assert abs(cy - 15.5) <= 0.6 and abs(cx - 15.5) <= 0.6


def test_augment_pair_without_rotation_is_an_exact_crop_and_flip(l_window):
    image, target = l_window
    start = (context_size(CROP) - CROP) // 2
    crop_x = image[start : start + CROP, start : start + CROP]
    crop_y = target[start : start + CROP, start : start + CROP]
    x, y = augment_pair(image, target, crop=CROP, rotate=False, flip=False, jitter=False, seed=(0, 0))
    np.testing.assert_array_equal(x.numpy(), crop_x)
    np.testing.assert_array_equal(y.numpy(), crop_y)
    seen = set()
    for s in range(16):
        x, y = (a.numpy() for a in augment_pair(image, target, crop=CROP, rotate=False, jitter=False, seed=(s, 0)))
        matches = [
            (lr, ud)
            for lr in (False, True)
            for ud in (False, True)
            if np.array_equal(y, crop_y[:: -1 if ud else 1, :: -1 if lr else 1])
            and np.array_equal(x, crop_x[:: -1 if ud else 1, :: -1 if lr else 1])
        ]
        assert len(matches) == 1  # image and target got the same flips
        seen.add(matches[0])
    assert len(seen) == 4


def test_augment_pair_jitter_changes_the_image_only(l_window):
    image, target = l_window
    base_x, base_y = augment_pair(image, target, crop=CROP, jitter=False, seed=(5, 5))
    x, y = augment_pair(image, target, crop=CROP, jitter=True, seed=(5, 5))
    np.testing.assert_array_equal(y.numpy(), base_y.numpy())  # same geometry, target untouched
    x = x.numpy()
    assert not np.allclose(x, base_x.numpy())
    assert x.min() >= 0.0 and x.max() <= 1.0
    # Brightness and contrast are affine per channel: still perfectly correlated.
    assert np.corrcoef(x[..., 0].ravel(), base_x.numpy()[..., 0].ravel())[0, 1] > 0.999
    extreme = np.ones_like(image)
    bright, _ = augment_pair(extreme, target, crop=CROP, seed=(1, 1))
    assert float(tf.reduce_max(bright)) <= 1.0


def test_augment_pair_is_deterministic_by_seed(l_window):
    image, target = l_window
    a = augment_pair(image, target, crop=CROP, seed=(3, 4))
    b = augment_pair(image, target, crop=CROP, seed=(3, 4))
    c = augment_pair(image, target, crop=CROP, seed=(4, 3))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u.numpy(), v.numpy())
    assert not np.array_equal(a[0].numpy(), c[0].numpy())


def test_augment_pair_rejects_small_or_mismatched_windows():
    with pytest.raises(ValueError, match="smaller"):
        augment_pair(np.zeros((40, 40, 3)), np.zeros((40, 40, 2)), crop=32)
    with pytest.raises(ValueError, match="differ"):
        augment_pair(np.zeros((46, 46, 3)), np.zeros((48, 46, 2)), crop=32)
    with pytest.raises(ValueError, match="crop"):
        augment_pair(np.zeros((46, 46, 3)), np.zeros((46, 46, 2)), crop=0)
    # Without rotation a crop-sized window is enough.
    x, _ = augment_pair(np.zeros((32, 32, 3)), np.zeros((32, 32, 2)), crop=32, rotate=False)
    assert tuple(x.shape) == (32, 32, 3)


# --------------------------------------------------------------------------- windows and data sets


def _arrays(shapes, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Random images and binary targets whose channel 0 equals the image's channel 0 > 0.5."""
    rng = np.random.default_rng(seed)
    images, targets = [], []
    for shape in shapes:
        image = rng.random((*shape, 3), dtype=np.float32)
        fg = (image[..., 0] > 0.5).astype(np.float32)
        images.append(image)
        targets.append(np.stack([fg, 1 - fg], axis=-1))
    return images, targets


def test_random_windows_shapes_alignment_and_padding():
    images, targets = _arrays([(20, 30), (70, 90)])
    windows = random_windows(images, targets, 40, np.random.default_rng(0), margin=5)
    for _ in range(30):
        x, y = next(windows)
        assert x.shape == (40, 40, 3) and y.shape == (40, 40, 2)
        assert x.dtype == np.float32 and y.dtype == np.float32
        np.testing.assert_array_equal(y[..., 0], x[..., 0] > 0.5)  # same pixels in both
    # A small image is reflect-padded evenly (NumPy "reflect"): its only window.
    x, y = next(random_windows(images[:1], targets[:1], 40, 0))
    pad = ((10, 10), (5, 5), (0, 0))
    np.testing.assert_array_equal(x, np.pad(images[0], pad, mode="reflect"))
    np.testing.assert_array_equal(y, np.pad(targets[0], pad, mode="reflect"))
    # With a margin, windows may start outside the image, mirrored.
    x, _ = next(random_windows(images[:1], targets[:1], 24, 3, margin=30))
    assert x.shape == (24, 24, 3) and np.isin(x, images[0]).all()


def test_random_windows_weighting():
    images, targets = _arrays([(10, 10), (40, 40)])
    marks = [np.full_like(t, k) for k, t in enumerate(targets)]

    def share_of_large(weighting: str) -> float:
        windows = random_windows(images, marks, 8, 1, weighting=weighting)
        return float(np.mean([next(windows)[1][0, 0, 0] for _ in range(2000)]))

    assert share_of_large("uniform") == pytest.approx(0.5, abs=0.05)
    assert share_of_large("sqrt_area") == pytest.approx(0.8, abs=0.05)
    assert share_of_large("area") == pytest.approx(16 / 17, abs=0.03)
    with pytest.raises(ValueError, match="weighting"):
        random_windows(images, targets, 8, 0, weighting="pixels")


def test_random_windows_rejects_mismatched_inputs():
    images, targets = _arrays([(20, 30)])
    with pytest.raises(ValueError, match="targets"):
        random_windows(images, [], 8, 0)
    with pytest.raises(ValueError, match="differ in size"):
        random_windows(images, [np.zeros((20, 31, 2))], 8, 0)
    with pytest.raises(ValueError, match="no images"):
        random_windows([], [], 8, 0)


@pytest.fixture(scope="module")
def dataset_arrays() -> tuple[list[np.ndarray], list[np.ndarray]]:
    return _arrays([(60, 80), (100, 70), (30, 40)], seed=5)


def _first_batches(dataset, n: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(n)]


def test_training_dataset_shapes_dtypes_and_values(dataset_arrays):
    images, targets = dataset_arrays
    dataset = training_dataset(images, targets, crop=32, batch_size=4, seed=1)
    assert dataset.element_spec[0].shape == (4, 32, 32, 3)
    assert dataset.element_spec[1].shape == (4, 32, 32, 2)
    for x, y in _first_batches(dataset, 3):
        assert x.shape == (4, 32, 32, 3) and y.shape == (4, 32, 32, 2)
        assert x.dtype == np.float32 and y.dtype == np.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert set(np.unique(y).tolist()) <= {0.0, 1.0}
        np.testing.assert_array_equal(y[..., 0] + y[..., 1], 1.0)


def test_training_dataset_is_deterministic_by_seed(dataset_arrays):
    images, targets = dataset_arrays
    first = _first_batches(training_dataset(images, targets, crop=32, batch_size=4, seed=3))
    again = _first_batches(training_dataset(images, targets, crop=32, batch_size=4, seed=3))
    other = _first_batches(training_dataset(images, targets, crop=32, batch_size=4, seed=4))
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], other[0][0])
    assert not np.array_equal(first[0][0], first[1][0])  # batches differ within a stream


def test_training_dataset_augmentation_depends_on_the_seed():
    # A 32 x 32 image padded by the margin fills the 46 x 46 window exactly: every
    # seed draws the same window, so differences come from the augmentation alone.
    images, targets = _arrays([(32, 32)], seed=6)
    one = _first_batches(training_dataset(images, targets, crop=32, batch_size=4, seed=1), 1)[0]
    two = _first_batches(training_dataset(images, targets, crop=32, batch_size=4, seed=2), 1)[0]
    assert not np.array_equal(one[1], two[1])
    assert len({y.tobytes() for y in one[1]}) == 4  # each element has its own seed
    for x, y in (one, two):
        assert set(np.unique(x[..., 0] > 0.5).tolist()) == {False, True}
        assert y[..., 0].mean() == pytest.approx(targets[0][..., 0].mean(), abs=0.1)


def test_training_dataset_crops_reach_the_image_edges():
    # With the reflect margin, about two thirds of the 32 px crops of a 60 px image touch
    # its 2 px edge band. Without it, the rotated crop's centre would stay >= 22.5 px from
    # the edges and only a crop turned by nearly 45 degrees could reach the band (~10 %).
    images, _ = _arrays([(60, 60)], seed=7)
    band = np.ones((60, 60, 1), np.float32)
    band[2:-2, 2:-2] = 0
    dataset = training_dataset(images, [band], crop=32, batch_size=8, steps_per_epoch=25, seed=0)
    hits = sum(int((y.reshape(len(y), -1).max(axis=1) > 0).sum()) for _, y in _first_batches(dataset, 25))
    assert hits >= 100


def test_training_dataset_windows_are_image_windows():
    # Without augmentation a crop is a plain window: unique pixel values locate it.
    image = np.arange(50 * 60, dtype=np.float32).reshape(50, 60, 1) / 3000
    images, targets = [np.repeat(image, 3, axis=-1)], [image]
    for x, y in _first_batches(training_dataset(images, targets, crop=20, batch_size=8, augment=False), 3):
        for window, target in zip(x, y):
            r, c = divmod(round(float(window[0, 0, 0]) * 3000), 60)
            np.testing.assert_array_equal(window, images[0][r : r + 20, c : c + 20])
            np.testing.assert_array_equal(target, targets[0][r : r + 20, c : c + 20])


def test_training_dataset_reflect_pads_small_images():
    images, targets = _arrays([(9, 14)], seed=8)
    ((x, y),) = _first_batches(training_dataset(images, targets, crop=24, batch_size=2, augment=False), 1)
    pad = ((7, 8), (5, 5), (0, 0))  # centred; the only window position
    np.testing.assert_array_equal(x[0], np.pad(images[0], pad, mode="reflect"))
    np.testing.assert_array_equal(y[1], np.pad(targets[0], pad, mode="reflect"))


def test_training_dataset_weights_images_by_sqrt_area():
    images, _ = _arrays([(10, 10), (40, 40)])
    marks = [np.full((*im.shape[:2], 1), k, np.float32) for k, im in enumerate(images)]
    batches = _first_batches(training_dataset(images, marks, crop=8, batch_size=100, augment=False), 10)
    share_of_large = np.mean([y[:, 0, 0, 0].mean() for _, y in batches])
    assert share_of_large == pytest.approx(0.8, abs=0.05)


def test_training_dataset_steps_and_no_augmentation(dataset_arrays):
    images, targets = dataset_arrays
    dataset = training_dataset(images, targets, crop=24, batch_size=2, steps_per_epoch=3, augment=False)
    batches = _first_batches(dataset, 10)
    assert len(batches) == 3
    for x, y in batches:
        assert x.shape == (2, 24, 24, 3)
        np.testing.assert_array_equal(y[..., 0], x[..., 0] > 0.5)  # unaugmented windows stay exact


def test_training_dataset_rejects_bad_arguments(dataset_arrays):
    images, targets = dataset_arrays
    with pytest.raises(ValueError, match="batch_size"):
        training_dataset(images, targets, batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        training_dataset(images, targets, seed=-1)
    with pytest.raises(ValueError, match="channels"):
        training_dataset([images[0], images[1][..., :1]], targets[:2])


def test_validation_tiles_shapes_and_content():
    images, targets = _arrays([(300, 520), (40, 50)])
    x, y = validation_tiles(images, targets, tile=256)
    assert x.shape == (2 * 3 + 1, 256, 256, 3) and y.shape == (7, 256, 256, 2)
    assert x.dtype == np.float32 and y.dtype == np.float32
    np.testing.assert_array_equal(x[0], images[0][:256, :256])
    np.testing.assert_array_equal(x[1], images[0][:256, 256:512])
    np.testing.assert_array_equal(x[3, :44], images[0][256:300, :256])
    np.testing.assert_array_equal(x[3, 44:50], images[0][298:292:-1, :256])  # reflected, edge excluded
    np.testing.assert_array_equal(x[6, :40, :50], images[1])
    np.testing.assert_array_equal(y[..., 0], x[..., 0] > 0.5)  # padded identically
    again = validation_tiles(images, targets, tile=256)
    np.testing.assert_array_equal(again[0], x)


# --------------------------------------------------------------------------- zoom, colour, weights


def test_context_size_grows_with_the_zoom_range():
    assert context_size(48, 1.0) == context_size(48)
    assert context_size(48, 1.5) >= 48 * 1.5 * np.sqrt(2)
    with pytest.raises(ValueError, match="scale_jitter"):
        context_size(48, 0.8)


def test_zoom_changes_object_size_and_keeps_target_aligned():
    size = context_size(CROP, 1.5)
    fg = l_shape(size)
    image, target = encode(fg), fg[..., None]
    areas = []
    for s in range(30):
        x, y = (a.numpy() for a in augment_pair(image, target, crop=CROP, scale_jitter=1.5, jitter=False, seed=(s, 3)))
        assert set(np.unique(y).tolist()) <= {0.0, 1.0}
        fraction, away = misalignment(x[..., 0], y[..., 0] > 0.5)
        assert not away
        areas.append(y.sum())
    plain = augment_pair(image, target, crop=CROP, jitter=False, seed=(0, 3))[1].numpy().sum()
    assert min(areas) < 0.8 * plain < plain * 1.2 < max(areas)  # zoomed in and out
    with pytest.raises(ValueError, match="rotate"):
        augment_pair(image, target, crop=CROP, scale_jitter=1.5, rotate=False)


def test_the_new_steps_leave_the_other_draws_unchanged(l_window):
    image, target = l_window
    base = [a.numpy() for a in augment_pair(image, target, crop=CROP, seed=(5, 9))]
    coloured = [a.numpy() for a in augment_pair(image, target, crop=CROP, colour=True, seed=(5, 9))]
    np.testing.assert_array_equal(base[1], coloured[1])  # same rotation and flips
    assert not np.allclose(base[0], coloured[0])


def test_colour_augmentation_varies_colour_keeps_range_and_is_deterministic(l_window):
    image, target = l_window
    outs = [augment_pair(image, target, crop=CROP, colour=True, seed=(s, 1))[0].numpy() for s in range(40)]
    for x in outs:
        assert x.min() >= 0.0 and x.max() <= 1.0
    channel_means = np.array([x.reshape(-1, 3).mean(0) for x in outs])
    assert channel_means.std(axis=0).min() > 0.03  # each channel's level varies between draws
    spread = np.array([np.ptp(x.reshape(-1, 3).mean(0)) for x in outs])
    assert (spread < 1e-6).any() and (spread > 0.05).any()  # some grey, some coloured
    again = augment_pair(image, target, crop=CROP, colour=True, seed=(3, 1))[0].numpy()
    np.testing.assert_array_equal(again, outs[3])
    grey = np.repeat(image[..., :1], 3, axis=-1)
    tinted = augment_pair(grey, target, crop=CROP, colour=True, jitter=False, seed=(2, 2))[0].numpy()
    assert tinted.shape == (CROP, CROP, 3)


def test_training_dataset_weights_change_which_images_are_drawn():
    images, _ = _arrays([(40, 40), (40, 40)])
    marks = [np.full((*im.shape[:2], 1), k, np.float32) for k, im in enumerate(images)]
    weighted = training_dataset(images, marks, crop=8, batch_size=100, augment=False, weights=[1.0, 3.0])
    share_of_second = np.mean([y[:, 0, 0, 0].mean() for _, y in _first_batches(weighted, 10)])
    assert share_of_second == pytest.approx(0.75, abs=0.05)
    for bad in ([1.0], [1.0, 0.0], [1.0, np.nan]):
        with pytest.raises(ValueError, match="weights"):
            training_dataset(images, marks, crop=8, weights=bad)
