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
from ..validation import non_negative_int, positive_int

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


def time_inference(
    predict_fn: PredictFn,
    size: int = 256,
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    *,
    channels: int = 3,
    seed: int = 0,
) -> InferenceTiming:
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
    for name, value, low in (
        ("size", size, 1),
        ("batch", batch, 1),
        ("repeats", repeats, 1),
        ("warmup", warmup, 0),
        ("channels", channels, 1),
    ):
        (positive_int if low else non_negative_int)(value, name)
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


def training_throughput(
    config: Any,
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    variant: str = "tuned",
    steps: int = 10,
    warmup: int = 2,
    *,
    seed: int | None = None,
) -> float:
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
    from ..training import precision

    if variant not in THROUGHPUT_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(THROUGHPUT_VARIANTS)}")
    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 0)):
        (positive_int if low else non_negative_int)(value, name)
    seed = config.seed if seed is None else seed
    plain = variant == "plain"
    dataset = training_dataset(
        images,
        targets,
        crop=config.crop,
        batch_size=config.batch_size,
        seed=seed,
        parallel=not plain,
        prefetch=not plain,
    )
    with precision("bfloat16" if variant == "bfloat16" else "off"):
        tf.keras.utils.set_random_seed(seed)
        model = compile_model(
            build_model(config.model),
            learning_rate=config.learning_rate,
            border_weight=config.border_weight,
            jit_compile=variant == "xla",
        )
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


def benchmark_predict_fns(
    model: Any, tflite_models: dict[str, bytes] | None = None, *, num_threads: int | None = None
) -> dict[str, PredictFn]:
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

    fns: dict[str, PredictFn] = {
        "keras-predict": keras_predict,
        "keras": keras_predict_fn(model),
        "xla": keras_predict_fn(model, jit_compile=True),
    }
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


def time_backends(
    fns: dict[str, PredictFn],
    grid: Sequence[tuple[int, int]],
    *,
    repeats: int = 5,
    warmup: int = 1,
    channels: int = 3,
    progress: bool = False,
) -> Any:
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
            rows.append(
                {
                    "backend": name,
                    "label": BENCHMARK_BACKENDS.get(name, name),
                    **timing._asdict(),
                    "images_per_s": 1000.0 / timing.ms_per_image,
                }
            )
    columns = [
        "backend",
        "label",
        "size",
        "batch",
        "ms_per_image",
        "min_ms_per_image",
        "ms_per_batch",
        "repeats",
        "images_per_s",
    ]
    return pd.DataFrame(rows)[columns]


def evaluate_backends(
    fns: dict[str, PredictFn],
    config: ModelConfig,
    samples: Sequence[Any],
    *,
    method: str | None = None,
    reference: str = "keras",
    tile: int = 512,
    progress: bool = False,
) -> Any:
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
            extra[name].append(
                {
                    "predict_s": seconds,
                    "prob_max_abs_diff": float(diff.max()),
                    "prob_mean_abs_diff": float(diff.mean()),
                    "foreground_flips": flips,
                }
            )
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


# --------------------------------------------------------------------------- the speed chapter's sections

#: The seed paper's inference time per image, in milliseconds (NVIDIA RTX 3060).
PAPER_MS: float = 99.37


def speed_ids(
    split: dict[str, list[str]], *, test_limit: int | None = None, train_images: int = 48, seed: int = 42
) -> tuple[list[str], list[str]]:
    """The test and training image ids of the speed chapter.

    Parameters
    ----------
    split : dict
        ``{"train": [...], "val": [...], "test": [...]}``
        (:func:`nucleilib.study.manifest.load_split`).
    test_limit : int, optional
        Keep only the first ``test_limit`` test ids (default all).
    train_images : int
        How many training ids to draw (without replacement, with ``seed``), for
        the int8 calibration crops and the throughput runs; at most all of them.
    seed : int

    Returns
    -------
    test_ids, train_ids : list of str
        The test ids in the split's order; the drawn training ids sorted.

    Examples
    --------
    >>> split = {"train": ["d", "c", "b", "a"], "val": [], "test": ["x", "y", "z"]}
    >>> test, train = speed_ids(split, test_limit=2, train_images=9)
    >>> test, train
    (['x', 'y'], ['a', 'b', 'c', 'd'])
    """
    test_ids = list(split["test"][: None if test_limit is None else int(test_limit)])
    rng = np.random.default_rng(seed)
    pool = split["train"]
    train_ids = sorted(rng.choice(pool, min(train_images, len(pool)), replace=False))
    return test_ids, [str(i) for i in train_ids]


