"""Timing and throughput measurements of the speed chapter and ``benchmarks/``.

:func:`time_inference` times one ``predict_fn``; :func:`time_backends` a grid of
sizes and batches for several; :func:`evaluate_backends` checks that a faster
engine keeps the accuracy; :func:`training_throughput` measures training crops
per second in float32, bfloat16 and under XLA.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..backends import _check_kind, keras_predict_fn, tflite_predict_fn
from ..inference import PredictFn
from ..models import ModelConfig

#: Variants of :func:`training_throughput`.
THROUGHPUT_VARIANTS: tuple[str, ...] = ("plain", "tuned", "bfloat16", "xla")


# --------------------------------------------------------------------------- timing


class InferenceTiming(NamedTuple):
    """Result of :func:`time_inference` (times in milliseconds)."""

    ms_per_image: float  #: median over repeats of (batch time / batch)
    min_ms_per_image: float  #: fastest repeat / batch
    ms_per_batch: float  #: median batch time
    size: int
    batch: int
    repeats: int


def time_inference(predict_fn: PredictFn, size: int = 256, batch: int = 1, repeats: int = 10, warmup: int = 2,
                   *, channels: int = 3, seed: int = 0) -> InferenceTiming:
    """Wall time of ``predict_fn`` on a random ``(batch, size, size, channels)`` batch.

    ``warmup`` untimed calls first (tracing, compilation, allocation), then
    ``repeats`` timed calls of the same batch (inputs uniform in [0, 1]); the
    result is computed from the median and the fastest call. Only the network
    is timed: no preprocessing, tiling or post-processing.

    Returns
    -------
    InferenceTiming
        ``ms_per_image`` (median), ``min_ms_per_image``, ``ms_per_batch``
        (median), and the settings.

    Examples
    --------
    >>> time_inference(lambda x: x[..., :1], size=32, repeats=3).ms_per_image > 0
    True
    """
    for name, value, low in (("size", size, 1), ("batch", batch, 1), ("repeats", repeats, 1),
                             ("warmup", warmup, 0), ("channels", channels, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not callable(predict_fn):
        raise ValueError(f"predict_fn must be callable, got {type(predict_fn).__name__}")
    x = np.random.default_rng(seed).random((batch, size, size, channels), dtype=np.float32)
    for _ in range(warmup):
        np.asarray(predict_fn(x))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(predict_fn(x))
        seconds.append(time.perf_counter() - start)
    median = 1000 * float(np.median(seconds))
    return InferenceTiming(median / batch, 1000 * min(seconds) / batch, median, int(size), int(batch), int(repeats))


# --------------------------------------------------------------------------- training throughput


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bfloat16_support() -> dict[str, bool]:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16, AMX-BF16) and a GPU is visible."""
    import tensorflow as tf

    flags = cpu_flags()
    return {
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "gpu": bool(tf.config.list_physical_devices("GPU")),
    }


