"""Applying a trained network to images: preprocessing, tiled prediction,
instance separation, and evaluation against annotated samples."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .data import Sample
from .evaluation import evaluate_pairs
from .inference import METHODS, predict_tiled, separate
from .models import ModelConfig
from .transforms import preprocess

SEPARATION_METHODS = METHODS


def keras_predict_fn(model: Any) -> Any:
    """Wrap a Keras model as a numpy batch -> numpy batch function.

    ``model(x, training=False)`` avoids the per-call overhead of ``predict``.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(batch: Any) -> Any:
        return model(batch, training=False)

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(forward(tf.convert_to_tensor(batch, dtype=tf.float32)))

    return predict


def predict_probabilities(model: Any, config: ModelConfig, image: np.ndarray, *, tile: int = 512,
                          predict_fn: Any = None) -> np.ndarray:
    """Probability maps (H, W, K) of one RGB image at full resolution.

    The image is preprocessed as the model was trained, padded to a multiple of
    16 (or cut into overlapping tiles when larger than ``tile``), predicted and
    cropped back.
    """
    x = preprocess(image, sigma=config.sigma, invert_bright=config.invert_bright, grey=config.in_channels == 1)
    fn = predict_fn or keras_predict_fn(model)
    return predict_tiled(fn, x, tile=tile)


def labels_from_probabilities(probs: np.ndarray, config: ModelConfig, method: str | None = None) -> np.ndarray:
    """Instance labels from probability maps with the model's thresholds."""
    method = method or config.separation
    # A single-channel model has no border map; fall back rather than fail.
    if method == "borders" and probs.shape[-1] < 2:
        method = "watershed"
    kwargs: dict[str, Any] = {"threshold": config.threshold, "min_size": config.min_size}
    if method == "borders":
        kwargs["border_threshold"] = config.border_threshold
    return separate(probs, method=method, **kwargs)


def evaluate_model(
    model: Any,
    config: ModelConfig,
    samples: Sequence[Sample],
    *,
    methods: Sequence[str] = SEPARATION_METHODS,
    keep_probabilities: bool = False,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-image metrics of a model on annotated samples, for each separation method.

    Returns
    -------
    metrics : DataFrame
        One row per (image, method): pixel and instance metrics (see
        :func:`nucleilib.evaluation.evaluate_pairs`) and the inference time.
    probabilities : dict
        Image id -> probability maps, when ``keep_probabilities``.
    """
    fn = keras_predict_fn(model)
    usable = [m for m in methods if not (m == "borders" and len(config.outputs) < 2)]
    preds: dict[str, list[np.ndarray]] = {m: [] for m in usable}
    kept: dict[str, np.ndarray] = {}
    seconds = []
    for sample in samples:
        start = time.perf_counter()
        probs = predict_probabilities(model, config, sample.image, predict_fn=fn)
        seconds.append(time.perf_counter() - start)
        if keep_probabilities:
            kept[sample.image_id] = probs
        for method in usable:
            preds[method].append(labels_from_probabilities(probs, config, method))
    truths = [s.labels for s in samples]
    ids = [s.image_id for s in samples]
    frames = []
    for method in usable:
        frame = evaluate_pairs(truths, preds[method], ids=ids)
        frame["method"] = method
        frame["predict_s"] = seconds
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
