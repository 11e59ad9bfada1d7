"""The augmented ``tf.data`` training pipeline.

:func:`context_size`, :func:`augment_pair` (TensorFlow), :func:`random_windows`
(its NumPy twin of the window choice), :func:`training_dataset` (``tf.data``) and,
for validation during training, :func:`validation_tiles` (NumPy). The preprocessing
it feeds on is in :mod:`nucleilib.preprocess`.

TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .validation import non_negative_int
from .validation import positive_int as _positive_int

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

#: Half-width of the uniform brightness jitter (added to the image, scale 0-1).
BRIGHTNESS_DELTA = 0.1
#: Range of the uniform contrast jitter factor (applied around each channel's mean).
CONTRAST_RANGE = (0.8, 1.2)
#: Probabilities of the colour augmentation's discrete steps (see :func:`augment_pair`).
CHANNEL_SHUFFLE_P, GREY_P, INVERT_P = 0.5, 0.2, 0.1
#: Range of the per-channel gain and half-width of the per-channel offset ("stain" tint).
TINT_GAIN, TINT_OFFSET = (0.6, 1.4), 0.1
#: Hue shift half-width (fraction of the colour wheel) and saturation factor range.
HUE_DELTA, SATURATION_RANGE = 0.1, (0.5, 1.5)
#: How :func:`random_windows` may weight the choice of image.
WEIGHTINGS = ("sqrt_area", "uniform", "area")


# --------------------------------------------------------------------------- validation


def _pairs(images: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Validated float32 (H, W, C) images and (H, W, K) targets with matching sizes."""
    if len(images) != len(targets):
        raise ValueError(f"got {len(images)} images but {len(targets)} targets")
    if len(images) == 0:
        raise ValueError("no images given")
    out_images, out_targets = [], []
    for i, (image, target) in enumerate(zip(images, targets)):
        image = np.asarray(image, dtype=np.float32)
        target = np.asarray(target, dtype=np.float32)
        if image.ndim != 3 or target.ndim != 3:
            raise ValueError(
                f"item {i}: expected (H, W, C) image and (H, W, K) target, got {image.shape} and {target.shape}"
            )
        if image.shape[:2] != target.shape[:2]:
            raise ValueError(f"item {i}: image {image.shape} and target {target.shape} differ in size")
        if 0 in image.shape:
            raise ValueError(f"item {i}: empty image of shape {image.shape}")
        if out_images and image.shape[-1] != out_images[0].shape[-1]:
            raise ValueError(f"item {i}: {image.shape[-1]} image channels, item 0 has {out_images[0].shape[-1]}")
        if out_targets and target.shape[-1] != out_targets[0].shape[-1]:
            raise ValueError(f"item {i}: {target.shape[-1]} target channels, item 0 has {out_targets[0].shape[-1]}")
        out_images.append(image)
        out_targets.append(target)
    return out_images, out_targets


def _reflect_index(indices: np.ndarray, n: int) -> np.ndarray:
    """Indices into an axis of length ``n`` with out-of-range ones mirrored.

    The mirror excludes the edge pixel (NumPy's ``"reflect"`` mode: ``... 2 1 | 0 1 2 ... n-1 | n-2 ...``)
    and repeats as often as needed, so any padding width works.
    """
    period = max(2 * (n - 1), 1)  # n == 1: everything folds onto index 0
    folded = np.mod(indices, period)
    return np.where(folded >= n, period - folded, folded)


# --------------------------------------------------------------------------- augmentation (TensorFlow)


def context_size(crop: int, scale_jitter: float = 1.0) -> int:
    """Side of the window to rotate so that a centred ``crop`` x ``crop`` square stays inside.

    ``ceil(crop * scale_jitter * sqrt(2))`` rounded up to an even number: a square rotated
    by any angle about the window centre, and zoomed out by up to ``scale_jitter``, fits in
    the window, so the crop never shows empty corners.

    Examples
    --------
    >>> context_size(128), context_size(64), context_size(32), context_size(128, 1.25)
    (182, 92, 46, 228)
    """
    crop = _positive_int(crop, "crop")
    scale_jitter = _scale_jitter(scale_jitter)
    side = math.ceil(crop * scale_jitter * math.sqrt(2))
    return side + side % 2