def training_throughput(config: Any, images: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                        variant: str = "tuned", steps: int = 10, warmup: int = 2, *, seed: int | None = None) -> float:
    """Training crops per second of one training set-up, input pipeline included.

    A fresh network of ``config.model`` is compiled like
    :func:`nucleilib.training.train` does (Adam, BCE + Dice, the accuracy and
    IoU metrics) and fed by :func:`nucleilib.pipeline.training_dataset`
    (``config.crop``, ``config.batch_size``, augmentation on); ``warmup``
    untimed steps (tracing, XLA compilation, filling the pipeline), then
    ``steps`` timed steps, each one call of Keras' own train function on the
    next batch of the same iterator.

    Parameters
    ----------
    config : TrainConfig
    images, targets : sequence of ndarray
        Preprocessed images and targets (:func:`nucleilib.training.prepare_arrays`).
    variant : {"plain", "tuned", "bfloat16", "xla"}
        ``"plain"``: sequential map and no prefetch, so the CPU alternates
        between making a batch and training on it. ``"tuned"``: the project's
        pipeline (parallel map, prefetch). ``"bfloat16"``: tuned plus the
        ``mixed_bfloat16`` Keras policy (restored afterwards). ``"xla"``: tuned
        plus ``compile(jit_compile=True)``.
    steps, warmup : int
        Timed and untimed training steps.
    seed : int, optional
        Default ``config.seed``.

    Returns
    -------
    float
        Crops per second over the timed steps.
    """
    import tensorflow as tf

    from ..models import build_model, compile_model
    from ..pipeline import training_dataset

    if variant not in THROUGHPUT_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(THROUGHPUT_VARIANTS)}")
    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    seed = config.seed if seed is None else seed
    plain = variant == "plain"
    dataset = training_dataset(images, targets, crop=config.crop, batch_size=config.batch_size, seed=seed,
                               parallel=not plain, prefetch=not plain)
    previous = tf.keras.mixed_precision.global_policy()
    try:
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16" if variant == "bfloat16" else "float32")
        tf.keras.utils.set_random_seed(seed)
        model = compile_model(build_model(config.model), learning_rate=config.learning_rate,
                              border_weight=config.border_weight, jit_compile=variant == "xla")
        train_step = model.make_train_function()
        iterator = iter(dataset)
        logs: Any = None
        for _ in range(warmup):
            logs = train_step(iterator)
        if logs is not None:
            float(logs["loss"])  # wait for the warm-up to finish
        start = time.perf_counter()
        for _ in range(steps):
            logs = train_step(iterator)
        float(logs["loss"])
        seconds = time.perf_counter() - start
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    return steps * config.batch_size / seconds


# --------------------------------------------------------------------------- the chapter's measurements

#: Labels of the backends compared by :func:`benchmark_predict_fns`, in order.
BENCHMARK_BACKENDS: dict[str, str] = {
    "keras-predict": "Keras model.predict",
    "keras": "Keras, tf.function",
    "xla": "Keras, XLA",
    "tflite-float32": "TFLite float32",
    "tflite-float16": "TFLite float16",
    "tflite-int8": "TFLite int8",
}


def benchmark_predict_fns(model: Any, tflite_models: dict[str, bytes] | None = None, *,
                          num_threads: int | None = None) -> dict[str, PredictFn]:
    """The ``predict_fn`` of every backend of :data:`BENCHMARK_BACKENDS` for one model.

    Parameters
    ----------
    model : tf.keras.Model
    tflite_models : dict, optional
        Kind (``"float32"``, ``"float16"``, ``"int8"``) -> flat buffer of
        :func:`to_tflite`; the kinds given add ``"tflite-<kind>"`` backends.
    num_threads : int, optional
        TensorFlow Lite threads (default ``os.cpu_count()``).
    """
    def keras_predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(batch, batch_size=len(batch), verbose=0))

    fns: dict[str, PredictFn] = {"keras-predict": keras_predict, "keras": keras_predict_fn(model),
                                 "xla": keras_predict_fn(model, jit_compile=True)}
    for kind, content in (tflite_models or {}).items():
        _check_kind(kind)
        fns[f"tflite-{kind}"] = tflite_predict_fn(content, num_threads=num_threads)
    return {name: fns[name] for name in BENCHMARK_BACKENDS if name in fns}


def timing_grid(sizes: Sequence[int], batches: Sequence[int], max_batch_pixels: int) -> list[tuple[int, int]]:
    """The (size, batch) pairs with ``batch * size**2 <= max_batch_pixels``, by size then batch.

    Examples
    --------
    >>> timing_grid([256, 512, 1024], [1, 4, 16], 16 * 256 * 256)
    [(256, 1), (256, 4), (256, 16), (512, 1), (512, 4), (1024, 1)]
    """
    grid = [(int(s), int(b)) for s in sorted(sizes) for b in sorted(batches) if b * s * s <= max_batch_pixels]
    if not grid:
        raise ValueError(f"no (size, batch) pair fits max_batch_pixels={max_batch_pixels}")
    return grid


