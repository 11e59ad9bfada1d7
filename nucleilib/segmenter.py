"""Segmenting images with a trained network: the one obvious call.

>>> from nucleilib import Segmenter
>>> segmenter = Segmenter.from_pretrained("unet-dsb2018")
>>> image = np.zeros((300, 400), np.uint8)                      # or the path of an image file
>>> labels = segmenter.segment(image)
>>> labels.shape
(300, 400)

A :class:`Segmenter` holds a network (any backend of :data:`nucleilib.backends.BACKENDS`)
and the model's configuration: how to preprocess an image as in training, the
probability thresholds and the instance separation method. It pads or tiles images of
any size, so ``segment`` takes a whole microscopy image and returns labels of the same
height and width (0 background, 1..n nuclei).

The classical baseline (:func:`classical_labels`) and the evaluation of a segmenter on
annotated samples (:func:`evaluate_model`) live here too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import Sample
from .evaluation import evaluate_pairs
from .inference import METHODS, PredictFn, dihedral_average, object_table, predict_tiled, separate
from .io import as_rgb8, read_image
from .models import ModelConfig
from .preprocess import COLOUR_INPUTS, Levels, image_levels, preprocess
from .progress import Countdown
from .scale import limit_upscale, rescale_image, resize_labels, scale_factor, typical_diameter
from .validation import multiple_of, non_negative_int, one_of, open_unit_interval, positive_int

SEPARATION_METHODS = METHODS
#: Overlap of neighbouring tiles (pixels) when an image is larger than the tile.
TILE_OVERLAP = 32
#: Further passes of the automatic size estimate, and the change of scale (ratio) below
#: which it stops: a first pass at the image's own scale, then up to two at the scale
#: its nuclei suggest.
AUTO_PASSES, AUTO_TOLERANCE = 2, 1.15
#: An image is never enlarged beyond this many pixels for the network (a 1024 x 1024 image at
#: most twice per side): bounded time and memory where a first pass mistakes debris for nuclei.
MAX_WORKING_PIXELS = 2048 * 2048
#: Test-time augmentation choices: views averaged (1: none).
TTA_CHOICES = (1, 4, 8)


@dataclasses.dataclass(frozen=True)
class Segmentation:
    """The result of :meth:`Segmenter.segment_instances`.

    Attributes
    ----------
    labels : ndarray, shape (H, W)
        Instance labels at the input's size (0 background, 1..n nuclei).
    diameter : float
        The image's nucleus diameter (pixels) the image was rescaled by, given or
        estimated; NaN when it was segmented at its own scale.
    scale : float
        The factor the image was resized by before the network (1: its own scale).
    """

    labels: np.ndarray
    diameter: float
    scale: float


def _diameter_setting(value: object) -> str | float | None:
    if value is None or value == "auto":
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"diameter must be 'auto', a number of pixels or None, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"diameter must be 'auto', a positive number of pixels or None, got {value!r}")
    return float(value)


class Segmenter:
    """A trained network with its preprocessing and post-processing, ready to segment images.

    Parameters
    ----------
    predict_fn : callable
        Float32 batch ``(N, H, W, C)`` -> probabilities ``(N, H, W, K)``.
    config : ModelConfig
        Preprocessing, thresholds and separation method of the model.
    name : str
        What to call the model in messages and tables.
    backend : str
        The engine behind ``predict_fn``.
    tile : int
        Images larger than this (in either side) are predicted in overlapping tiles
        of this size (a multiple of 16 above ``2 * TILE_OVERLAP``, so at least 80).
    diameter : "auto", float or None
        Nucleus size handling of a scale-aware model (one whose ``config.diameter`` is
        set): ``"auto"`` estimates each image's nucleus diameter (the area-weighted median
        of :func:`nucleilib.scale.typical_diameter` over the nuclei of a first pass at the
        image's scale, then of up to :data:`AUTO_PASSES` at the scale it suggests), a number
        is the diameter in pixels of the user's nuclei; the image is resized so that
        nuclei are ``config.diameter`` across (by a factor within
        :data:`nucleilib.scale.FACTOR_LIMITS`, and never to more than
        :data:`MAX_WORKING_PIXELS`), and the labels are mapped back. ``None``
        segments every image at its own scale (as does ``"auto"`` with a model that is
        not scale-aware).
    tta : int
        Test-time augmentation: probabilities averaged over 1 (none), 4 (flips) or 8
        (flips and 90-degree rotations) views, at that many times the cost.
    tile_batch : int
        Tiles given to the network per call when an image is tiled. Blockwise segmentation
        (:mod:`nucleilib.big`) gives one: a TensorFlow Lite model keeps a working memory per
        batch shape, and four tiles a call cost about 0.5 GiB more at blocks of 4096 pixels
        for no speed on a CPU.

    Examples
    --------
    A stand-in network that calls every bright pixel a nucleus:

    >>> config = ModelConfig(outputs=("foreground",), invert_bright=False, separation="components")
    >>> segmenter = Segmenter(lambda x: x[..., :1], config)
    >>> image = np.zeros((40, 50), np.uint8); image[5:15, 5:15] = 255; image[25:35, 30:45] = 200
    >>> labels = segmenter.segment(image)
    >>> labels.shape, int(labels.max())
    ((40, 50), 2)
    """

    def __init__(
        self,
        predict_fn: PredictFn,
        config: ModelConfig,
        *,
        name: str = "model",
        backend: str = "custom",
        tile: int = 512,
        diameter: str | float | None = "auto",
        tta: int = 1,
        tile_batch: int = 4,
    ) -> None:
        if not callable(predict_fn):
            raise TypeError(f"predict_fn must be callable, got {type(predict_fn).__name__}")
        self.predict_fn = predict_fn
        self.config = config
        self.name = name
        self.backend = backend
        self.diameter = _diameter_setting(diameter)
        if isinstance(self.diameter, float) and config.diameter is None:
            raise ValueError(
                f"model {name!r} is not scale-aware (its config.json has no 'diameter'), so it cannot rescale "
                f"images to a nucleus diameter of {self.diameter:g} pixels; use diameter 'auto' or None"
            )
        self.tta = int(one_of(tta, TTA_CHOICES, "tta"))
        self._network = dihedral_average(predict_fn, self.tta)
        self.tile = multiple_of(tile, 16, "tile")
        self.tile_batch = positive_int(tile_batch, "tile_batch")
        if self.tile <= 2 * TILE_OVERLAP:
            raise ValueError(
                f"tile must be a multiple of 16 above {2 * TILE_OVERLAP} "
                f"(tiles overlap by {TILE_OVERLAP} pixels), got {tile!r}"
            )
        #: Preprocessing decisions of a whole image this segmenter segments blocks of
        #: (:meth:`with_levels`); None: taken from each image given.
        self.levels: Levels | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] = "unet-dsb2018",
        *,
        backend: str = "keras",
        num_threads: int | None = None,
        tile: int = 512,
        diameter: str | float | None = "auto",
        tta: int = 1,
    ) -> Segmenter:
        """Load a model shipped with the package (by name) or a model folder (by path).

        Parameters
        ----------
        name_or_path : str or path-like
            ``"unet-dsb2018"`` (see :func:`nucleilib.models.available_models`) or a
            folder with ``config.json`` and ``weights.npz``.
        backend : {"keras", "xla", "tflite-float16", "tflite-int8", "auto"}
            Inference engine (see :func:`nucleilib.backends.load_predict_fn`); ``"auto"`` takes
            the faster shipped TensorFlow Lite model on this CPU, as ``nuclei predict`` does
            (:func:`nucleilib.backends.default_backend`). The default, ``"keras"``, gives the
            float model's exact probabilities.
        num_threads : int, optional
            TensorFlow Lite threads.
        tile, diameter, tta
            See :class:`Segmenter`.

        Raises
        ------
        ModelNotFoundError
            For an unknown model, or a backend whose file the folder lacks.
        """
        from .backends import default_backend, load_predict_fn

        if backend == "auto":
            backend = default_backend(name_or_path)
        predict_fn, config = load_predict_fn(name_or_path, backend, num_threads=num_threads)
        return cls(
            predict_fn, config, name=Path(name_or_path).name, backend=backend, tile=tile, diameter=diameter, tta=tta
        )

    from_folder = from_pretrained

    @classmethod
    def from_keras(
        cls,
        model: Any,
        config: ModelConfig,
        *,
        name: str = "model",
        jit_compile: bool = False,
        tile: int = 512,
        diameter: str | float | None = "auto",
        tta: int = 1,
    ) -> Segmenter:
        """Wrap a Keras model in memory (for instance one just trained)."""
        from .backends import keras_predict_fn

        return cls(
            keras_predict_fn(model, jit_compile=jit_compile),
            config,
            name=name,
            backend="xla" if jit_compile else "keras",
            tile=tile,
            diameter=diameter,
            tta=tta,
        )

    def with_settings(
        self,
        *,
        threshold: float | None = None,
        border_threshold: float | None = None,
        separation: str | None = None,
        min_size: int | None = None,
        diameter: str | float | None = "keep",
        tta: int | None = None,
        colour_input: str | None = None,
        tile_batch: int | None = None,
    ) -> Segmenter:
        """A copy with some settings changed (``None`` keeps the model's; for ``diameter``,
        ``"keep"`` keeps the segmenter's and ``None`` means the image's own scale;
        ``colour_input`` is one of :data:`nucleilib.preprocess.COLOUR_INPUTS`; ``tile_batch``
        and ``tta`` as for :class:`Segmenter`)."""
        changes: dict[str, Any] = {}
        if colour_input is not None:
            changes["colour_input"] = one_of(colour_input, COLOUR_INPUTS, "colour input")
        if threshold is not None:
            changes["threshold"] = open_unit_interval(threshold, "threshold")
        if border_threshold is not None:
            changes["border_threshold"] = open_unit_interval(border_threshold, "border_threshold")
        if separation is not None:
            changes["separation"] = one_of(separation, METHODS, "separation method")
        if min_size is not None:
            changes["min_size"] = non_negative_int(min_size, "min_size")
        copy = Segmenter(
            self.predict_fn,
            dataclasses.replace(self.config, **changes),
            name=self.name,
            backend=self.backend,
            tile=self.tile,
            diameter=self.diameter if diameter == "keep" else diameter,
            tta=self.tta if tta is None else tta,
            tile_batch=self.tile_batch if tile_batch is None else tile_batch,
        )
        copy.levels = self.levels
        return copy

    def with_levels(self, levels: Levels | None) -> Segmenter:
        """A copy that prepares every image it is given with ``levels``
        (:func:`nucleilib.preprocess.image_levels` of the whole image), for blocks of one image."""
        copy = self.with_settings()
        copy.levels = levels
        return copy

    def image_levels(self, image: np.ndarray) -> Levels:
        """:func:`nucleilib.preprocess.image_levels` of ``image`` with this model's preprocessing."""
        config = self.config
        return image_levels(
            as_rgb8(np.asarray(image), "image"),
            sigma=config.sigma,
            invert_bright=config.invert_bright,
            grey=config.in_channels == 1,
            colour_input=config.colour_input,
        )

    # ------------------------------------------------------------------ segmentation

    def _input(self, image: np.ndarray | str | os.PathLike[str]) -> np.ndarray:
        config = self.config
        return preprocess(
            _as_image(image),
            sigma=config.sigma,
            invert_bright=config.invert_bright,
            grey=config.in_channels == 1,
            colour_input=config.colour_input,
            levels=self.levels,
        )

    def _predict(self, x: np.ndarray, factor: float = 1.0, *, tta: bool = True) -> np.ndarray:
        network = self._network if tta else self.predict_fn
        return predict_tiled(
            network, rescale_image(x, factor), tile=self.tile, overlap=TILE_OVERLAP, batch_size=self.tile_batch
        )

    def probabilities(self, image: np.ndarray | str | os.PathLike[str]) -> np.ndarray:
        """Probability maps ``(H, W, K)`` of one image at its own scale and full resolution.

        The image (an array, or the path of an image file) is preprocessed as the
        model was trained, padded to a multiple of 16 (or cut into overlapping tiles
        when larger than ``tile``), predicted and cropped back. Channel 0 is the
        foreground; a two-output model's channel 1 is the touching border.
        """
        return self._predict(self._input(image))

    def scaled_probabilities(
        self, image: np.ndarray | str | os.PathLike[str], diameter: str | float | None = "keep"
    ) -> tuple[np.ndarray, float, float]:
        """Probability maps at the scale the segmenter works at for this image.

        Returns ``(probabilities, diameter, scale)``: the maps of the image resized by
        ``scale`` (see :class:`Segmenter`'s ``diameter``), and the nucleus diameter
        (pixels of the input) that chose it, NaN at the image's own scale.
        """
        setting = self.diameter if diameter == "keep" else _diameter_setting(diameter)
        x = self._input(image)
        reference = self.config.diameter
        if setting is None or reference is None:
            return self._predict(x), math.nan, 1.0

        def factor_for(diameter: float) -> float:
            return limit_upscale(scale_factor(diameter, reference), x.shape, MAX_WORKING_PIXELS)

        if isinstance(setting, float):
            factor = factor_for(setting)
            return self._predict(x, factor), setting, factor
        # The size estimate needs no test-time augmentation: only the final pass gets it.
        factor, probs = 1.0, self._predict(x, tta=False)
        chosen = math.nan  # the estimate the working scale was set by
        for attempt in range(AUTO_PASSES):
            estimate = typical_diameter(self.labels(probs), weighting="area") / factor
            proposed = factor_for(estimate)
            if attempt == 0:
                chosen = estimate
            if abs(math.log(proposed / factor)) <= math.log(AUTO_TOLERANCE):
                break
            factor, chosen = proposed, estimate
            probs = self._predict(x, factor, tta=False)
        if self.tta > 1:
            probs = self._predict(x, factor)
        return probs, chosen, factor

    def estimate_diameter(self, image: np.ndarray | str | os.PathLike[str]) -> float:
        """The typical nucleus diameter (pixels) of an image, as :class:`Segmenter`'s ``"auto"``
        finds it; NaN if no nucleus is found or the model is not scale-aware."""
        return self.scaled_probabilities(image, "auto")[1]

    def labels(self, probabilities: np.ndarray, separation: str | None = None) -> np.ndarray:
        """Instance labels from probability maps, with the model's thresholds
        (see :func:`labels_from_probabilities`)."""
        return labels_from_probabilities(probabilities, self.config, separation)

    def labels_at(self, probabilities: np.ndarray, shape: tuple[int, ...], separation: str | None = None) -> np.ndarray:
        """:meth:`labels` of (possibly rescaled) probability maps, mapped onto a grid of ``shape``."""
        from skimage.segmentation import relabel_sequential

        labels = self.labels(probabilities, separation)
        if labels.shape == tuple(shape[:2]):
            return labels
        return relabel_sequential(resize_labels(labels, shape))[0]

    def segment_instances(
        self,
        image: np.ndarray | str | os.PathLike[str],
        *,
        separation: str | None = None,
        diameter: str | float | None = "keep",
    ) -> Segmentation:
        """Labels of one image with the diameter and scale used (:class:`Segmentation`)."""
        image = _as_image(image)
        probs, used, factor = self.scaled_probabilities(image, diameter)
        return Segmentation(self.labels_at(probs, image.shape, separation), used, factor)

    def segment(
        self,
        image: np.ndarray | str | os.PathLike[str],
        *,
        separation: str | None = None,
        diameter: str | float | None = "keep",
    ) -> np.ndarray:
        """Instance labels ``(H, W)`` of one image: 0 background, 1..n nuclei.

        Parameters
        ----------
        image : ndarray or path-like
            Grey ``(H, W)``, RGB or RGBA ``(H, W, 3|4)``, 8- or 16-bit or float; or an
            image file (PNG, TIFF, JPEG).
        separation : str, optional
            Instance separation method; default the model's.
        diameter : "auto", float or None, optional
            The image's nucleus diameter in pixels (see :class:`Segmenter`); default the
            segmenter's setting.
        """
        return self.segment_instances(image, separation=separation, diameter=diameter).labels

    def measure(self, labels: np.ndarray) -> pd.DataFrame:
        """Per-nucleus table (label, area, centroid) of a label image."""
        return object_table(labels)

    def __repr__(self) -> str:
        return (
            f"Segmenter({self.name!r}, backend={self.backend!r}, architecture={self.config.architecture!r}, "
            f"separation={self.config.separation!r}, diameter={self.diameter!r}, tta={self.tta})"
        )