def load_speed_samples(
    split_file: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    test_limit: int | None = None,
    train_images: int = 48,
    seed: int = 42,
) -> tuple[list[Any], list[Any]]:
    """Load the test and training samples of :func:`speed_ids` from a split CSV,
    without the loader's warnings about overlapping masks.

    Returns
    -------
    test_samples, train_samples : list of Sample
    """
    import warnings

    from ..data import load_dataset
    from .manifest import load_split

    test_ids, train_ids = speed_ids(load_split(split_file), test_limit=test_limit, train_images=train_images, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_dataset(data_dir, ids=test_ids), load_dataset(data_dir, ids=train_ids)


def threads_table(cores: int, tflite_threads: int, bf16: dict[str, bool]) -> Any:
    """The thread settings of the timing runs and the CPU's bfloat16 support, as a one-column table.

    Parameters
    ----------
    cores : int
        ``os.cpu_count()``.
    tflite_threads : int
        Threads given to the TensorFlow Lite interpreters.
    bf16 : dict
        :func:`bfloat16_support`.
    """
    import pandas as pd
    import tensorflow as tf

    return pd.DataFrame.from_dict(
        {
            "CPU cores (os.cpu_count)": cores,
            "TensorFlow intra-op threads (0 = default, one per core)": tf.config.threading.get_intra_op_parallelism_threads(),
            "TensorFlow inter-op threads (0 = default)": tf.config.threading.get_inter_op_parallelism_threads(),
            "TensorFlow Lite interpreter threads": tflite_threads,
            "CPU has AVX512-BF16": bf16["avx512_bf16"],
            "CPU has AMX-BF16": bf16["amx_bf16"],
            "GPU visible to TensorFlow": bf16["gpu"],
        },
        orient="index",
        columns=["value"],
    )


def convert_tflite(
    model: Any, calibration: Sequence[np.ndarray] | None, kinds: Sequence[str] | None = None
) -> tuple[dict[str, bytes], dict[str, float]]:
    """Convert a Keras model to TensorFlow Lite once per kind, timing each conversion.

    Parameters
    ----------
    model : tf.keras.Model
    calibration : sequence of ndarray
        Representative crops (:func:`nucleilib.export.representative_crops`), used by ``"int8"`` only.
    kinds : sequence of str, optional
        Default :data:`nucleilib.backends.TFLITE_KINDS`.

    Returns
    -------
    flat : dict
        Kind -> flat buffer, in the order of ``kinds``.
    seconds : dict
        Kind -> conversion time in seconds.
    """
    from ..backends import TFLITE_KINDS
    from ..export import to_tflite

    flat, seconds = {}, {}
    for kind in TFLITE_KINDS if kinds is None else kinds:
        start = time.perf_counter()
        flat[kind] = to_tflite(model, kind, calibration if kind == "int8" else None)
        seconds[kind] = time.perf_counter() - start
    return flat, seconds


def model_sizes(
    n_params: int, weights_file: str | os.PathLike[str], flat: dict[str, bytes], convert_s: dict[str, float]
) -> Any:
    """Sizes in MB of the float model and its TensorFlow Lite conversions.

    Parameters
    ----------
    n_params : int
        Parameters of the Keras model (4 bytes each in float32).
    weights_file : path-like
        The shipped ``weights.npz``.
    flat, convert_s : dict
        Kind -> flat buffer and kind -> conversion seconds (:func:`convert_tflite`).

    Returns
    -------
    DataFrame
        Index ``model``; columns ``MB`` and ``conversion s`` (NaN for the float rows).
    """
    import pandas as pd

    table = pd.DataFrame(
        [
            {"model": "Keras weights, float32 (in memory)", "MB": 4 * n_params / 1e6},
            {"model": "shipped weights.npz (float16, compressed)", "MB": Path(weights_file).stat().st_size / 1e6},
            *[{"model": f"TFLite {kind}", "MB": len(content) / 1e6} for kind, content in flat.items()],
        ]
    ).set_index("model")
    table["conversion s"] = [np.nan, np.nan] + [convert_s[kind] for kind in flat]
    return table


def size_facts(flat: dict[str, bytes], sizes: Any) -> dict[str, float]:
    """The chapter's numbers about file sizes: ``mb_<kind>`` for every flat buffer,
    ``mb_npz`` (the shipped weights) and ``int8_size_ratio`` (float32 over int8 bytes).

    Examples
    --------
    >>> import pandas as pd
    >>> sizes = pd.DataFrame({"MB": [2.0]}, index=["shipped weights.npz (float16, compressed)"])
    >>> size_facts({"float32": b"x" * 4_000_000, "int8": b"x" * 1_000_000}, sizes)
    {'mb_float32': 4.0, 'mb_int8': 1.0, 'mb_npz': 2.0, 'int8_size_ratio': 4.0}
    """
    facts = {f"mb_{kind}": len(content) / 1e6 for kind, content in flat.items()}
    facts["mb_npz"] = float(sizes.loc["shipped weights.npz (float16, compressed)", "MB"])
    facts["int8_size_ratio"] = len(flat["float32"]) / len(flat["int8"])
    return facts


def load_note(load_avg: float, cores: int) -> str:
    """How the chapter describes the machine's load: busy above 1.5 times the cores.

    Examples
    --------
    >>> load_note(3.1, 2), load_note(3.0, 2)
    ('busy with other work, so all times are inflated', 'otherwise quiet')
    """
    return "busy with other work, so all times are inflated" if load_avg > 1.5 * cores else "otherwise quiet"


def ms_table(timing: Any) -> Any:
    """Milliseconds per image (median) of :func:`time_backends`, one row per
    (size, batch) and one column per backend label, in the order of :data:`BENCHMARK_BACKENDS`."""
    table = timing.pivot_table(index=["size", "batch"], columns="label", values="ms_per_image")
    return table[[label for label in BENCHMARK_BACKENDS.values() if label in table.columns]]


def timing_facts(timing: Any, target_ms: float, paper_ms: float = PAPER_MS) -> dict[str, Any]:
    """The chapter's numbers about inference time, from a :func:`time_backends` table.

    At the smallest size and batch 1: the time of every backend of
    :data:`BENCHMARK_BACKENDS` and the fastest one; at the smallest size and any
    batch: the fastest backend and batch, and whether it meets ``target_ms``;
    the fastest single-image time against the paper's ``paper_ms``; at the
    largest size and batch 1: the ``tf.function`` and int8 times.

    Parameters
    ----------
    timing : DataFrame
        Columns ``backend``, ``label``, ``size``, ``batch``, ``ms_per_image``
        and rows for all backends of :data:`BENCHMARK_BACKENDS` at batch 1.
    target_ms : float
        Target milliseconds per image at the smallest size.
    paper_ms : float
        The seed paper's milliseconds per image.

    Returns
    -------
    dict
        ``small_size``, ``keras_predict_ms``, ``keras_ms``, ``xla_ms``,
        ``tflite_<kind>_ms``, ``int8_speedup``, ``best_single_label``,
        ``best_single_ms``, ``best_any_label``, ``best_any_batch``,
        ``best_any_ms``, ``target_ms``, ``target_verdict`` ("meets" or
        "misses"), ``target_factor``, ``paper_comparison`` (text),
        ``large_size``, ``large_keras_ms``, ``large_int8_ms``.
    """
    from ..backends import TFLITE_KINDS

    smallest = min(timing["size"])
    at_small = timing[timing["size"] == smallest]
    single = at_small[at_small["batch"] == 1].set_index("backend")["ms_per_image"]
    best_single = single.idxmin()
    best_any = at_small.loc[at_small["ms_per_image"].idxmin()]
    largest = timing[(timing["size"] == max(timing["size"])) & (timing["batch"] == 1)].set_index("backend")
    paper_factor = paper_ms / float(single[best_single])
    facts: dict[str, Any] = {
        "small_size": int(smallest),
        "keras_predict_ms": float(single["keras-predict"]),
        "keras_ms": float(single["keras"]),
        "xla_ms": float(single["xla"]),
    }
    facts.update({f"tflite_{kind}_ms": float(single[f"tflite-{kind}"]) for kind in TFLITE_KINDS})
    facts.update(
        {
            "int8_speedup": float(single["keras"] / single["tflite-int8"]),
            "best_single_label": BENCHMARK_BACKENDS[best_single],
            "best_single_ms": float(single[best_single]),
            "best_any_label": str(best_any["label"]),
            "best_any_batch": int(best_any["batch"]),
            "best_any_ms": float(best_any["ms_per_image"]),
            "target_ms": float(target_ms),
            "target_verdict": "meets" if best_any["ms_per_image"] <= target_ms else "misses",
            "target_factor": float(best_any["ms_per_image"] / target_ms),
            "paper_comparison": f"{paper_factor:.2f} times faster than"
            if paper_factor >= 1
            else f"{1 / paper_factor:.2f} times slower than",
            "large_size": int(max(timing["size"])),
            "large_keras_ms": float(largest.loc["keras", "ms_per_image"]),
            "large_int8_ms": float(largest.loc["tflite-int8", "ms_per_image"]),
        }
    )
    return facts


def tflite_thread_timing(
    flat: dict[str, bytes],
    size: int,
    thread_counts: Sequence[int],
    *,
    repeats: int = 3,
    warmup: int = 1,
    channels: int = 3,
) -> Any:
    """:func:`time_inference` of every TensorFlow Lite model at batch 1 with each thread count.

    Returns
    -------
    DataFrame
        Index (``model``, ``threads``), ``model`` as ``"TFLite <kind>"``;
        columns ``ms per image (median)`` and ``ms per image (fastest)``.
    """
    import pandas as pd

    rows = []
    for kind, content in flat.items():
        for n_threads in sorted(set(thread_counts)):
            t = time_inference(
                tflite_predict_fn(content, num_threads=n_threads), size, 1, repeats, warmup, channels=channels
            )
            rows.append(
                {
                    "model": f"TFLite {kind}",
                    "threads": n_threads,
                    "ms per image (median)": t.ms_per_image,
                    "ms per image (fastest)": t.min_ms_per_image,
                }
            )
    return pd.DataFrame(rows).set_index(["model", "threads"])


def accuracy_summary(scores: Any, reference: str = "keras") -> Any:
    """Mean scores per backend of :func:`evaluate_backends`, and their change from ``reference``.

    Returns
    -------
    DataFrame
        Indexed by backend label (:data:`BENCHMARK_BACKENDS`), backends in the
        order of ``scores``; columns ``iou``, ``IoU change``, ``dsb_score``,
        ``DSB change``, ``f1_50`` (means), ``prob_max_abs_diff`` (max),
        ``prob_mean_abs_diff``, ``foreground_flips`` (means), ``predict_s`` (median).
    """
    accuracy = scores.groupby("backend", sort=False).agg(
        iou=("iou", "mean"),
        dsb_score=("dsb_score", "mean"),
        f1_50=("f1_50", "mean"),
        prob_max_abs_diff=("prob_max_abs_diff", "max"),
        prob_mean_abs_diff=("prob_mean_abs_diff", "mean"),
        foreground_flips=("foreground_flips", "mean"),
        predict_s=("predict_s", "median"),
    )
    accuracy.insert(1, "IoU change", accuracy["iou"] - accuracy.loc[reference, "iou"])
    accuracy.insert(3, "DSB change", accuracy["dsb_score"] - accuracy.loc[reference, "dsb_score"])
    accuracy.index = [BENCHMARK_BACKENDS.get(name, name) for name in accuracy.index]
    return accuracy


def _by_backend(accuracy: Any) -> Any:
    return accuracy.rename(index={label: name for name, label in BENCHMARK_BACKENDS.items()})


def accuracy_facts(
    accuracy: Any, names: Sequence[str] = ("xla", "tflite-float16", "tflite-int8"), reference: str = "keras"
) -> dict[str, float]:
    """The chapter's numbers about accuracy, from :func:`accuracy_summary`.

    Returns
    -------
    dict
        ``iou_<reference>``, ``dsb_<reference>``, and for every backend of
        ``names`` (key without ``tflite-``, e.g. ``int8``): ``iou_<key>``,
        ``dsb_<key>``, ``iou_change_<key>``, ``dsb_change_<key>``,
        ``flips_<key>`` (percent of pixels) and ``maxdiff_<key>``.
    """
    by_name = _by_backend(accuracy)
    facts = {
        f"iou_{reference}": float(by_name.loc[reference, "iou"]),
        f"dsb_{reference}": float(by_name.loc[reference, "dsb_score"]),
    }
    for name in names:
        key = name.replace("tflite-", "").replace("-", "_")
        row = by_name.loc[name]
        facts.update(
            {
                f"iou_{key}": float(row["iou"]),
                f"dsb_{key}": float(row["dsb_score"]),
                f"iou_change_{key}": float(row["IoU change"]),
                f"dsb_change_{key}": float(row["DSB change"]),
                f"flips_{key}": 100 * float(row["foreground_flips"]),
                f"maxdiff_{key}": float(row["prob_max_abs_diff"]),
            }
        )
    return facts


def iou_losses(accuracy: Any, kinds: Sequence[str] = ("int8", "float16"), reference: str = "keras") -> dict[str, float]:
    """Mean test IoU of ``reference`` minus that of each ``tflite-<kind>`` backend.

    Examples
    --------
    >>> import pandas as pd
    >>> accuracy = pd.DataFrame({"iou": [0.8, 0.79, 0.8]},
    ...                         index=["Keras, tf.function", "TFLite int8", "TFLite float16"])
    >>> {kind: round(loss, 4) for kind, loss in iou_losses(accuracy).items()}
    {'int8': 0.01, 'float16': 0.0}
    """
    by_name = _by_backend(accuracy)
    return {kind: float(by_name.loc[reference, "iou"] - by_name.loc[f"tflite-{kind}", "iou"]) for kind in kinds}


def shipping_decision(loss: float, max_iou_loss: float, *, ship_quantised: bool, profile: str) -> str:
    """Whether a quantised model goes into the package: the shipping rule.

    A TensorFlow Lite model is shipped only when its test IoU is within
    ``max_iou_loss`` of the float model's (``loss <= max_iou_loss``), only when
    ``ship_quantised`` is on, and never from the ``smoke`` profile. A model that
    fails the test is removed from the package (so no stale quantised model
    outlives a retrained float one); with shipping off nothing is touched.

    Returns
    -------
    {"off", "smoke", "ship", "remove"}
        ``"off"``: ``ship_quantised`` is off; ``"smoke"``: the smoke profile;
        ``"ship"``: write the file; ``"remove"``: delete it (a NaN loss fails).

    Examples
    --------
    >>> shipping_decision(0.004, 0.01, ship_quantised=True, profile="cpu")
    'ship'
    >>> shipping_decision(0.02, 0.01, ship_quantised=True, profile="gpu")
    'remove'
    >>> shipping_decision(0.0, 0.01, ship_quantised=True, profile="smoke")
    'smoke'
    """
    if not ship_quantised:
        return "off"
    if profile == "smoke":
        return "smoke"
    return "ship" if loss <= max_iou_loss else "remove"


def ship_quantised_models(
    flat: dict[str, bytes],
    losses: dict[str, float],
    folder: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str],
    max_iou_loss: float,
    ship_quantised: bool,
    profile: str,
) -> list[str]:
    """Apply :func:`shipping_decision` to each quantised model and say what was done.

    Parameters
    ----------
    flat : dict
        Kind -> flat buffer (:func:`convert_tflite`).
    losses : dict
        Kind -> IoU loss (:func:`iou_losses`), in the order the decisions are made.
    folder : path-like
        The shipped model's folder (it holds ``config.json``); a shipped model
        is written there by :func:`nucleilib.export.save_tflite`.
    root : path-like
        The project folder, against which the decision names the written file.
    max_iou_loss, ship_quantised, profile
        As for :func:`shipping_decision`.

    Returns
    -------
    list of str
        One line per kind, such as ``"int8: shipped to nucleilib/pretrained/...
        (IoU loss +0.0012 <= 0.01)"``.
    """
    from ..backends import tflite_filename
    from ..export import save_tflite

    folder = Path(folder)
    decisions = []
    for kind, loss in losses.items():
        target = folder / tflite_filename(kind)
        action = shipping_decision(loss, max_iou_loss, ship_quantised=ship_quantised, profile=profile)
        if action in ("off", "smoke"):
            why = "ship_quantised is off" if action == "off" else "the smoke profile never ships"
            decisions.append(f"{kind}: not shipped ({why}); IoU loss {loss:+.4f}")
        elif action == "ship":
            save_tflite(flat[kind], folder, kind)
            decisions.append(f"{kind}: shipped to {target.relative_to(root)} (IoU loss {loss:+.4f} <= {max_iou_loss})")
        else:
            target.unlink(missing_ok=True)
            decisions.append(f"{kind}: NOT shipped, IoU loss {loss:+.4f} exceeds {max_iou_loss}")
    return decisions


