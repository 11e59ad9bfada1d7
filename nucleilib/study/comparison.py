"""The comparison chapter's computations: training the contenders, scoring them, Table 1.

The chapter (``notebooks/03_comparison.py``) trains every network with one budget
(:func:`train_contenders`), scores them on the original test split next to the
U-Net shipped with the package and the classical pipeline (:func:`score_network`,
:func:`score_classical`, :func:`assemble_table1`), compares them image by image
(:func:`paired_differences`, :func:`by_modality`) and shows hard cases side by side. How far
the results move with the training seed and the data split (the seeds, Table 2) is
:mod:`nucleilib.study.spread`.

The table builders take plain metric frames (one row per test image, the columns of
:func:`nucleilib.evaluation.evaluate_pairs`) and need no network:

>>> import pandas as pd
>>> per_image = pd.DataFrame({"image_id": ["a", "b", "a", "b"], "model": ["U-Net", "U-Net", "X", "X"],
...                           "dsb_score": [0.5, 0.7, 0.6, 0.6]})
>>> paired_differences(per_image, seed=0)["images better"].to_dict()
{'X': 1}
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import evaluation
from ..data import Sample
from ..models import ModelConfig
from .scores import ScoreCache, evaluate_cached, micro_from_counts, without_counts

#: The network every other is compared with (the chapter's name for it).
REFERENCE = "U-Net"

#: The seed paper's Table 1 (its own test images).
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "paper accuracy": {"U-Net": 0.975, "ResUNet": 0.946, "DeepLabV3+": 0.912},
    "paper precision": {"U-Net": 0.945, "ResUNet": 0.886, "DeepLabV3+": 0.887},
    "paper recall": {"U-Net": 0.951, "ResUNet": 0.817, "DeepLabV3+": 0.891},
    "paper IoU": {"U-Net": 0.882, "ResUNet": 0.853, "DeepLabV3+": 0.805},
}

#: Short names of Table 1's rows in the glue keys (any other row is ``shipped``).
GLUE_KEYS = {"U-Net": "unet", "ResUNet": "resunet", "DeepLabV3+": "deeplab", "Classical": "classical"}
#: Table 1 columns glued, with their short names.
GLUE_COLUMNS = (("IoU", "iou"), ("DSB score", "dsb"), ("accuracy", "acc"), ("ms/256²", "ms"))


# --------------------------------------------------------------------------- training


def contenders() -> dict[str, ModelConfig]:
    """The networks the chapter compares, in row order: the U-Net, the deep residual U-Net and
    DeepLabV3+ with the same two outputs (foreground, touching border) and batch normalisation.

    Examples
    --------
    >>> {name: config.architecture for name, config in contenders().items()}
    {'U-Net': 'unet', 'ResUNet': 'resunet', 'DeepLabV3+': 'deeplabv3plus'}
    """
    base = ModelConfig(residual=True, batch_norm=True, outputs=("foreground", "border"))
    return {
        "U-Net": base,
        "ResUNet": dataclasses.replace(base, architecture="resunet", extra={"units_per_level": 2}),
        "DeepLabV3+": dataclasses.replace(base, architecture="deeplabv3plus", extra={"atrous_rates": [2, 4, 6]}),
    }


def train_config(budget: Any, model_config: ModelConfig, seed: int) -> Any:
    """The training configuration of one network: ``budget`` with its model and seed.

    Parameters
    ----------
    budget : TrainConfig
        The settings every network shares (crop, batch size, epochs, steps per
        epoch, patience, time limit); its ``model`` and ``seed`` are replaced.
    model_config : ModelConfig
    seed : int

    Returns
    -------
    TrainConfig
        Equal, field by field, to ``TrainConfig(model=model_config, seed=seed, ...)``
        with the budget's other values, so its training digest names the same
        cached model.
    """
    return dataclasses.replace(budget, model=model_config, seed=seed)


def run_label(model_config: ModelConfig, split: str, seed: int) -> str:
    """Folder prefix of one trained contender in the model cache.

    Examples
    --------
    >>> run_label(ModelConfig(architecture="resunet"), "80-10-10", 1)
    'cmp-resunet-80-10-10-s1'
    """
    return f"cmp-{model_config.architecture}-{split}-s{seed}"


def train_info(result: Any) -> dict[str, Any]:
    """What :func:`nucleilib.training.train` recorded about a training (``train-config.json``)."""
    return dict(json.loads((result.folder / "train-config.json").read_text()))


def train_one(
    name: str,
    model_config: ModelConfig,
    split: str,
    seed: int,
    *,
    budget: Any,
    split_ids: Mapping[str, Sequence[str]],
    samples: Mapping[str, Sample],
    cache_root: Any,
    log: Callable[[str], Any] | None = print,
) -> tuple[Any, dict[str, Any]]:
    """Train one contender on one split with one seed, or reload it from the cache.

    Parameters
    ----------
    name : str
        The contender's name in the chapter (for the log line).
    model_config : ModelConfig
    split : str
        The split's name (part of the cache label).
    seed : int
        Training seed.
    budget : TrainConfig
        Shared training settings (see :func:`train_config`).
    split_ids : mapping
        The split's ``{"train": [...], "val": [...], ...}`` ids.
    samples : mapping
        ``{image_id: Sample}`` holding at least the split's training and validation images.
    cache_root : path-like
        Folder of trained models.
    log : callable, optional
        Receives one line per training (``None``: silent).

    Returns
    -------
    result : TrainResult
    info : dict
        The recorded training facts (epochs run, best epoch, seconds, ...).
    """
    from .. import training

    result = training.train(
        train_config(budget, model_config, seed),
        [samples[i] for i in split_ids["train"]],
        [samples[i] for i in split_ids["val"]],
        cache_root,
        name=run_label(model_config, split, seed),
        verbose=0,
    )
    info = train_info(result)
    if log is not None:
        log(
            f"{name:10s} {split:9s} seed {seed:3d}: {'reloaded' if result.reused else 'trained'}, "
            f"{info['epochs_run']} epochs in {info['seconds'] / 60:.1f} min, best epoch {info['best_epoch']}, "
            f"stopped by time: {info['stopped_by_time']}"
        )
    return result, info


def training_plan(
    contenders: Iterable[str],
    split_names: Sequence[str],
    seed: int,
    extra_seeds: Iterable[int],
    reference: str = REFERENCE,
) -> list[tuple[str, str, int]]:
    """The chapter's trainings as ``(contender, split, seed)``, in training order.

    Every contender on the first split; the reference on the other splits; then every
    contender on the first split with each extra seed (so that a difference between
    networks can be set against each network's spread over seeds).

    Examples
    --------
    >>> training_plan(["U-Net", "ResUNet"], ["original", "80-10-10"], 42, [1])  # doctest: +NORMALIZE_WHITESPACE
    [('U-Net', 'original', 42), ('ResUNet', 'original', 42), ('U-Net', '80-10-10', 42),
     ('U-Net', 'original', 1), ('ResUNet', 'original', 1)]
    """
    first, *others = split_names
    contenders = list(contenders)
    plan = [(name, first, seed) for name in contenders]
    plan += [(reference, split, seed) for split in others]
    plan += [(name, first, extra) for extra in extra_seeds for name in contenders]
    return plan


def train_contenders(
    contenders: Mapping[str, ModelConfig],
    splits: Mapping[str, Mapping[str, Sequence[str]]],
    samples: Mapping[str, Sample],
    cache_root: Any,
    *,
    budget: Any,
    seed: int,
    extra_seeds: Iterable[int],
    reference: str = REFERENCE,
    log: Callable[[str], Any] | None = print,
) -> dict[tuple[str, str, int], tuple[Any, dict[str, Any]]]:
    """Run :func:`train_one` for every entry of :func:`training_plan`.

    ``splits`` is ordered: its first split is the one every contender trains on.

    Returns
    -------
    dict
        ``(contender, split, seed) -> (TrainResult, info)``.
    """
    runs = {}
    for name, split, train_seed in training_plan(contenders, list(splits), seed, extra_seeds, reference):
        runs[(name, split, train_seed)] = train_one(
            name,
            contenders[name],
            split,
            train_seed,
            budget=budget,
            split_ids=splits[split],
            samples=samples,
            cache_root=cache_root,
            log=log,
        )
    return runs


def training_log(runs: Mapping[tuple[str, str, int], tuple[Any, Mapping[str, Any]]]) -> pd.DataFrame:
    """One row per training: model, split, seed, epochs, best epoch, minutes, crops/s, reloaded.

    ``runs`` maps ``(model, split, seed)`` to ``(result, info)``; only ``result.reused``
    and the info's ``epochs_run``, ``best_epoch``, ``seconds`` and ``train_crops_per_s``
    are read.
    """
    return pd.DataFrame(
        [
            {
                "model": n,
                "split": sp,
                "seed": sd,
                "epochs": info["epochs_run"],
                "best epoch": info["best_epoch"],
                "minutes": info["seconds"] / 60,
                "crops/s": info["train_crops_per_s"],
                "reloaded": res.reused,
            }
            for (n, sp, sd), (res, info) in runs.items()
        ]
    )


def model_sizes(contenders: Mapping[str, ModelConfig], size: int = 256) -> pd.DataFrame:
    """Parameters and GFLOPs (2 x multiply-accumulates of one ``size`` x ``size`` image) per contender."""
    from .. import models

    sizes = pd.DataFrame(
        {
            name: {
                "parameters": models.build_model(cfg).count_params(),
                "GFLOPs per 256x256": models.count_flops(cfg, size) / 1e9,
            }
            for name, cfg in contenders.items()
        }
    ).T
    sizes["parameters"] = sizes["parameters"].astype(int)
    return sizes


# --------------------------------------------------------------------------- scoring


def evaluate_one(
    model: Any, model_config: ModelConfig, test_samples: Sequence[Sample], *, cache: ScoreCache | None = None
) -> tuple[pd.DataFrame, Mapping[str, np.ndarray]]:
    """Per-image metrics (``borders`` separation, with the foreground pixel counts of
    :mod:`nucleilib.study.scores`) and probability maps of a network on test samples,
    at the images' own scale and in colour, as the networks were trained and as the paper's are
    run (even for the shipped model, whose defaults rescale and give stained images as their
    haematoxylin channel). With a ``cache``, a scoring made before is read, not computed again."""
    config = dataclasses.replace(model_config, colour_input="rgb")
    return evaluate_cached(cache, model, config, test_samples, methods=["borders"], diameter=None)


def cached_evaluation(cache: ScoreCache) -> Callable[..., tuple[pd.DataFrame, Mapping[str, np.ndarray]]]:
    """:func:`evaluate_one` reading and writing the scorings of ``cache`` (a chapter's ``run.scores``)."""
    return functools.partial(evaluate_one, cache=cache)


def micro_pixels(
    probs: Mapping[str, np.ndarray], samples: Sequence[Sample], threshold: float = 0.5
) -> evaluation.PixelMetrics:
    """Pixel metrics pooled over all pixels of ``samples`` (*micro*).

    Parameters
    ----------
    probs : mapping
        ``{image_id: probabilities (H, W, K)}``; channel 0 is the foreground.
    samples : sequence of Sample
        The annotated images, in the order to pool (any order gives the same result).
    threshold : float
        Foreground probability threshold.

    Examples
    --------
    >>> from nucleilib.data import Sample
    >>> truth = np.array([[1, 1], [0, 0]], np.int32)
    >>> sample = Sample("a", np.zeros((2, 2, 3), np.uint8), truth)
    >>> probs = {"a": np.array([[[0.9], [0.2]], [[0.7], [0.1]]])}
    >>> m = micro_pixels(probs, [sample])
    >>> m.accuracy, m.precision, m.recall
    (0.5, 0.5, 0.5)
    """
    pairs = [(probs[s.image_id][..., 0] > threshold, s.labels > 0) for s in samples]
    return evaluation.pixel_metrics_micro(pairs)


def ms_per_256(model: Any, in_channels: int = 3, repeats: int = 10) -> float:
    """Median milliseconds of one forward pass of a Keras model on a 256x256 image."""
    from ..backends import keras_predict_fn
    from .benchmarks import time_inference

    fn = keras_predict_fn(model)
    return time_inference(fn, 256, 1, repeats=repeats, warmup=1, channels=in_channels).ms_per_image


def time_classical(image: np.ndarray, repeats: int = 10) -> float:
    """Median milliseconds of :func:`nucleilib.segmenter.classical_labels` on ``image`` (after one untimed call)."""
    from ..segmenter import classical_labels

    classical_labels(image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        classical_labels(image)
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))


def table_row(
    name: str,
    metrics: pd.DataFrame,
    micro: evaluation.PixelMetrics,
    params: int,
    gflops: float,
    ms: float,
    *,
    seed: int,
) -> dict[str, Any]:
    """One row of Table 1.

    Parameters
    ----------
    name : str
        The row's model name.
    metrics : DataFrame
        Per-image metrics with ``dsb_score`` and ``ap50`` columns.
    micro : PixelMetrics
        Pooled pixel metrics of the same images.
    params : int
    gflops : float
    ms : float
        Milliseconds per 256x256 image.
    seed : int
        Seed of the bootstrap interval of the DSB score.

    Returns
    -------
    dict
        ``model``, the pooled pixel metrics, ``DSB score`` (per-image mean) with its
        ``DSB 95% CI`` as text, ``AP@0.5``, ``parameters``, ``GFLOPs/256²``, ``ms/256²``.

    Examples
    --------
    >>> metrics = pd.DataFrame({"dsb_score": [0.4, 0.4], "ap50": [0.5, 1.0]})
    >>> micro = evaluation.PixelMetrics.from_counts(tp=1, fp=1, fn=1, tn=1)
    >>> row = table_row("X", metrics, micro, 10, 1.5, 2.0, seed=0)
    >>> row["DSB score"], row["DSB 95% CI"], row["AP@0.5"], row["accuracy"]
    (0.4, '0.400-0.400', 0.75, 0.5)
    """
    lo, hi = evaluation.bootstrap_ci(metrics["dsb_score"].to_numpy(), seed=seed)
    return {
        "model": name,
        "accuracy": micro.accuracy,
        "precision": micro.precision,
        "recall": micro.recall,
        "IoU": micro.iou,
        "Dice": micro.dice,
        "DSB score": metrics["dsb_score"].mean(),
        "DSB 95% CI": f"{lo:.3f}-{hi:.3f}",
        "AP@0.5": metrics["ap50"].mean(),
        "parameters": params,
        "GFLOPs/256²": gflops,
        "ms/256²": ms,
    }


def score_network(
    name: str,
    model: Any,
    model_config: ModelConfig,
    test_samples: Sequence[Sample],
    *,
    params: int,
    gflops: float,
    seed: int,
    timing_repeats: int,
    evaluate: Callable[..., tuple[pd.DataFrame, Mapping[str, np.ndarray]]] = evaluate_one,
) -> tuple[dict[str, Any], pd.DataFrame, Mapping[str, np.ndarray]]:
    """Evaluate one network on the test samples and time it: its Table 1 row.

    ``evaluate`` is :func:`evaluate_one` or a :func:`cached_evaluation`.

    Returns
    -------
    row : dict
        See :func:`table_row`.
    per_image : DataFrame
        Its per-image metrics with a ``model`` column.
    probabilities : dict
        ``{image_id: probability maps}``.
    """
    metrics, probs = evaluate(model, model_config, test_samples)
    row = table_row(
        name,
        metrics,
        micro_from_counts(metrics),
        params,
        gflops,
        ms_per_256(model, repeats=timing_repeats),
        seed=seed,
    )
    return row, without_counts(metrics).assign(model=name), probs


def score_contenders(
    runs: Mapping[tuple[str, str, int], tuple[Any, Any]],
    contenders: Mapping[str, ModelConfig],
    sizes: pd.DataFrame,
    test_samples: Sequence[Sample],
    *,
    seed: int,
    timing_repeats: int,
    split: str = "original",
    evaluate: Callable[..., tuple[pd.DataFrame, Mapping[str, np.ndarray]]] = evaluate_one,
) -> tuple[list[dict[str, Any]], list[pd.DataFrame], dict[str, Mapping[str, np.ndarray]]]:
    """:func:`score_network` for every contender trained on ``split`` with ``seed``.

    Parameters
    ----------
    runs : mapping
        ``(model, split, seed) -> (TrainResult, info)`` from :func:`train_contenders`.
    contenders : mapping
        ``{name: ModelConfig}``, in row order.
    sizes : DataFrame
        :func:`model_sizes` of the contenders.
    test_samples : sequence of Sample
    seed, timing_repeats : int
    evaluate : callable
        :func:`evaluate_one` or a :func:`cached_evaluation`.

    Returns
    -------
    rows : list of dict
        Table 1 rows.
    per_image : list of DataFrame
        Each contender's per-image metrics (with a ``model`` column).
    probabilities : dict
        ``{name: {image_id: probability maps}}``.
    """
    rows, per_image, probabilities = [], [], {}
    for name, cfg in contenders.items():
        row, metrics, probabilities[name] = score_network(
            name,
            runs[(name, split, seed)][0].model,
            cfg,
            test_samples,
            params=int(sizes.loc[name, "parameters"]),
            gflops=float(sizes.loc[name, "GFLOPs per 256x256"]),
            seed=seed,
            timing_repeats=timing_repeats,
            evaluate=evaluate,
        )
        rows.append(row)
        per_image.append(metrics)
    return rows, per_image, probabilities


def score_classical(
    test_samples: Sequence[Sample], *, seed: int, timing_repeats: int, name: str = "Classical"
) -> tuple[dict[str, Any], pd.DataFrame, dict[str, np.ndarray]]:
    """The classical pipeline's Table 1 row, per-image metrics and labels.

    It is timed on the top-left 256x256 crop of the first test image at least
    that large; it has no parameters and no FLOPs count (NaN).

    Returns
    -------
    row : dict
    per_image : DataFrame
        With a ``model`` column holding ``name``.
    labels : dict
        ``{image_id: labels}`` of the test images.
    """
    from ..segmenter import classical_labels, evaluate_classical

    metrics = evaluate_classical(test_samples)
    labels = {s.image_id: classical_labels(s.image) for s in test_samples}
    micro = evaluation.pixel_metrics_micro([(labels[s.image_id] > 0, s.labels > 0) for s in test_samples])
    crop = next((s.image[:256, :256] for s in test_samples if min(s.image.shape[:2]) >= 256), None)
    if crop is None:
        raise ValueError("no test image is at least 256x256: nothing to time the classical pipeline on")
    row = table_row(name, metrics, micro, 0, np.nan, time_classical(crop, timing_repeats), seed=seed)
    return row, metrics.assign(model=name), labels


def assemble_table1(
    rows: Sequence[Mapping[str, Any]], paper: Mapping[str, Mapping[str, float]] = PAPER_TABLE1
) -> pd.DataFrame:
    """Table 1: the rows of :func:`table_row` indexed by model, with the paper's columns joined.

    Examples
    --------
    >>> table = assemble_table1([{"model": "U-Net", "IoU": 0.8}, {"model": "Classical", "IoU": 0.5}])
    >>> table["paper IoU"].tolist()
    [0.882, nan]
    """
    return pd.DataFrame(list(rows)).set_index("model").join(pd.DataFrame(paper))


def per_image_table(frames: Iterable[pd.DataFrame], manifest: pd.DataFrame) -> pd.DataFrame:
    """Per-image metrics of all models in one frame, with each image's modality from the manifest.

    ``manifest`` is indexed by image id and has a ``modality`` column; images it
    lacks are dropped.
    """
    return pd.concat(list(frames), ignore_index=True).merge(
        manifest[["modality"]], left_on="image_id", right_index=True
    )


def best_network(table1: pd.DataFrame, exclude: Iterable[str] = ()) -> str:
    """The model of Table 1 with the highest DSB score, leaving out the ``exclude`` rows."""
    return str(table1["DSB score"].drop(list(exclude)).idxmax())


def table1_glue(table1: pd.DataFrame, reference_name: str) -> dict[str, Any]:
    """Glue values of Table 1: ``t1_<model>_<iou|dsb|acc|ms>``, ``t1_best``, and for rows
    averaged over seeds (:func:`table1_over_seeds`) ``t1_<model>_dsb_sd`` and ``t1_<model>_seeds``.

    Rows not in :data:`GLUE_KEYS` (the shipped reference model) are ``shipped``;
    ``t1_best`` is :func:`best_network` without ``reference_name``.
    """
    values: dict[str, Any] = {}
    for name, row in table1.iterrows():
        key = GLUE_KEYS.get(str(name), "shipped")
        for column, short in GLUE_COLUMNS:
            values[f"t1_{key}_{short}"] = float(row[column])
        if np.isfinite(row.get("DSB SD over seeds", np.nan)):
            values[f"t1_{key}_dsb_sd"] = float(row["DSB SD over seeds"])
            values[f"t1_{key}_seeds"] = int(row["seeds"])
    values["t1_best"] = best_network(table1, exclude=[reference_name])
    return values


def paired_differences(
    per_image: pd.DataFrame, *, seed: int, reference: str = REFERENCE, column: str = "dsb_score"
) -> pd.DataFrame:
    """Mean per-image difference of each model's score against the reference, with a bootstrap interval.

    Parameters
    ----------
    per_image : DataFrame
        Columns ``image_id``, ``model`` and ``column``; one row per (image, model),
        every model scored on the same images.
    seed : int
        Seed of the bootstrap.
    reference : str
        The model the others are compared with.
    column : str
        The score compared.

    Returns
    -------
    DataFrame
        Indexed by model (in sorted order): ``mean DSB difference vs U-Net``,
        ``95% CI low``, ``95% CI high``, ``images better``, ``images worse``.
    """
    wide = per_image.pivot(index="image_id", columns="model", values=column)
    rows = []
    for name in wide.columns.drop(reference):
        diff = (wide[name] - wide[reference]).to_numpy()
        lo, hi = evaluation.bootstrap_ci(diff, seed=seed)
        rows.append(
            {
                "model": name,
                f"mean DSB difference vs {reference}": diff.mean(),
                "95% CI low": lo,
                "95% CI high": hi,
                "images better": int((diff > 0).sum()),
                "images worse": int((diff < 0).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("model")


def by_modality(per_image: pd.DataFrame, *, reference: str = REFERENCE, column: str = "dsb_score") -> pd.DataFrame:
    """Mean score per model (rows) and modality (columns, named with the reference's image count).

    Examples
    --------
    >>> per_image = pd.DataFrame({"model": ["U-Net", "U-Net", "X", "X"], "modality": ["a", "b", "a", "b"],
    ...                           "dsb_score": [0.2, 0.4, 0.6, 0.8]})
    >>> by_modality(per_image).columns.tolist()
    ['a (1 images)', 'b (1 images)']
    """
    table = per_image.pivot_table(index="model", columns="modality", values=column, aggfunc="mean")
    counts = per_image[per_image["model"] == reference]["modality"].value_counts()
    table.columns = [f"{c} ({counts.get(c, 0)} images)" for c in table.columns]
    return table


# --------------------------------------------------------------------------- hard cases


def touching_shares(samples: Iterable[Sample]) -> dict[str, float]:
    """Share of each sample's nuclei that touch another nucleus."""
    from ..morphology import touching_labels

    return {s.image_id: len(touching_labels(s.labels)) / max(1, s.n_nuclei) for s in samples}


def hard_cases(
    per_image: pd.DataFrame,
    test_samples: Sequence[Sample],
    *,
    reference: str = REFERENCE,
    modalities: Sequence[str] = ("stained tissue", "brightfield"),
) -> tuple[list[str], dict[str, float]]:
    """The test images to show side by side.

    The image with the largest share of touching nuclei, then for each of
    ``modalities`` present among the reference's scored images the one with its
    lowest DSB score.

    Returns
    -------
    picks : list of str
        Image ids (may repeat when one image is hard in two ways).
    touching_share : dict
        ``{image_id: share of touching nuclei}`` of the test images.
    """
    share = touching_shares(test_samples)
    picks = [max(share, key=share.__getitem__)]
    scores = per_image[per_image["model"] == reference].set_index("image_id")
    for modality in modalities:
        candidates = scores[scores["modality"] == modality]
        if len(candidates):
            picks.append(str(candidates["dsb_score"].idxmin()))
    return picks, share


def pick_labels(
    picks: Sequence[str],
    probabilities: Mapping[str, Mapping[str, np.ndarray]],
    contenders: Mapping[str, ModelConfig],
    classical: Mapping[str, np.ndarray] | None = None,
    classical_name: str = "Classical",
) -> dict[str, dict[str, np.ndarray]]:
    """Predicted labels of the picked images: ``{model: {image_id: labels}}``, networks first.

    Networks' labels come from their probability maps with ``borders`` separation.
    """
    from ..segmenter import labels_from_probabilities

    labels = {
        name: {i: labels_from_probabilities(probabilities[name][i], cfg, "borders") for i in picks}
        for name, cfg in contenders.items()
    }
    if classical is not None:
        labels[classical_name] = {i: classical[i] for i in picks}
    return labels


def side_by_side_figure(
    picks: Sequence[str],
    samples: Mapping[str, Sample],
    predictions: Mapping[str, Mapping[str, np.ndarray]],
    per_image: pd.DataFrame,
    modality: Mapping[str, str],
    touching_share: Mapping[str, float],
) -> Any:
    """One row per picked image: the image, the annotation, then each model's outlined nuclei.

    Parameters
    ----------
    picks : sequence of str
    samples : mapping
        ``{image_id: Sample}``.
    predictions : mapping
        ``{model: {image_id: labels}}`` (see :func:`pick_labels`), in column order.
    per_image : DataFrame
        Per-image metrics with ``model``, ``image_id`` and ``dsb_score``, for the titles.
    modality, touching_share : mapping
        Per image id, for the first column's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from ..plotting import outline_overlay

    columns = ["image", "truth", *predictions]
    fig, axes = plt.subplots(len(picks), len(columns), figsize=(3.0 * len(columns), 3.2 * len(picks)), squeeze=False)
    for row, image_id in enumerate(picks):
        sample = samples[image_id]
        for ax, name in zip(axes[row], columns):
            if name == "image":
                ax.imshow(sample.image)
                title = f"{modality[image_id]}, {touching_share[image_id]:.0%} touching"
            elif name == "truth":
                ax.imshow(sample.image)
                ax.contour(sample.labels > 0, levels=[0.5], colors="cyan", linewidths=0.6)
                title = f"truth: {sample.n_nuclei} nuclei"
            else:
                labels = predictions[name][image_id]
                ax.imshow(outline_overlay(sample.image, labels))
                score = per_image[(per_image["model"] == name) & (per_image["image_id"] == image_id)]["dsb_score"].iloc[
                    0
                ]
                title = f"{name}: {labels.max()} nuclei, DSB {score:.2f}"
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    plt.tight_layout()
    return fig