def labels_from_probabilities(
    probabilities: np.ndarray, config: ModelConfig, separation: str | None = None
) -> np.ndarray:
    """Instance labels from probability maps ``(H, W, K)`` with a model's thresholds.

    ``separation`` overrides the model's method (see :data:`SEPARATION_METHODS`).
    A single-output model has no border map, so ``"borders"`` falls back to
    ``"watershed"`` for it.
    """
    method = one_of(separation or config.separation, METHODS, "separation method")
    if method == "borders" and probabilities.shape[-1] < 2:
        method = "watershed"
    kwargs: dict[str, Any] = {"threshold": config.threshold, "min_size": config.min_size}
    if method == "borders":
        kwargs["border_threshold"] = config.border_threshold
    return separate(probabilities, method=method, **kwargs)


def _as_image(image: np.ndarray | str | os.PathLike[str]) -> np.ndarray:
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    return as_rgb8(np.asarray(image), "image")


def evaluate_model(
    segmenter: Segmenter | Any,
    config: ModelConfig | None,
    samples: Sequence[Sample],
    *,
    methods: Sequence[str] = SEPARATION_METHODS,
    keep_probabilities: bool = False,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-image metrics on annotated samples, for each separation method.

    Parameters
    ----------
    segmenter : Segmenter or tf.keras.Model
        A Keras model is wrapped with ``config`` (:meth:`Segmenter.from_keras`);
        pass ``config=None`` with a Segmenter.
    samples : sequence of Sample
    methods : sequence of str
        Separation methods to score (``"borders"`` is skipped for a one-output model).
    keep_probabilities : bool
        Also return the probability maps (at the scale the segmenter worked at).

    Returns
    -------
    metrics : DataFrame
        One row per (image, method): pixel and instance metrics (see
        :func:`nucleilib.evaluation.evaluate_pairs`) and the inference time; with a
        scale-aware segmenter that rescaled an image, also ``diameter`` and ``scale``.
    probabilities : dict
        Image id -> probability maps, when ``keep_probabilities``.
    """
    if not isinstance(segmenter, Segmenter):
        if config is None:
            raise ValueError("evaluate_model needs the model's config with a Keras model")
        segmenter = Segmenter.from_keras(segmenter, config)
    usable = [m for m in methods if not (m == "borders" and len(segmenter.config.outputs) < 2)]
    preds: dict[str, list[np.ndarray]] = {m: [] for m in usable}
    kept: dict[str, np.ndarray] = {}
    seconds, diameters, scales = [], [], []
    samples = list(samples)
    # Long evaluations report how far they are, about ten times (nucleilib.progress).
    every = max(10, len(samples) // 10)
    countdown = (
        Countdown(f"scoring {segmenter.name}", len(samples), every=every, unit="images") if len(samples) >= 20 else None
    )
    for sample in samples:
        start = time.perf_counter()
        probs, diameter, scale = segmenter.scaled_probabilities(sample.image)
        seconds.append(time.perf_counter() - start)
        diameters.append(diameter)
        scales.append(scale)
        if keep_probabilities:
            kept[sample.image_id] = probs
        for method in usable:
            preds[method].append(segmenter.labels_at(probs, sample.labels.shape, method))
        if countdown is not None:
            countdown.step()
    truths = [s.labels for s in samples]
    ids = [s.image_id for s in samples]
    frames = []
    for method in usable:
        frame = evaluate_pairs(truths, preds[method], ids=ids)
        frame["method"] = method
        frame["predict_s"] = seconds
        if any(scale != 1.0 for scale in scales):
            frame["diameter"] = diameters
            frame["scale"] = scales
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), kept


# --------------------------------------------------------------------------- classical baseline


def classical_labels(image: np.ndarray, *, sigma: float = 1.0, h: float = 2.0, min_size: int = 8) -> np.ndarray:
    """Nuclei of one image by the classical pipeline, with no learning at all.

    Grey conversion, Gaussian smoothing of ``sigma`` pixels, percentile
    normalisation, inversion of bright-background images (bright field,
    stained tissue) so that nuclei are bright, Otsu's threshold, then the
    distance-transform watershed of :func:`nucleilib.inference.label_distance_watershed`
    to split touching nuclei. It is the floor any learned model must beat.

    Parameters
    ----------
    image : ndarray, shape (H, W) or (H, W, 3)
        A raw image (any integer or float scale).
    sigma : float
        Gaussian smoothing before thresholding.
    h : float
        Marker dynamic of the watershed (pixels of distance).
    min_size : int
        Smallest nucleus kept.

    Returns
    -------
    ndarray of int32, shape (H, W)
        Labels 1..n, 0 for background.

    Examples
    --------
    >>> from skimage.draw import disk
    >>> img = np.zeros((64, 64), np.uint8); img[disk((20, 20), 8)] = 200; img[disk((44, 44), 8)] = 180
    >>> int(classical_labels(img).max())
    2
    """
    from skimage.filters import threshold_otsu

    from .inference import label_distance_watershed

    x = preprocess(image, sigma=sigma, invert_bright=True, grey=True)[..., 0]
    if float(x.max()) <= float(x.min()):
        return np.zeros(x.shape, np.int32)
    threshold = float(threshold_otsu(x))
    foreground = (x > threshold).astype(np.float32)
    return label_distance_watershed(foreground, threshold=0.5, h=h, min_size=min_size)


def evaluate_classical(samples: Sequence[Sample], **settings: Any) -> pd.DataFrame:
    """Per-image metrics of :func:`classical_labels` on annotated samples.

    Same columns as :func:`evaluate_model` (``method`` is ``"classical"``).
    """
    preds, seconds = [], []
    for sample in samples:
        start = time.perf_counter()
        preds.append(classical_labels(sample.image, **settings))
        seconds.append(time.perf_counter() - start)
    frame = evaluate_pairs([s.labels for s in samples], preds, ids=[s.image_id for s in samples])
    frame["method"] = "classical"
    frame["predict_s"] = seconds
    return frame