def throughput_rates(
    config: Any,
    images: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    steps: int = 10,
    warmup: int = 2,
    variants: Sequence[str] = THROUGHPUT_VARIANTS,
) -> dict[str, float]:
    """:func:`training_throughput` of each variant, in turn: variant -> crops per second.

    The ``bfloat16`` variant is NaN, with a printed line saying why, where TensorFlow cannot run
    it (a CPU without AVX-512: its oneDNN kernels have no bfloat16 there); any other failure raises.
    """
    import tensorflow as tf

    rates = {}
    for variant in variants:
        try:
            rates[variant] = training_throughput(config, images, targets, variant, steps=steps, warmup=warmup)
        except tf.errors.InvalidArgumentError as err:
            if variant != "bfloat16":
                raise
            reason = str(err).strip().splitlines()[-1][:160]
            print(f"bfloat16 training not measured: this machine's TensorFlow cannot run it ({reason})")
            rates[variant] = float("nan")
    return rates


def throughput_table(rates: dict[str, float]) -> Any:
    """Crops per second of each variant and its ratio to ``plain`` and ``tuned``.

    Examples
    --------
    >>> throughput_table({"plain": 2.0, "tuned": 4.0, "xla": 5.0})["vs tuned"].tolist()
    [0.5, 1.0, 1.25]
    """
    import pandas as pd

    table = pd.DataFrame({"crops per s": pd.Series(rates)})
    table["vs plain"] = table["crops per s"] / rates["plain"]
    table["vs tuned"] = table["crops per s"] / rates["tuned"]
    return table