def time_backends(fns: dict[str, PredictFn], grid: Sequence[tuple[int, int]], *, repeats: int = 5, warmup: int = 1,
                  channels: int = 3, progress: bool = False) -> Any:
    """:func:`time_inference` of every backend at every (size, batch) of ``grid``.

    The backends are interleaved at each grid point, so that a change of the
    machine's load during the run shifts all of them alike.

    Returns
    -------
    DataFrame
        One row per backend and grid point: ``backend``, ``label``, ``size``,
        ``batch``, ``ms_per_image`` (median), ``min_ms_per_image``,
        ``ms_per_batch``, ``repeats``, ``images_per_s``.
    """
    import pandas as pd

    rows = []
    points = list(grid)
    if progress:
        from tqdm.auto import tqdm

        points = tqdm(points, desc="timing", unit="point")
    for size, batch in points:
        for name, fn in fns.items():
            timing = time_inference(fn, size, batch, repeats, warmup, channels=channels)
            rows.append({"backend": name, "label": BENCHMARK_BACKENDS.get(name, name), **timing._asdict(),
                         "images_per_s": 1000.0 / timing.ms_per_image})
    columns = ["backend", "label", "size", "batch", "ms_per_image", "min_ms_per_image", "ms_per_batch", "repeats",
               "images_per_s"]
    return pd.DataFrame(rows)[columns]


def evaluate_backends(fns: dict[str, PredictFn], config: ModelConfig, samples: Sequence[Any], *,
                      method: str | None = None, reference: str = "keras", tile: int = 512,
                      progress: bool = False) -> Any:
    """Per-image accuracy of every backend on annotated samples, and how far each
    backend's probabilities move from the ``reference`` backend's.

    Each image is predicted at full resolution (padded, or tiled above ``tile``)
    by :meth:`nucleilib.segmenter.Segmenter.probabilities`, separated with the
    model's thresholds and ``method`` (default the model's), and scored by
    :func:`nucleilib.evaluation.evaluate_pairs`.

    Returns
    -------
    DataFrame
        One row per image and backend: ``backend``, the metrics of
        ``evaluate_pairs`` (``iou``, ``dsb_score``, ...), ``predict_s`` (network
        and tiling, compilation for a new shape included), and, against the
        reference backend, ``prob_max_abs_diff``, ``prob_mean_abs_diff`` and
        ``foreground_flips`` (share of pixels on the other side of the
        threshold).
    """
    import pandas as pd

    from ..evaluation import evaluate_pairs
    from ..segmenter import Segmenter

    if reference not in fns:
        raise ValueError(f"reference backend {reference!r} is not among {', '.join(fns)}")
    if not samples:
        raise ValueError("no samples to evaluate")
    order = [reference] + [name for name in fns if name != reference]
    segmenters = {name: Segmenter(fns[name], config, name=name, backend=name, tile=tile) for name in order}
    preds: dict[str, list[np.ndarray]] = {name: [] for name in order}
    extra: dict[str, list[dict[str, float]]] = {name: [] for name in order}
    items = list(samples)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="evaluating", unit="img")
    for sample in items:
        ref_probs: np.ndarray | None = None
        for name in order:
            start = time.perf_counter()
            probs = segmenters[name].probabilities(sample.image)
            seconds = time.perf_counter() - start
            if ref_probs is None:
                ref_probs = probs
            diff = np.abs(probs - ref_probs)
            flips = float(np.mean((probs[..., 0] > config.threshold) != (ref_probs[..., 0] > config.threshold)))
            extra[name].append({"predict_s": seconds, "prob_max_abs_diff": float(diff.max()),
                                "prob_mean_abs_diff": float(diff.mean()), "foreground_flips": flips})
            preds[name].append(segmenters[name].labels(probs, method))
    truths = [s.labels for s in samples]
    ids = [s.image_id for s in samples]
    frames = []
    for name in order:
        frame = evaluate_pairs(truths, preds[name], ids=ids)
        frame.insert(0, "backend", name)
        frames.append(pd.concat([frame, pd.DataFrame(extra[name])], axis=1))
    return pd.concat(frames, ignore_index=True)


def file_sizes(folder: str | os.PathLike[str]) -> Any:
    """Sizes of a model folder's weight files (``weights.npz``, ``model-*.tflite``) in bytes and MB."""
    import pandas as pd

    folder = Path(folder)
    files = [folder / "weights.npz", *sorted(folder.glob("model-*.tflite"))]
    rows = [{"file": p.name, "bytes": p.stat().st_size, "MB": p.stat().st_size / 1e6} for p in files if p.is_file()]
    return pd.DataFrame(rows, columns=["file", "bytes", "MB"])
