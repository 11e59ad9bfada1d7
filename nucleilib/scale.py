"""Nucleus size: estimate it, and rescale images and labels so that nuclei have one size.

A network sees nuclei through a window of a fixed number of pixels. DSB images show nuclei
from about 5 to over 100 pixels across, and an imaging set-up the network never saw often
differs from the training images first of all in that. A *scale-aware* model is trained on
images rescaled so that their nuclei are about ``ModelConfig.diameter`` pixels across; at
inference, :class:`nucleilib.segmenter.Segmenter` estimates an image's nucleus diameter
(or takes the user's), rescales the image by ``diameter_model / diameter_image``,
segments it and maps the labels back onto the input's grid with :func:`resize_labels`.

All functions are NumPy/scikit-image; nothing here imports TensorFlow.
"""

from __future__ import annotations

import math

import numpy as np

#: Rescaling factors are clipped to this range (a nucleus estimate that far off is
#: more likely a failed first pass than a real size).
FACTOR_LIMITS = (0.25, 4.0)


def equivalent_diameters(labels: np.ndarray) -> np.ndarray:
    """Diameter of the disc of equal area, ``sqrt(4 A / pi)``, of every labelled object.

    Examples
    --------
    >>> labels = np.zeros((20, 20), np.uint16); labels[2:6, 2:6] = 1; labels[10:18, 10:18] = 3
    >>> equivalent_diameters(labels).round(2).tolist()
    [4.51, 9.03]
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels: expected a 2-D label image, got shape {labels.shape}")
    areas = np.bincount(labels.ravel().astype(np.int64))[1:]
    areas = areas[areas > 0]
    return np.sqrt(4.0 * areas / np.pi)


def typical_diameter(labels: np.ndarray, *, min_objects: int = 1, weighting: str = "count") -> float:
    """Median equivalent diameter of the objects of a label image, in pixels.

    ``weighting="count"`` is the plain median over objects (the definition the scale-aware
    training uses on annotations). ``"area"`` weights each object by its area, so that many
    small fragments (debris, or a nucleus a first pass broke up) move it little: the size
    estimate of :class:`nucleilib.segmenter.Segmenter` uses it on predicted labels.
    Returns NaN when the image has fewer than ``min_objects`` objects.

    Examples
    --------
    >>> from skimage.draw import disk
    >>> labels = np.zeros((100, 100), np.uint16)
    >>> for k, (r, c) in enumerate([(20, 20), (20, 70), (70, 45)], start=1):
    ...     labels[disk((r, c), 10)] = k
    >>> round(typical_diameter(labels), 1)
    19.7
    >>> labels[90:92, 2:98:4] = np.arange(4, 28)  # 24 specks of 2 x 1 pixels
    >>> round(typical_diameter(labels), 1), round(typical_diameter(labels, weighting="area"), 1)
    (1.6, 19.7)
    >>> typical_diameter(np.zeros((8, 8), np.uint8))
    nan
    """
    if weighting not in ("count", "area"):
        raise ValueError(f"weighting must be 'count' or 'area', got {weighting!r}")
    diameters = equivalent_diameters(labels)
    if diameters.size < max(1, min_objects):
        return math.nan
    if weighting == "count":
        return float(np.median(diameters))
    order = np.argsort(diameters)
    mass = np.cumsum(diameters[order] ** 2)
    return float(diameters[order][np.searchsorted(mass, mass[-1] / 2)])


def scale_factor(image_diameter: float, model_diameter: float) -> float:
    """The factor that brings nuclei of ``image_diameter`` to ``model_diameter`` pixels,
    clipped to :data:`FACTOR_LIMITS`; 1 when the image's diameter is unknown (NaN).

    Examples
    --------
    >>> scale_factor(40.0, 20.0), scale_factor(5.0, 20.0), scale_factor(1.0, 20.0), scale_factor(float("nan"), 20.0)
    (0.5, 4.0, 4.0, 1.0)
    """
    if not (model_diameter > 0 and math.isfinite(model_diameter)):
        raise ValueError(f"model diameter must be a positive number of pixels, got {model_diameter!r}")
    if not math.isfinite(image_diameter):
        return 1.0
    if image_diameter <= 0:
        raise ValueError(f"diameter must be a positive number of pixels, got {image_diameter!r}")
    return float(np.clip(model_diameter / image_diameter, *FACTOR_LIMITS))


def limit_upscale(factor: float, shape: tuple[int, ...], max_pixels: int) -> float:
    """``factor``, lowered where it would enlarge an image of ``shape`` beyond ``max_pixels``
    (never below 1: an image already that large is not shrunk for it).

    Examples
    --------
    >>> limit_upscale(4.0, (1024, 1024), 2048 * 2048), limit_upscale(4.0, (256, 256), 2048 * 2048)
    (2.0, 4.0)
    >>> limit_upscale(0.5, (4096, 4096), 2048 * 2048), limit_upscale(3.0, (4096, 4096), 2048 * 2048)
    (0.5, 1.0)
    """
    if factor <= 1.0:
        return factor
    room = math.sqrt(max_pixels / (shape[0] * shape[1]))
    return float(min(factor, max(1.0, room)))


def scaled_shape(shape: tuple[int, ...], factor: float) -> tuple[int, int]:
    """``(round(H * factor), round(W * factor))``, at least 1 x 1.

    Examples
    --------
    >>> scaled_shape((256, 320, 3), 0.5), scaled_shape((5, 7), 0.01)
    ((128, 160), (1, 1))
    """
    return max(1, round(shape[0] * factor)), max(1, round(shape[1] * factor))


def rescale_image(image: np.ndarray, factor: float) -> np.ndarray:
    """An image ``(H, W)`` or ``(H, W, C)`` resized by ``factor`` (bilinear, anti-aliased when
    shrinking), as float32; the same array back when ``factor`` is 1.

    Examples
    --------
    >>> rescale_image(np.ones((10, 12, 3), np.float32), 2.0).shape
    (20, 24, 3)
    """
    from skimage.transform import resize

    if factor == 1.0:
        return image
    shape = scaled_shape(image.shape, factor) + tuple(image.shape[2:])
    out = resize(image, shape, order=1, mode="reflect", anti_aliasing=factor < 1.0, preserve_range=True)
    return out.astype(np.float32, copy=False)


def resize_labels(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A label image resized to ``shape[:2]`` by nearest neighbour (labels are never blended).

    A nucleus too small to cover a pixel centre of the new grid disappears, so shrinking
    can lose objects; label values keep their numbers otherwise.

    Examples
    --------
    >>> labels = np.zeros((4, 4), np.uint16); labels[:2, :2] = 5
    >>> resize_labels(labels, (8, 8))[:4, :4].tolist() == [[5] * 4] * 4
    True
    """
    from skimage.transform import resize

    labels = np.asarray(labels)
    target = tuple(int(n) for n in shape[:2])
    if labels.shape == target:
        return labels
    out = resize(labels, target, order=0, mode="edge", anti_aliasing=False, preserve_range=True)
    return out.astype(labels.dtype, copy=False)
