"""NumPy preprocessing shared by training and inference, and the training targets.

Pure and deterministic, so that an image is prepared for the network the same way
when a model is trained and when it segments a user's image:
:func:`percentile_normalise`, :func:`is_bright_background`, :func:`classify_modality`, :func:`preprocess`,
:func:`make_targets` and :func:`make_distance_target`. The augmented ``tf.data``
training pipeline is in :mod:`nucleilib.pipeline`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .validation import non_negative_int

#: Imaging modalities told apart by :func:`classify_modality`.
MODALITIES = ("fluorescence", "brightfield", "stained tissue")
#: Mean absolute difference between neighbouring colour channels (0-1 scale) above
#: which an image counts as colour. Grey DSB images store three equal channels (0.0);
#: the stained-tissue images measure 0.06 and more.
COLOUR_THRESHOLD = 0.02
#: Median grey level (0-1) above which a grey image has a bright background.
BRIGHT_BACKGROUND = 0.5
#: What :func:`preprocess` makes of a stained image (colour, on a bright background):
#: ``"rgb"`` keeps its three channels,
#: ``"grey"`` averages them (then inverts a bright background, as for a grey image), and
#: ``"hematoxylin"`` replaces it by its haematoxylin optical density (colour deconvolution,
#: :func:`skimage.color.rgb2hed`): nuclei bright on a dark background, as in fluorescence,
#: with the eosin-stained tissue around them left out. Grey images and colour fluorescence
#: images (dark background) are the same in all three.
COLOUR_INPUTS = ("rgb", "grey", "hematoxylin")


def _as_hwc(image: np.ndarray, name: str = "image") -> np.ndarray:
    """``image`` as a float32 (H, W, C) array with C in {1, 3}; raises ValueError otherwise."""
    array = np.asarray(image)
    if not (array.dtype in (np.uint8, np.uint16) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name}: expected a uint8, uint16 or floating array, got dtype {array.dtype}")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3):
        raise ValueError(f"{name}: expected shape (H, W), (H, W, 1) or (H, W, 3), got {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name}: empty image of shape {array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def _as_labels(labels: np.ndarray) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 2:
        raise ValueError(f"labels: expected a 2-D label image, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        raise ValueError(f"labels: expected an integer label image, got dtype {array.dtype}")
    if array.size and array.min() < 0:
        raise ValueError("labels: negative labels are not allowed (0 is background)")
    return array.astype(np.int64)


# --------------------------------------------------------------------------- preprocessing


def percentile_normalise(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Scale an image so its ``low`` and ``high`` percentiles become 0 and 1.

    The percentiles are taken over all pixels and channels together (one linear
    map for the whole image, so colours keep their ratios), and the result is
    clipped to [0, 1]. When the two percentiles coincide (a flat image, or one
    whose few bright pixels are rarer than ``100 - high`` percent) the minimum
    and maximum are used instead; a single-valued image gives zeros.

    Parameters
    ----------
    image : ndarray
        Any shape; uint8, uint16 or floating (finite) values.
    low, high : float
        Percentiles, ``0 <= low < high <= 100``.

    Returns
    -------
    ndarray of float32
        Same shape as ``image``, values in [0, 1].

    Raises
    ------
    ValueError
        If the percentiles are out of order or range, or the image is empty,
        of another dtype or not finite.

    Examples
    --------
    >>> import numpy as np
    >>> x = percentile_normalise(np.arange(101, dtype=np.uint8), low=10, high=90)
    >>> float(x[10]), float(x[50]), float(x[90]), float(x[100])
    (0.0, 0.5, 1.0, 1.0)
    >>> float(percentile_normalise(np.full((4, 4), 7, np.uint8)).max())
    0.0
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    array = np.asarray(image)
    if not (array.dtype in (np.uint8, np.uint16) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"image: expected a uint8, uint16 or floating array, got dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"image: empty array of shape {array.shape}")
    x = array.astype(np.float32)  # always a copy: the input is never modified
    if not np.isfinite(x).all():
        raise ValueError("image: contains NaN or infinite values")
    return _normalise_between(x, *_percentile_range(x, low, high))


def _percentile_range(x: np.ndarray, low: float = 1.0, high: float = 99.8) -> tuple[float, float]:
    """The grey levels :func:`percentile_normalise` maps to 0 and 1 (min and max when the
    percentiles coincide)."""
    lo, hi = (float(v) for v in np.percentile(x, [low, high]))
    if hi <= lo:
        lo, hi = float(x.min()), float(x.max())
    return lo, hi


def _normalise_between(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``x`` (float32, modified in place) mapped so ``lo`` and ``hi`` become 0 and 1, clipped;
    zeros when ``hi <= lo``."""
    if hi <= lo:
        return np.zeros(x.shape, dtype=np.float32)
    x -= lo
    x /= hi - lo
    np.clip(x, 0.0, 1.0, out=x)
    return x


