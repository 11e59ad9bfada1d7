"""Pictures of segmentations: nucleus outlines drawn on the image."""

from __future__ import annotations

import numpy as np

from .io import as_rgb8

#: Outline colour of :func:`outline_overlay` (yellow reads on grey, fluorescence and H&E alike).
OUTLINE_COLOUR = (255, 255, 0)


def outline_overlay(image: np.ndarray, labels: np.ndarray, colour: tuple[int, int, int] = OUTLINE_COLOUR) -> np.ndarray:
    """The image as RGB uint8 with the inner outline of every labelled nucleus in ``colour``.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3|4)
        Any image :func:`nucleilib.io.as_rgb8` accepts.
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 for background.

    Examples
    --------
    >>> labels = np.zeros((6, 6), np.int32); labels[1:5, 1:5] = 1
    >>> overlay = outline_overlay(np.zeros((6, 6), np.uint8), labels)
    >>> overlay[1, 1].tolist(), overlay[2, 2].tolist()
    ([255, 255, 0], [0, 0, 0])
    """
    from skimage.segmentation import find_boundaries

    rgb = as_rgb8(image).copy()
    labels = np.asarray(labels)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels of shape {labels.shape} do not match the image's {rgb.shape[:2]}")
    rgb[find_boundaries(labels, mode="inner")] = colour
    return rgb