def _scale_jitter(value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 1.0):
        raise ValueError(f"scale_jitter must be a number >= 1 (1: no zoom), got {value!r}")
    return float(value)


def _crop_rotation(
    angle: tf.Tensor, height: tf.Tensor, width: tf.Tensor, crop: int, zoom: tf.Tensor | None = None
) -> tf.Tensor:
    """The (1, 8) projective transform mapping crop pixels to window pixels.

    Output pixel ``(x, y)`` of the crop is read at the window point obtained by
    rotating it by ``angle`` about the crop centre (and stretching it by ``zoom``:
    above 1 the crop covers more of the window, so nuclei look smaller) and shifting
    it by the integer offset of the centre crop, so an angle of 0 is an exact centre crop.
    """
    import tensorflow as tf

    centre = (crop - 1) / 2.0
    cx = tf.cast((width - crop) // 2, tf.float32) + centre
    cy = tf.cast((height - crop) // 2, tf.float32) + centre
    cos, sin = tf.cos(angle), tf.sin(angle)
    if zoom is not None:
        cos, sin = cos * zoom, sin * zoom
    # x_in = cos (x - c) - sin (y - c) + cx ;  y_in = sin (x - c) + cos (y - c) + cy
    zero = tf.zeros_like(cos)
    return tf.reshape(
        tf.stack(
            [
                cos,
                -sin,
                cx - cos * centre + sin * centre,
                sin,
                cos,
                cy - sin * centre - cos * centre,
                zero,
                zero,
            ]
        ),
        (1, 8),
    )


def augment_pair(
    image: tf.Tensor | np.ndarray,
    target: tf.Tensor | np.ndarray,
    *,
    crop: int,
    rotate: bool = True,
    flip: bool = True,
    jitter: bool = True,
    scale_jitter: float = 1.0,
    colour: bool = False,
    seed: tf.Tensor | Sequence[int] | None = None,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Randomly rotate, zoom, crop, flip and jitter an image window and its target alike.

    Works eagerly and inside :func:`tf.function` / ``tf.data`` maps. Steps:

    1. ``rotate``: a random angle, uniform in [0, 2 pi), about the centre of the
       crop. The rotation and the centre crop to ``crop`` x ``crop`` are one
       projective transform (``tf.raw_ops.ImageProjectiveTransformV3``), computed
       once and applied to the image with ``"BILINEAR"`` and to the target with
       ``"NEAREST"`` interpolation (so target values stay exactly those of the
       input), ``fill_mode="REFLECT"``. A window of :func:`context_size` (crop)
       has no empty corners anyway. Without ``rotate``, a plain centre crop.
    2. ``flip``: a left-right and an up-down flip, each with probability 1/2,
       applied to image and target together.
    3. ``jitter`` (image only): add a brightness offset uniform in
       [-:data:`BRIGHTNESS_DELTA`, +:data:`BRIGHTNESS_DELTA`], then scale each
       channel about its mean by a contrast factor uniform in
       :data:`CONTRAST_RANGE`, then clip to [0, 1].
    4. ``colour`` (image only, three channels): what tells imaging modalities apart, so that
       a network trained on some does not fail on others. A random channel permutation
       (probability :data:`CHANNEL_SHUFFLE_P`), a per-channel gain in :data:`TINT_GAIN` and
       offset within :data:`TINT_OFFSET` (a stain-like tint, which also colours grey
       images), a hue shift within :data:`HUE_DELTA` and a saturation factor in
       :data:`SATURATION_RANGE`, then grey conversion (probability :data:`GREY_P`) and
       inversion ``1 - x`` (probability :data:`INVERT_P`).

    Randomness comes only from stateless random ops keyed by ``seed``, so the
    same seed always gives the same result; the draws of one step do not
    depend on whether the other steps are enabled.

    Parameters
    ----------
    image : tensor or ndarray, shape (H0, W0, C)
        Window of the preprocessed image, values in [0, 1].
    target : tensor or ndarray, shape (H0, W0, K)
        The matching window of the targets.
    crop : int
        Side of the output; ``H0, W0 >= context_size(crop)`` when ``rotate`` (checked
        when the shapes are known statically), ``>= crop`` otherwise.
    rotate, flip, jitter, colour : bool
        Which augmentations to apply.
    scale_jitter : float
        Largest zoom factor (and inverse of the smallest), ``>= 1``; 1 is no zoom.
    seed : tensor or pair of int, optional
        Shape-(2,) integer seed of the stateless random ops. ``None`` draws one
        from ``tf.random.uniform`` (which follows the global TensorFlow seed).

    Returns
    -------
    image : tensor of float32, shape (crop, crop, C)
    target : tensor of float32, shape (crop, crop, K)

    Raises
    ------
    ValueError
        If ``crop`` is not a positive integer, or the static shapes are not
        3-D, differ in size, or are too small.

    Examples
    --------
    >>> import numpy as np
    >>> window = np.random.default_rng(0).random((46, 46, 3), dtype=np.float32)
    >>> image, target = augment_pair(window, window[..., :1] > 0.5, crop=32, seed=(1, 2))
    >>> tuple(image.shape), tuple(target.shape)
    ((32, 32, 3), (32, 32, 1))
    """
    import tensorflow as tf

    crop = _positive_int(crop, "crop")
    scale_jitter = _scale_jitter(scale_jitter)
    if scale_jitter > 1.0 and not rotate:
        raise ValueError("scale_jitter > 1 needs rotate=True (the zoom is part of the rotation's transform)")
    image = tf.convert_to_tensor(image)
    target = tf.convert_to_tensor(target)
    image = tf.cast(image, tf.float32)
    target = tf.cast(target, tf.float32)
    if image.shape.rank is not None and image.shape.rank != 3:
        raise ValueError(f"image: expected shape (H0, W0, C), got {image.shape}")
    if target.shape.rank is not None and target.shape.rank != 3:
        raise ValueError(f"target: expected shape (H0, W0, K), got {target.shape}")
    needed = context_size(crop, scale_jitter) if rotate else crop
    for axis, name in ((0, "height"), (1, "width")):
        size, other = image.shape[axis], target.shape[axis]
        if size is not None and other is not None and size != other:
            raise ValueError(f"image and target differ in {name}: {size} != {other}")
        if size is not None and size < needed:
            raise ValueError(
                f"window {name} {size} is smaller than {needed} "
                f"({'context_size(crop)' if rotate else 'crop'} for crop={crop})"
            )
    channels = image.shape[-1]
    target_channels = target.shape[-1]

    if seed is None:
        seed = tf.random.uniform([2], maxval=np.iinfo(np.int64).max, dtype=tf.int64)
    seed = tf.cast(seed, tf.int64)
    seeds = tf.random.experimental.stateless_split(seed, num=5)

    height, width = tf.shape(image)[0], tf.shape(image)[1]
    if rotate:
        angle = tf.random.stateless_uniform([], seeds[0], 0.0, 2.0 * math.pi)
        zoom = None
        if scale_jitter > 1.0:
            # Its own key, so the other steps' draws do not depend on whether it is on.
            log_zoom = tf.random.stateless_uniform(
                [], tf.random.experimental.stateless_fold_in(seed, 101), -math.log(scale_jitter), math.log(scale_jitter)
            )
            zoom = tf.exp(log_zoom)
        transform = _crop_rotation(angle, height, width, crop, zoom)
        output_shape = tf.constant([crop, crop], tf.int32)
        fill = tf.constant(0.0, tf.float32)

        def warp(x: tf.Tensor, interpolation: str) -> tf.Tensor:
            return tf.raw_ops.ImageProjectiveTransformV3(
                images=x[None],
                transforms=transform,
                output_shape=output_shape,
                fill_value=fill,
                interpolation=interpolation,
                fill_mode="REFLECT",
            )[0]

        image = warp(image, "BILINEAR")
        target = warp(target, "NEAREST")
    else:
        top, left = (height - crop) // 2, (width - crop) // 2
        image = image[top : top + crop, left : left + crop]
        target = target[top : top + crop, left : left + crop]

    if flip:
        both = tf.concat([image, target], axis=-1)
        for axis, key in ((1, seeds[1]), (0, seeds[2])):
            flipped = tf.random.stateless_uniform([], key) < 0.5
            both = tf.cond(flipped, lambda b=both, a=axis: tf.reverse(b, [a]), lambda b=both: b)
        n = channels if channels is not None else tf.shape(image)[-1]
        image, target = both[..., :n], both[..., n:]

    if jitter:
        delta = tf.random.stateless_uniform([], seeds[3], -BRIGHTNESS_DELTA, BRIGHTNESS_DELTA)
        factor = tf.random.stateless_uniform([], seeds[4], CONTRAST_RANGE[0], CONTRAST_RANGE[1])
        image = image + delta
        mean = tf.reduce_mean(image, axis=(0, 1), keepdims=True)
        image = tf.clip_by_value((image - mean) * factor + mean, 0.0, 1.0)

    if colour and channels == 3:
        image = _colour_jitter(image, tf.random.experimental.stateless_fold_in(seed, 202))

    image = tf.ensure_shape(image, (crop, crop, channels))
    target = tf.ensure_shape(target, (crop, crop, target_channels))
    return image, target


def _colour_jitter(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Step 4 of :func:`augment_pair` on a (H, W, 3) image in [0, 1]."""
    import tensorflow as tf

    keys = tf.random.experimental.stateless_split(seed, num=8)
    order = tf.argsort(tf.random.stateless_uniform([3], keys[0]))
    shuffle = tf.random.stateless_uniform([], keys[1]) < CHANNEL_SHUFFLE_P
    image = tf.cond(shuffle, lambda: tf.gather(image, order, axis=-1), lambda: image)
    gain = tf.random.stateless_uniform([3], keys[2], *TINT_GAIN)
    offset = tf.random.stateless_uniform([3], keys[3], -TINT_OFFSET, TINT_OFFSET)
    image = tf.clip_by_value(image * gain + offset, 0.0, 1.0)
    image = tf.image.stateless_random_hue(image, HUE_DELTA, keys[4])
    image = tf.image.stateless_random_saturation(image, *SATURATION_RANGE, keys[5])
    grey = tf.random.stateless_uniform([], keys[6]) < GREY_P
    image = tf.cond(grey, lambda: tf.repeat(tf.reduce_mean(image, -1, keepdims=True), 3, axis=-1), lambda: image)
    invert = tf.random.stateless_uniform([], keys[7]) < INVERT_P
    image = tf.cond(invert, lambda: 1.0 - image, lambda: image)
    return tf.clip_by_value(image, 0.0, 1.0)


# --------------------------------------------------------------------------- data sets


def random_windows(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    size: int,
    rng: np.random.Generator | int | None,
    *,
    margin: int = 0,
    weighting: str = "sqrt_area",
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless random ``size`` x ``size`` windows of images and their targets.

    Each step picks an image at random, with probability proportional to the
    square root of its area by default (a compromise between every image
    counting alike, ``"uniform"``, and every pixel counting alike, ``"area"``,
    which would let the few very large DSB images dominate), then a window
    position uniformly among those that fit. The image is first thought of as
    reflect-padded by ``margin`` pixels on every side, and further (evenly on
    both sides) where it is still smaller than ``size``; the padding is
    NumPy's ``"reflect"`` mode and is applied identically to image and target,
    only to the windows that need it.

    Parameters
    ----------
    images : sequence of ndarray, shape (H, W, C)
        Preprocessed images (see :func:`preprocess`), any sizes, same C.
    targets : sequence of ndarray, shape (H, W, K)
        The matching targets (see :func:`make_targets`), same K.
    size : int
        Side of the windows.
    rng : numpy Generator, int or None
        Source of randomness (an int or None seeds :func:`numpy.random.default_rng`).
    margin : int
        Reflect padding around every image, ``>= 0``. :func:`training_dataset`
        draws its windows by the same rules (in TensorFlow, with its own random
        stream) and a margin of ``(size - crop) // 2``, so that the centre crop
        can reach the image edges.
    weighting : {"sqrt_area", "uniform", "area"}
        How images are weighted.

    Yields
    ------
    image : ndarray of float32, shape (size, size, C)
    target : ndarray of float32, shape (size, size, K)

    Examples
    --------
    >>> import numpy as np
    >>> windows = random_windows([np.zeros((20, 30, 3))], [np.zeros((20, 30, 2))], 16, rng=0)
    >>> image, target = next(windows)
    >>> image.shape, target.shape
    ((16, 16, 3), (16, 16, 2))
    """
    size = _positive_int(size, "size")
    non_negative_int(margin, "margin")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; choose from {', '.join(WEIGHTINGS)}")
    images, targets = _pairs(images, targets)
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    areas = np.array([float(im.shape[0] * im.shape[1]) for im in images])
    weights = {"sqrt_area": np.sqrt(areas), "uniform": np.ones_like(areas), "area": areas}[weighting]
    probabilities = weights / weights.sum()
    return _windows(images, targets, size, int(margin), probabilities, rng)


def _windows(
    images: list[np.ndarray],
    targets: list[np.ndarray],
    size: int,
    margin: int,
    probabilities: np.ndarray,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    while True:
        k = int(rng.choice(len(images), p=probabilities))
        image, target = images[k], targets[k]
        starts = []
        for n in image.shape[:2]:
            padded = max(n + 2 * margin, size)
            before = margin + (padded - n - 2 * margin) // 2
            starts.append(int(rng.integers(0, padded - size + 1)) - before)
        (y, x), (height, width) = starts, image.shape[:2]
        if 0 <= y and y + size <= height and 0 <= x and x + size <= width:
            index: Any = (slice(y, y + size), slice(x, x + size))
        else:
            rows = _reflect_index(np.arange(y, y + size), height)
            cols = _reflect_index(np.arange(x, x + size), width)
            index = np.ix_(rows, cols)
        yield np.ascontiguousarray(image[index]), np.ascontiguousarray(target[index])


def _padded_start(n: tf.Tensor, size: int, margin: int, key: tf.Tensor) -> tf.Tensor:
    """Random first row (or column) of a window, in the coordinates of the unpadded axis."""
    import tensorflow as tf

    padded = tf.maximum(n + 2 * margin, size)
    before = margin + (padded - n - 2 * margin) // 2
    start = tf.random.stateless_uniform([], key, minval=0, maxval=padded - size + 1, dtype=tf.int64)
    return start - before


def _tf_reflect_index(indices: tf.Tensor, n: tf.Tensor) -> tf.Tensor:
    """TensorFlow twin of :func:`_reflect_index`."""
    import tensorflow as tf

    period = tf.maximum(2 * (n - 1), 1)  # n == 1: everything folds onto index 0
    folded = tf.math.floormod(indices, period)
    return tf.where(folded >= n, period - folded, folded)


def training_dataset(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    crop: int = 128,
    batch_size: int = 8,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    augment: bool = True,
    scale_jitter: float = 1.0,
    colour: bool = False,
    weights: Sequence[float] | None = None,
    parallel: bool = True,
    prefetch: bool = True,
) -> tf.data.Dataset:
    """An endless, augmented ``tf.data`` stream of training batches.

    Element ``i`` of the stream is made from the stateless random seed
    ``(seed, i)`` alone, entirely by TensorFlow ops inside one parallel map
    (``num_parallel_calls=AUTOTUNE``, order-preserving):

    1. a random window of side ``context_size(crop, scale_jitter)`` (``crop`` without
       ``augment``) is cut from a random image, by the rules of
       :func:`random_windows`: images weighted by the square root of their
       area (times ``weights``), window positions uniform, images reflect-padded by a margin of
       ``(context_size(crop) - crop) // 2`` (so crops reach the image edges; no
       margin without ``augment``) and further where still smaller than the
       window;
    2. with ``augment``, :func:`augment_pair` (rotation, centre crop, flips,
       brightness/contrast jitter).

    Then ``.batch(batch_size, drop_remainder=True)`` and ``.prefetch(AUTOTUNE)``
    (``parallel=False`` and ``prefetch=False`` turn the parallel map and the
    prefetch off, for benchmarks). The stream never ends (no ``.repeat`` needed): give Keras
    ``fit(..., steps_per_epoch=n)``. A new iterator restarts the same stream,
    so the same ``seed`` yields the same batches, in the same order.

    All images and targets are copied once into two flat TensorFlow tensors
    that the map function indexes with ``tf.gather``. Windows are *not* drawn
    by a Python generator (``Dataset.from_generator``): that runs under the
    GIL, and deleting an iterator while its prefetch thread is inside the
    generator can deadlock (seen with TensorFlow 2.14).

    Parameters
    ----------
    images : sequence of ndarray, shape (H, W, C)
        Preprocessed float32 images (:func:`preprocess`), any sizes, same C.
    targets : sequence of ndarray, shape (H, W, K)
        Matching targets (:func:`make_targets`, possibly fewer channels).
    crop : int
        Side of the training crops.
    batch_size : int
        Crops per batch.
    steps_per_epoch : int, optional
        ``None`` (default): infinite. An integer makes the data set finite with
        that many batches; each iteration then repeats the *same* batches, which
        suits benchmarks and fixed evaluation sets, not multi-epoch training.
    seed : int
        Seed of the window choice and of the augmentation, ``>= 0``.
    augment : bool
        Apply :func:`augment_pair`.
    scale_jitter, colour : float, bool
        Passed to :func:`augment_pair` (zoom range and colour augmentation).
    weights : sequence of float, optional
        Per-image factors of the chance to be drawn (for instance to balance imaging
        modalities); positive and finite.
    parallel : bool
        Run the map in parallel (``num_parallel_calls=AUTOTUNE``, the default);
        ``False`` makes it sequential. The elements are the same either way.
    prefetch : bool
        End with ``.prefetch(AUTOTUNE)`` (the default). ``parallel=False,
        prefetch=False`` is the unoptimised baseline of
        :func:`nucleilib.study.benchmarks.training_throughput`.

    Returns
    -------
    tf.data.Dataset
        Elements ``(x, y)``: float32 tensors of shape ``(batch_size, crop, crop, C)``
        and ``(batch_size, crop, crop, K)``.

    Raises
    ------
    ValueError
        For mismatched images and targets or invalid arguments.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.random((100, 120, 3), dtype=np.float32)]
    >>> targets = [np.zeros((100, 120, 2), np.float32)]
    >>> x, y = next(iter(training_dataset(images, targets, crop=32, batch_size=4)))
    >>> tuple(x.shape), tuple(y.shape)
    ((4, 32, 32, 3), (4, 32, 32, 2))
    """
    import tensorflow as tf

    crop = _positive_int(crop, "crop")
    batch_size = _positive_int(batch_size, "batch_size")
    if steps_per_epoch is not None:
        steps_per_epoch = _positive_int(steps_per_epoch, "steps_per_epoch")
    non_negative_int(seed, "seed")
    images, targets = _pairs(images, targets)
    size = context_size(crop, scale_jitter) if augment else crop
    margin = (context_size(crop) - crop) // 2 if augment else 0
    if weights is None:
        weights = np.ones(len(images))
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(images),) or not np.all(np.isfinite(weights) & (weights > 0)):
        raise ValueError(f"weights: expected {len(images)} positive finite numbers, one per image")
    channels, target_channels = images[0].shape[-1], targets[0].shape[-1]

    shapes = np.array([image.shape[:2] for image in images], dtype=np.int64)
    areas = shapes[:, 0] * shapes[:, 1]
    heights, widths = tf.constant(shapes[:, 0]), tf.constant(shapes[:, 1])
    offsets = tf.constant(np.concatenate([[0], np.cumsum(areas)[:-1]]).astype(np.int64))
    log_weights = tf.constant((0.5 * np.log(areas.astype(np.float64)) + np.log(weights))[None], tf.float32)
    pixels = tf.convert_to_tensor(np.concatenate([image.reshape(-1, channels) for image in images]))
    target_pixels = tf.convert_to_tensor(np.concatenate([t.reshape(-1, target_channels) for t in targets]))
    key = tf.constant(int(seed), tf.int64)
    steps = tf.range(size, dtype=tf.int64)

    def element(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        keys = tf.random.experimental.stateless_split(tf.stack([key, index]), num=4)
        k = tf.random.stateless_categorical(log_weights, 1, keys[0], dtype=tf.int64)[0, 0]
        height, width = heights[k], widths[k]
        rows = _tf_reflect_index(_padded_start(height, size, margin, keys[1]) + steps, height)
        cols = _tf_reflect_index(_padded_start(width, size, margin, keys[2]) + steps, width)
        flat = offsets[k] + rows[:, None] * width + cols[None, :]
        image = tf.ensure_shape(tf.gather(pixels, flat), (size, size, channels))
        target = tf.ensure_shape(tf.gather(target_pixels, flat), (size, size, target_channels))
        if augment:
            image, target = augment_pair(
                image, target, crop=crop, scale_jitter=scale_jitter, colour=colour, seed=keys[3]
            )
        return image, target

    dataset = tf.data.Dataset.range(np.iinfo(np.int64).max).map(
        element,
        num_parallel_calls=tf.data.AUTOTUNE if parallel else None,
        deterministic=True if parallel else None,
    )
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if steps_per_epoch is not None:
        dataset = dataset.take(steps_per_epoch)
    return dataset.prefetch(tf.data.AUTOTUNE) if prefetch else dataset


def validation_tiles(
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    tile: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Cut images and targets into non-overlapping tiles for validation.

    Each image is reflect-padded at its bottom and right edges (NumPy's
    ``"reflect"`` mode, the same for image and target, so the padded parts stay
    consistent) up to a multiple of ``tile`` and cut into a grid of tiles, row
    by row, images in order. Deterministic.

    Parameters
    ----------
    images : sequence of ndarray, shape (H, W, C)
        Preprocessed images.
    targets : sequence of ndarray, shape (H, W, K)
        Matching targets.
    tile : int
        Side of the tiles.

    Returns
    -------
    x : ndarray of float32, shape (N, tile, tile, C)
    y : ndarray of float32, shape (N, tile, tile, K)
        ``N`` is the sum over images of ``ceil(H / tile) * ceil(W / tile)``.

    Examples
    --------
    >>> import numpy as np
    >>> x, y = validation_tiles([np.zeros((300, 520, 3))], [np.zeros((300, 520, 2))], tile=256)
    >>> x.shape, y.shape
    ((6, 256, 256, 3), (6, 256, 256, 2))
    """
    tile = _positive_int(tile, "tile")
    images, targets = _pairs(images, targets)
    xs, ys = [], []
    for image, target in zip(images, targets):
        height, width = image.shape[:2]
        rows_n, cols_n = -(-height // tile), -(-width // tile)
        rows = _reflect_index(np.arange(rows_n * tile), height)
        index = np.ix_(rows, _reflect_index(np.arange(cols_n * tile), width))
        for array, out in ((image, xs), (target, ys)):
            grid = array[index].reshape(rows_n, tile, cols_n, tile, array.shape[-1]).swapaxes(1, 2)
            out.append(grid.reshape(-1, tile, tile, array.shape[-1]))
    return np.concatenate(xs).astype(np.float32, copy=False), np.concatenate(ys).astype(np.float32, copy=False)