def throughput_facts(rates: dict[str, float]) -> dict[str, Any]:
    """The chapter's numbers about training throughput: ``rate_<variant>``,
    ``tuned_vs_plain``, ``bf16_vs_tuned`` and ``xla_vs_tuned``, and ``bf16_sentence``, which
    says what bfloat16 did, or that it could not run on this CPU (a NaN rate).

    Examples
    --------
    >>> throughput_facts({"plain": 2.0, "tuned": 4.0, "bfloat16": 2.0, "xla": 5.0})["xla_vs_tuned"]
    1.25
    >>> throughput_facts({"plain": 2.0, "tuned": 4.0, "bfloat16": 6.0, "xla": 5.0})["bf16_sentence"]
    'bfloat16 mixed precision reaches 6.0 crops/s (1.50 times the tuned throughput)'
    >>> throughput_facts({"plain": 2.0, "tuned": 4.0, "bfloat16": float("nan"), "xla": 5.0})["bf16_sentence"][:43]
    'bfloat16 mixed precision could not run here'
    """
    facts: dict[str, Any] = {f"rate_{variant}": float(rate) for variant, rate in rates.items()}
    facts.update(
        {
            "tuned_vs_plain": float(rates["tuned"] / rates["plain"]),
            "bf16_vs_tuned": float(rates["bfloat16"] / rates["tuned"]),
            "xla_vs_tuned": float(rates["xla"] / rates["tuned"]),
        }
    )
    if np.isfinite(facts["rate_bfloat16"]):
        facts["bf16_sentence"] = (
            f"bfloat16 mixed precision reaches {facts['rate_bfloat16']:.1f} crops/s "
            f"({facts['bf16_vs_tuned']:.2f} times the tuned throughput)"
        )
    else:
        facts["bf16_sentence"] = (
            "bfloat16 mixed precision could not run here (TensorFlow's oneDNN has no bfloat16 "
            "convolution kernels on a CPU without AVX-512), so it is not measured"
        )
    return facts