def is_bright_background(image: np.ndarray) -> bool:
    """Whether an image has a bright background (bright field, stained tissue).

    The test is on the *percentile-normalised* scale (see
    :func:`percentile_normalise`, so dim and bright exposures are judged alike):
    the image is normalised, averaged over its channels to a grey level, and its
    median grey level compared with 0.5. Nuclei cover well under half of a
    typical DSB image, so the median is a background pixel.

    Parameters
    ----------
    image : ndarray, shape (H, W), (H, W, 1) or (H, W, 3)
        uint8, uint16 or floating values.

    Returns
    -------
    bool
        ``True`` when the median normalised grey level exceeds 0.5.

    Examples
    --------
    >>> import numpy as np
    >>> dark = np.full((32, 32), 10, np.uint8); dark[8:16, 8:16] = 200
    >>> is_bright_background(dark), is_bright_background(255 - dark)
    (False, True)
    """
    x = _as_hwc(image)
    return _bright_between(x, *_percentile_range(x))


def _bright_between(x: np.ndarray, lo: float, hi: float) -> bool:
    """:func:`is_bright_background` of the float32 (H, W, C) ``x`` whose percentile range is
    ``lo``, ``hi`` (so a caller that needs the range too computes it once)."""
    normalised = _normalise_between(x.copy(), lo, hi)
    return bool(np.median(normalised.mean(axis=-1)) > 0.5)


def classify_modality(image: np.ndarray) -> str:
    """Classify an RGB image as fluorescence, brightfield or stained tissue.

    Colour images are stained tissue; grey images with a bright background are
    brightfield; grey images with a dark background are fluorescence.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)

    Returns
    -------
    str
        One of :data:`MODALITIES`.

    Examples
    --------
    >>> import numpy as np
    >>> classify_modality(np.zeros((8, 8, 3), np.uint8))
    'fluorescence'
    """
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {image.shape}")
    rgb = image.astype(np.float32) / 255.0
    colourfulness = float(np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean())
    if colourfulness > COLOUR_THRESHOLD:
        return "stained tissue"
    if float(np.median(rgb.mean(axis=-1))) > BRIGHT_BACKGROUND:
        return "brightfield"
    return "fluorescence"


