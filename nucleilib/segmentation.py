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