# --------------------------------------------------------------------------- the whole command

#: Columns of :func:`end_to_end_table`.
END_TO_END_COLUMNS = [
    "backend",
    "threads",
    "busy_cores",
    "e2e_ms",
    "network_ms",
    "ratio",
    "first_label_s",
    "total_s",
]


def copy_square_images(samples: Sequence[Any], folder: str | os.PathLike[str]) -> list[Path]:
    """Write each sample's image as ``<image_id>.png`` into ``folder`` (the command's inputs)."""
    from ..io import write_image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_image(np.asarray(s.image)[..., :3], folder / f"{s.image_id}.png") for s in samples]


def time_predict_command(
    inputs: Sequence[Path], out: Path, backend: str, options: Sequence[str] = ()
) -> tuple[float, list[float]]:
    """Wall time (s) of one ``nuclei predict`` in a new process, as a user runs it, and the times
    (s from its start, in order) at which its label images were written, read from the files'
    modification times after the run (nothing polls the folder while it runs)."""
    import subprocess
    import sys

    nuclei = Path(sys.executable).with_name("nuclei")
    command = [str(nuclei), "predict", *map(str, inputs), "-o", str(out), "--backend", backend, *options]
    started_ns = time.time_ns()
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    total = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    written = sorted((path.stat().st_mtime_ns - started_ns) / 1e9 for path in Path(out).glob("*_labels.*"))
    return total, written


