"""nucleilib.plotting.outline_overlay: nucleus outlines drawn on the image."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.segmentation import find_boundaries

from nucleilib.errors import DatasetError
from nucleilib.io import as_rgb8
from nucleilib.plotting import OUTLINE_COLOUR, outline_overlay


def two_nuclei(shape: tuple[int, int] = (30, 40)) -> np.ndarray:
    labels = np.zeros(shape, np.int32)
    labels[3:12, 4:14] = 1
    labels[12:25, 14:30] = 2  # touches nucleus 1 at a corner
    return labels


def test_outlines_are_drawn_and_nothing_else_changes() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 200, (30, 40, 3), dtype=np.uint8)
    labels = two_nuclei()
    overlay = outline_overlay(image, labels)
    assert overlay.shape == (30, 40, 3) and overlay.dtype == np.uint8
    outline = find_boundaries(labels, mode="inner")
    assert (overlay[outline] == OUTLINE_COLOUR).all()
    np.testing.assert_array_equal(overlay[~outline], image[~outline])
    # The outline is the inner one: on the nuclei, never on the background.
    assert (labels[outline] > 0).all()
    # Each nucleus is closed: its border rows and columns are drawn.
    assert (overlay[3, 4:14] == OUTLINE_COLOUR).all() and (overlay[3:12, 4] == OUTLINE_COLOUR).all()
    assert (overlay[5:10, 6:12] == image[5:10, 6:12]).all()  # the inside stays visible


def test_the_input_image_is_not_modified() -> None:
    image = np.zeros((30, 40, 3), np.uint8)
    outline_overlay(image, two_nuclei())
    assert not image.any()


def test_a_custom_colour_and_no_nuclei() -> None:
    image = np.full((30, 40), 90, np.uint8)
    overlay = outline_overlay(image, two_nuclei(), colour=(255, 0, 0))
    assert (overlay[3, 4] == (255, 0, 0)).all()
    np.testing.assert_array_equal(outline_overlay(image, np.zeros((30, 40), np.int32)), as_rgb8(image))


@pytest.mark.parametrize(
    "image",
    [
        np.full((30, 40), 90, np.uint8),
        np.full((30, 40, 4), 90, np.uint8),
        np.full((30, 40), 90 * 257, np.uint16),
        np.full((30, 40, 1), 90, np.uint8),
    ],
    ids=["grey", "rgba", "uint16", "grey-channel"],
)
def test_any_image_as_rgb8_takes_outlines(image: np.ndarray) -> None:
    overlay = outline_overlay(image, two_nuclei())
    assert overlay.shape == (30, 40, 3) and overlay.dtype == np.uint8
    assert (overlay[3, 4] == OUTLINE_COLOUR).all() and (overlay[0, 0] == 90).all()


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"labels of shape \(30, 41\) do not match the image's \(30, 40\)"):
        outline_overlay(np.zeros((30, 40), np.uint8), np.zeros((30, 41), np.int32))
    with pytest.raises(DatasetError, match="shape"):
        outline_overlay(np.zeros((30, 40, 5), np.uint8), np.zeros((30, 40), np.int32))