def _unit_scale(image: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``x`` (the float copy of ``image``) on a 0-1 scale: divided by the integer dtype's
    maximum, or for floating input by its own maximum when that exceeds 1."""
    dtype = np.asarray(image).dtype
    top = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else max(1.0, float(x.max()))
    return np.clip(x / top, 0.0, 1.0)


def is_colour(image: np.ndarray) -> bool:
    """Whether an image has colour: its channels differ by more than :data:`COLOUR_THRESHOLD`
    (mean absolute difference of neighbouring channels, on the 0-1 scale of its dtype).

    Examples
    --------
    >>> import numpy as np
    >>> grey = np.zeros((8, 8, 3), np.uint8); grey[2:4, 2:4] = 200
    >>> purple = grey.copy(); purple[..., 1] //= 2
    >>> is_colour(grey), is_colour(purple), is_colour(grey[..., 0])
    (False, True, False)
    """
    x = _as_hwc(image)
    if x.shape[-1] == 1:
        return False
    x = _unit_scale(image, x)
    difference = np.abs(x[..., 0] - x[..., 1]).mean() + np.abs(x[..., 1] - x[..., 2]).mean()
    return bool(difference > COLOUR_THRESHOLD)


def hematoxylin(image: np.ndarray) -> np.ndarray:
    """The haematoxylin optical density of an RGB image, ``(H, W, 1)`` float32, not normalised.

    Colour deconvolution with scikit-image's H&E-DAB stain vectors
    (:func:`skimage.color.rgb2hed`); nuclei, stained by haematoxylin, come out bright.

    Examples
    --------
    >>> import numpy as np
    >>> tissue = np.full((8, 8, 3), (230, 200, 230), np.uint8); tissue[2:4, 2:4] = (90, 40, 150)
    >>> density = hematoxylin(tissue)
    >>> density.shape, bool(density[3, 3, 0] > density[0, 0, 0])
    ((8, 8, 1), True)
    """
    from skimage.color import rgb2hed

    x = _as_hwc(image)
    if x.shape[-1] != 3:
        raise ValueError(f"image: expected an RGB image of shape (H, W, 3), got {x.shape}")
    return rgb2hed(_unit_scale(image, x))[..., :1].astype(np.float32)


@dataclass(frozen=True)
class Levels:
    """What :func:`preprocess` decides from a whole image: the grey levels mapped to 0 and 1
    (after any colour conversion and filtering), whether the background is bright, and
    whether the image is stained. Taken once from a whole image (or an even sample of its
    pixels) and given to :func:`preprocess` for each of its blocks, so that a block is prepared
    as it would be inside the whole image (a block of background alone is not stretched)."""

    low: float
    high: float
    bright_background: bool
    stained: bool


def preprocess(
    image: np.ndarray,
    *,
    sigma: float = 0.0,
    invert_bright: bool = True,
    grey: bool = False,
    colour_input: str = "rgb",
    levels: Levels | None = None,
) -> np.ndarray:
    """Turn a raw image into network input (used for training and inference alike).

    In order:

    0. a stained image (a colour image with a bright background) is turned into one
       channel when ``colour_input`` is ``"grey"`` (channel mean) or ``"hematoxylin"``
       (:func:`hematoxylin`; such an image is never inverted in step 4, its nuclei being
       bright already); see :data:`COLOUR_INPUTS`;
    1. grey conversion (channel mean) when ``grey`` is set; it comes first so
       that the single channel spans the full [0, 1] range after step 3;
    2. a Gaussian filter of standard deviation ``sigma`` pixels over the two
       spatial axes only (never across channels; ``mode="reflect"``), skipped
       when ``sigma`` is 0 (the seed paper uses 1.5);
    3. :func:`percentile_normalise` with its default 1st/99.8th percentiles;
    4. inversion ``1 - x`` when ``invert_bright`` is set and
       :func:`is_bright_background` is true *of the input image*, so nuclei are
       bright on a dark background in every modality. The decision does not
       depend on ``sigma`` or ``grey``;
    5. grey input is repeated to three channels unless ``grey`` is set.

    Parameters
    ----------
    image : ndarray, shape (H, W), (H, W, 1) or (H, W, 3)
        uint8 or uint16 (floating input is accepted too); the scale does not
        matter because of the normalisation.
    sigma : float
        Gaussian standard deviation in pixels, ``>= 0``.
    invert_bright : bool
        Invert bright-background images.
    grey : bool
        Return one grey channel instead of three.
    colour_input : str
        One of :data:`COLOUR_INPUTS`.
    levels : Levels, optional
        Decisions taken from the whole image this one is a block of (:func:`image_levels`);
        by default they are taken from ``image`` itself.

    Returns
    -------
    ndarray of float32, shape (H, W, 1) if ``grey`` else (H, W, 3)
        Values in [0, 1].

    Raises
    ------
    ValueError
        For another shape or dtype, non-finite values or a negative ``sigma``.

    Examples
    --------
    >>> import numpy as np
    >>> bright_field = np.full((32, 32, 3), 200, np.uint8); bright_field[8:16, 8:16] = 60
    >>> x = preprocess(bright_field)
    >>> x.shape, x.dtype.name, float(x[10, 10, 0]), float(x[0, 0, 0])
    ((32, 32, 3), 'float32', 1.0, 0.0)
    >>> preprocess(bright_field, grey=True, sigma=1.5).shape
    (32, 32, 1)
    >>> tissue = np.full((32, 32, 3), (230, 200, 230), np.uint8); tissue[8:16, 8:16] = (90, 40, 150)
    >>> x = preprocess(tissue, colour_input="hematoxylin")
    >>> x.shape, float(x[10, 10, 0]), float(x[0, 0, 0]), bool((x[..., 0] == x[..., 2]).all())
    ((32, 32, 3), 1.0, 0.0, True)
    """
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
    if colour_input not in COLOUR_INPUTS:
        raise ValueError(f"colour_input must be one of {', '.join(COLOUR_INPUTS)}, got {colour_input!r}")
    x, bright, _, _, x_range = _before_normalising(
        image, sigma=sigma, invert_bright=invert_bright, grey=grey, colour_input=colour_input, levels=levels
    )
    x = _normalise_between(x, *x_range)
    if bright:
        x = np.subtract(1.0, x, dtype=np.float32)
    if not grey and x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return np.ascontiguousarray(x, dtype=np.float32)


def _before_normalising(
    image: np.ndarray, *, sigma: float, invert_bright: bool, grey: bool, colour_input: str, levels: Levels | None
) -> tuple[np.ndarray, bool, bool, bool, tuple[float, float]]:
    """Steps 0-2 of :func:`preprocess` (on a float32 copy); returns the array, whether step 4
    inverts it, the two decisions taken (bright background, stained), and the grey levels step 3
    maps to 0 and 1 (the array's percentile range); decisions and levels from ``levels`` when
    given."""
    x = _as_hwc(image)
    # The bright-background test normalises the input by its percentile range; when steps 0-2
    # leave the input as it is, that is the range step 3 needs, so it is computed once.
    if levels is None:
        x_range = _percentile_range(x)
        bright_background = _bright_between(x, *x_range)
    else:
        x_range = (levels.low, levels.high)
        bright_background = levels.bright_background
    unchanged = x
    bright = invert_bright and bright_background
    # Stains absorb light: only a colour image with a bright background is a stained one (a
    # colour fluorescence image, dark around its nuclei, keeps its channels).
    stained = (bright_background and is_colour(image)) if levels is None else levels.stained
    if colour_input != "rgb" and stained and x.shape[-1] == 3:
        if colour_input == "hematoxylin":
            x, bright = hematoxylin(image), False
        else:
            x = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    if grey and x.shape[-1] == 3:
        x = x.mean(axis=-1, keepdims=True, dtype=np.float32)
    if sigma > 0:
        x = ndimage.gaussian_filter(x, sigma=(sigma, sigma, 0.0), mode="reflect")
    if levels is None and x is not unchanged:
        x_range = _percentile_range(x)
    return x, bright, bright_background, stained, x_range


def image_levels(
    image: np.ndarray,
    *,
    sigma: float = 0.0,
    invert_bright: bool = True,
    grey: bool = False,
    colour_input: str = "rgb",
) -> Levels:
    """The :class:`Levels` :func:`preprocess` takes from ``image`` (same keywords), to prepare
    blocks of it alike.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.full((64, 64), 10, np.uint8); image[8:24, 8:24] = 200
    >>> levels = image_levels(image)
    >>> whole = preprocess(image)
    >>> block = preprocess(image[32:, 32:], levels=levels)  # background only
    >>> bool(np.array_equal(block, whole[32:, 32:])), float(preprocess(image[32:, 32:]).max())
    (True, 0.0)
    """
    _, _, bright_background, stained, x_range = _before_normalising(
        image, sigma=sigma, invert_bright=invert_bright, grey=grey, colour_input=colour_input, levels=None
    )
    return Levels(*x_range, bright_background, bool(stained))


# --------------------------------------------------------------------------- targets


def make_targets(labels: np.ndarray, *, border_width: int = 2) -> np.ndarray:
    """Foreground and touching-border targets of an instance label image.

    * Channel 0, foreground: ``labels > 0``.
    * Channel 1, touching border: the pixels ``p`` of a nucleus (``labels[p] > 0``)
      that have a pixel of a *different* nucleus within Chebyshev distance
      ``border_width``, i.e. inside the ``(2 w + 1) x (2 w + 1)`` square centred on
      ``p``. It is computed exactly with a grey dilation (maximum filter) of the
      labels and a grey erosion (minimum filter) of the labels with background
      set above every label: ``p`` is a border pixel when either differs from
      ``labels[p]``. Pixels outside the image count as background.

    With ``border_width=1`` a nucleus has border pixels exactly when it touches
    another one in the sense of :func:`nucleilib.morphology.touching_labels`
    (8-neighbours); with the default 2, nuclei separated by a one-pixel gap get a
    border too. Background pixels and lone nuclei never do, so the channel is the
    network's signal for separating touching nuclei. ``border_width=0`` gives an
    empty border channel.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 for background (e.g. :attr:`nucleilib.data.Sample.labels`).
    border_width : int
        Reach of the border in pixels, ``>= 0``.

    Returns
    -------
    ndarray of float32, shape (H, W, 2)
        Values in {0, 1}; the border channel is a subset of the foreground.

    Raises
    ------
    ValueError
        If ``labels`` is not a 2-D non-negative integer array or ``border_width``
        is negative.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[0, 1, 1, 2, 2, 0, 3]], np.uint16)
    >>> make_targets(labels, border_width=1)[0, :, 1]
    array([0., 0., 1., 1., 0., 0., 0.], dtype=float32)
    """
    non_negative_int(border_width, "border_width")
    lab = _as_labels(labels)
    targets = np.zeros((*lab.shape, 2), dtype=np.float32)
    foreground = lab > 0
    targets[..., 0] = foreground
    if border_width > 0 and foreground.any():
        size = 2 * int(border_width) + 1
        sentinel = int(lab.max()) + 1  # above every label (a huge int64 does not survive ndimage's cval)
        highest = ndimage.maximum_filter(lab, size=size, mode="constant", cval=0)
        lowest = ndimage.minimum_filter(np.where(foreground, lab, sentinel), size=size, mode="constant", cval=sentinel)
        targets[..., 1] = foreground & ((highest != lab) | (lowest != lab))
    return targets


def make_distance_target(labels: np.ndarray) -> np.ndarray:
    """Per-nucleus normalised distance transform.

    Inside each nucleus: the Euclidean distance to the nearest pixel that is not
    part of that nucleus (background, another nucleus, or outside the image),
    divided by the nucleus's largest such distance. So every nucleus peaks at 1
    in its centre and touching nuclei are separated by low values.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 for background.

    Returns
    -------
    ndarray of float32, shape (H, W)
        0 on the background, in (0, 1] inside nuclei.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((7, 7), np.uint16); labels[1:6, 1:6] = 1
    >>> d = make_distance_target(labels)
    >>> float(d[3, 3]), float(d[1, 1]), float(d[0, 0])
    (1.0, 0.3333333432674408, 0.0)
    """
    lab = _as_labels(labels)
    out = np.zeros(lab.shape, dtype=np.float32)
    height, width = lab.shape
    for index, box in enumerate(ndimage.find_objects(lab), start=1):
        if box is None:
            continue
        # The 1-pixel ring around the bounding box holds no pixel of this nucleus, so
        # the nearest non-nucleus pixel of any inner pixel lies within the window.
        y0, y1 = max(box[0].start - 1, 0), min(box[0].stop + 1, height)
        x0, x1 = max(box[1].start - 1, 0), min(box[1].stop + 1, width)
        inside = np.pad(lab[y0:y1, x0:x1] == index, 1)  # outside the image counts as boundary
        distance = ndimage.distance_transform_edt(inside)[1:-1, 1:-1]
        window = out[y0:y1, x0:x1]
        mask = inside[1:-1, 1:-1]
        window[mask] = distance[mask] / distance.max()
    return out
