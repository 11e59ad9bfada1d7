"""Nucleus size: the estimate on synthetic discs, the rescaling round trip of images and labels,
and a scale-aware Segmenter (``diameter`` auto / pixels / None) on stand-in networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk
from skimage.morphology import white_tophat

from nucleilib import models, scale
from nucleilib.segmenter import Segmenter

#: A scale-aware one-output model trained (so to speak) at nuclei 20 pixels across.
AWARE = models.ModelConfig(
    outputs=("foreground",), invert_bright=False, separation="components", min_size=4, diameter=20.0
)


def discs_image(shape, centres, radius, value=200):
    image = np.zeros(shape, np.uint8)
    labels = np.zeros(shape, np.uint16)
    for k, centre in enumerate(centres, start=1):
        rr, cc = disk(centre, radius, shape=shape)
        image[rr, cc] = value
        labels[rr, cc] = k
    return image, labels


def identity(batch: np.ndarray) -> np.ndarray:
    return batch[..., :1]


def small_objects_only(batch: np.ndarray) -> np.ndarray:
    """A stand-in network that, like a network trained at one size, misses much larger nuclei:
    the white top-hat keeps only bright objects narrower than a disc of radius 12."""
    return np.stack([white_tophat(x[..., 0], footprint=_FOOTPRINT) for x in batch])[..., None]


_FOOTPRINT = np.add.outer((np.arange(25) - 12) ** 2, (np.arange(25) - 12) ** 2) <= 144


@pytest.mark.parametrize("radius", [4, 7, 10, 16, 25])
def test_typical_diameter_of_discs_of_known_size(radius: int) -> None:
    centres = [(40, 40), (40, 140), (140, 40), (140, 140)]
    _, labels = discs_image((200, 200), centres, radius)
    assert scale.typical_diameter(labels) == pytest.approx(2 * radius, rel=0.06)


def test_typical_diameter_is_the_median_and_nan_without_objects() -> None:
    _, small = discs_image((200, 200), [(30, 30), (30, 100), (100, 30)], 5)
    _, big = discs_image((200, 200), [(150, 150)], 20)
    labels = np.where(big > 0, 9, small).astype(np.uint16)
    assert scale.typical_diameter(labels) == pytest.approx(scale.equivalent_diameters(small)[0])
    assert scale.typical_diameter(labels) == pytest.approx(10, rel=0.1)
    assert math.isnan(scale.typical_diameter(np.zeros((9, 9), np.uint16)))
    assert math.isnan(scale.typical_diameter(labels, min_objects=5))


def test_scale_factor_is_clipped_and_checks_its_input() -> None:
    assert scale.scale_factor(10.0, 20.0) == 2.0
    assert scale.scale_factor(200.0, 20.0) == scale.FACTOR_LIMITS[0]
    with pytest.raises(ValueError, match="positive"):
        scale.scale_factor(-3.0, 20.0)
    with pytest.raises(ValueError, match="model diameter"):
        scale.scale_factor(10.0, 0.0)


@pytest.mark.parametrize("factor", [0.5, 0.37, 1.7, 3.0])
def test_labels_come_back_at_the_input_size(factor: float) -> None:
    _, labels = discs_image((123, 157), [(40, 50), (90, 110)], 12)
    there = scale.resize_labels(labels, scale.scaled_shape(labels.shape, factor))
    back = scale.resize_labels(there, labels.shape)
    assert back.shape == labels.shape and back.dtype == labels.dtype
    assert set(np.unique(back)) == {0, 1, 2}
    overlap = np.logical_and(back > 0, labels > 0).sum() / np.logical_or(back > 0, labels > 0).sum()
    assert overlap > 0.9


def test_rescale_image_keeps_channels_and_values() -> None:
    image = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    assert scale.rescale_image(image, 1.0) is image
    bigger = scale.rescale_image(image, 2.0)
    assert bigger.shape == (60, 80, 3) and bigger.dtype == np.float32
    assert 0.0 <= bigger.min() and bigger.max() <= 1.0


def test_auto_finds_a_nucleus_scaled_by_two_at_the_same_place() -> None:
    segmenter = Segmenter(identity, AWARE)
    small, _ = discs_image((128, 128), [(40, 50), (90, 80)], 8)
    big, _ = discs_image((256, 256), [(80, 100), (180, 160)], 16)
    one = segmenter.segment_instances(small)
    two = segmenter.segment_instances(big)
    assert one.labels.shape == small.shape and two.labels.shape == big.shape
    assert two.diameter == pytest.approx(2 * one.diameter, rel=0.08)
    assert two.diameter == pytest.approx(32, rel=0.08)
    assert two.scale == pytest.approx(20 / two.diameter, rel=0.15)
    centres_one = np.array(ndimage.center_of_mass(one.labels > 0, one.labels, [1, 2]))
    centres_two = np.array(ndimage.center_of_mass(two.labels > 0, two.labels, [1, 2]))
    np.testing.assert_allclose(centres_two, 2 * centres_one + 0.5, atol=1.5)


def test_rescaling_to_the_model_size_finds_nuclei_a_fixed_scale_network_misses() -> None:
    image, truth = discs_image((200, 200), [(60, 60), (140, 130)], 20)
    native = Segmenter(small_objects_only, AWARE, diameter=None)
    assert native.segment(image).max() == 0
    rescaled = native.with_settings(diameter=40.0)
    result = rescaled.segment_instances(image)
    assert result.scale == pytest.approx(0.5) and result.diameter == 40.0
    assert result.labels.max() == 2
    iou = np.logical_and(result.labels > 0, truth > 0).sum() / np.logical_or(result.labels > 0, truth > 0).sum()
    assert iou > 0.8


def test_auto_without_nuclei_and_a_model_that_is_not_scale_aware_stay_at_native_scale() -> None:
    blank = Segmenter(identity, AWARE).segment_instances(np.zeros((64, 64), np.uint8))
    assert blank.scale == 1.0 and math.isnan(blank.diameter) and blank.labels.max() == 0
    plain = models.ModelConfig(outputs=("foreground",), invert_bright=False, separation="components")
    image, _ = discs_image((128, 128), [(40, 50)], 16)
    result = Segmenter(identity, plain).segment_instances(image)
    assert result.scale == 1.0 and math.isnan(result.diameter)
    with pytest.raises(ValueError, match="not scale-aware"):
        Segmenter(identity, plain, name="old-model", diameter=30)


@pytest.mark.parametrize("bad", ["big", -4, 0, float("nan"), True])
def test_a_bad_diameter_is_refused_clearly(bad) -> None:
    with pytest.raises(ValueError, match="diameter must be"):
        Segmenter(identity, AWARE, diameter=bad)


def test_a_number_given_as_text_is_a_diameter() -> None:
    assert Segmenter(identity, AWARE, diameter="35").diameter == 35.0


def test_model_config_keeps_earlier_configs_unchanged() -> None:
    assert "diameter" not in models.ModelConfig().to_json()
    config = models.ModelConfig.from_dict({**models.ModelConfig(diameter=20.0).__dict__})
    assert '"diameter": 20.0' in config.to_json() and config.diameter == 20.0


def test_a_large_image_is_never_enlarged_beyond_the_working_limit(monkeypatch) -> None:
    import nucleilib.segmenter as segmenter_module

    monkeypatch.setattr(segmenter_module, "MAX_WORKING_PIXELS", 256 * 256)
    image, _ = discs_image((128, 128), [(40, 40), (90, 90)], 3)  # nuclei 6 across: factor 20 / 6 wanted
    result = Segmenter(identity, AWARE, diameter=6.0).segment_instances(image)
    assert result.scale == pytest.approx(2.0) and result.labels.shape == (128, 128)