def network_ms(model: str, backend: str, image: np.ndarray, repeats: int = 30) -> float:
    """Median ms of one forward pass of ``backend`` on ``image`` preprocessed, in this process."""
    import statistics

    from ..backends import load_predict_fn
    from ..preprocess import preprocess

    predict, config = load_predict_fn(model, backend)
    batch = preprocess(np.asarray(image)[..., :3], invert_bright=config.invert_bright)[None].astype(np.float32)
    predict(batch)  # build, allocate, trace
    times = []
    for _ in range(positive_int(repeats, "repeats")):
        start = time.perf_counter()
        predict(batch)
        times.append((time.perf_counter() - start) * 1000)
    return float(statistics.median(times))


def _burn(stop: Any) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


class busy_cores:
    """Keep ``n`` cores busy (one spinning process each) inside a ``with`` block: the machine
    another job shares with the command."""

    def __init__(self, n: int) -> None:
        self.n = non_negative_int(n, "busy cores")
        self._procs: list[Any] = []

    def __enter__(self) -> busy_cores:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._procs = [context.Process(target=_burn, args=(self._stop,), daemon=True) for _ in range(self.n)]
        for proc in self._procs:
            proc.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def end_to_end_table(
    inputs: Sequence[Path],
    work: str | os.PathLike[str],
    runs: Sequence[tuple[str, int | None, int]],
    *,
    small: int,
    model: str = "unet-dsb2018",
    options: Sequence[str] = ("--diameter", "none"),
    repeats: int = 30,
) -> Any:
    """The whole ``nuclei predict`` against the network alone, one row per ``(backend, threads,
    busy_cores)`` of ``runs`` (``threads`` None: the command's default).

    Each row runs the command once on all of ``inputs``. Its marginal time per image is the
    steady rate at which label images are written after the first ``small``:
    ``(t_last - t_small) / (len(inputs) - small)``, with ``t_k`` the time the k-th label image
    was written; one run gives it, so the start-up (importing TensorFlow, loading the model),
    whose length varies from run to run, is neither in it nor subtracted from it.
    ``first_label_s`` is the time from the command's start to its first label image,
    ``total_s`` the whole command. ``network_ms`` is one forward pass of the same backend on the
    first image in this process (idle rows only; NaN under load), ``ratio`` their quotient.
    """
    import pandas as pd

    work = Path(work)
    inputs = list(inputs)
    if not 0 < small < len(inputs):
        raise ValueError(f"small must be between 1 and {len(inputs) - 1}, got {small}")
    from ..io import read_image

    first_image = read_image(inputs[0])
    alone: dict[str, float] = {}
    rows = []
    for index, (backend, threads, busy) in enumerate(runs):
        extra = [*options, "--model", model, *(["--threads", str(threads)] if threads else [])]
        with busy_cores(busy):
            total_s, written = time_predict_command(inputs, work / f"run{index}", backend, extra)
        if len(written) != len(inputs):
            raise RuntimeError(f"nuclei predict wrote {len(written)} label images for {len(inputs)} inputs")
        marginal = (written[-1] - written[small - 1]) / (len(inputs) - small) * 1000
        if not busy and backend not in alone:
            alone[backend] = network_ms(model, backend, first_image, repeats)
        network = alone.get(backend, float("nan")) if not busy else float("nan")
        rows.append(
            {
                "backend": backend,
                "threads": threads or os.cpu_count(),
                "busy_cores": busy,
                "e2e_ms": marginal,
                "network_ms": network,
                "ratio": marginal / network,
                "first_label_s": written[0],
                "total_s": total_s,
            }
        )
    return pd.DataFrame(rows, columns=END_TO_END_COLUMNS)


def square_image_paths(
    manifest: str | os.PathLike[str], root: str | os.PathLike[str], count: int, size: int = 256
) -> list[Path]:
    """The image files of the first ``count`` ``size`` x ``size`` images of the manifest."""
    import pandas as pd

    table = pd.read_csv(manifest)
    chosen = table[(table["height"] == size) & (table["width"] == size)]["image_id"].head(positive_int(count, "count"))
    if len(chosen) < count:
        raise ValueError(f"{manifest}: only {len(chosen)} images of {size}x{size}, {count} asked for")
    return [Path(root) / image_id / "images" / f"{image_id}.png" for image_id in chosen]


def end_to_end_facts(
    table: Any,
    target_ms: float,
    max_ratio: float = 1.15,
    max_first_s: float = 3.0,
    default_backend: str | None = None,
) -> dict[str, Any]:
    """Figures of :func:`end_to_end_table` for the text: per idle backend its marginal ms per
    image, network ms, ratio and time to first label image; the fastest command; the command
    with ``default_backend`` (the fastest when None or not in the table) against the fastest
    network path alone, and each target met or not by it."""
    facts: dict[str, Any] = {}
    idle = table[table["busy_cores"] == 0].drop_duplicates("backend")
    for row in idle.itertuples():
        key = row.backend.replace("-", "_")
        facts[f"e2e_{key}_ms"] = float(row.e2e_ms)
        facts[f"e2e_{key}_network_ms"] = float(row.network_ms)
        facts[f"e2e_{key}_ratio"] = float(row.ratio)
        facts[f"e2e_{key}_first_s"] = float(row.first_label_s)
    best = idle.loc[idle["e2e_ms"].idxmin()]
    fastest_network = float(idle["network_ms"].min())
    facts["e2e_best_backend"] = str(best["backend"])
    facts["e2e_best_ms"] = float(best["e2e_ms"])
    facts["e2e_fastest_network_ms"] = fastest_network
    facts["e2e_best_ratio"] = float(best["e2e_ms"]) / fastest_network
    chosen = idle[idle["backend"] == default_backend]
    default = chosen.iloc[0] if len(chosen) else best
    facts["e2e_default_backend"] = str(default["backend"])
    facts["e2e_default_ms"] = float(default["e2e_ms"])
    facts["e2e_default_ratio"] = float(default["e2e_ms"]) / fastest_network
    facts["e2e_first_s"] = float(default["first_label_s"])
    verdict = {True: "meets", False: "misses"}
    facts["e2e_ratio_verdict"] = verdict[facts["e2e_default_ratio"] <= max_ratio]
    facts["e2e_ms_verdict"] = verdict[facts["e2e_default_ms"] <= target_ms]
    facts["e2e_first_verdict"] = verdict[facts["e2e_first_s"] <= max_first_s]
    busy = table[table["busy_cores"] > 0].sort_values("threads")
    if len(busy):
        facts["e2e_busy_backend"] = str(busy["backend"].iloc[0])
        facts["e2e_busy_one_thread_ms"] = float(busy["e2e_ms"].iloc[0])
        facts["e2e_busy_all_threads_ms"] = float(busy["e2e_ms"].iloc[-1])
        facts["e2e_busy_threads_verdict"] = (
            "fewer threads are faster"
            if busy["e2e_ms"].iloc[0] < busy["e2e_ms"].iloc[-1]
            else "all threads are still faster"
        )
    return facts
