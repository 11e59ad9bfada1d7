"""How far the comparison's results move with the training seed and the data split.

Every network of the comparison chapter is trained with several seeds (:func:`score_seeds`,
:func:`table1_over_seeds`), and networks are ordered only where every training of one scores
above every training of the other (:func:`seed_separation`). Table 2 sets the U-Net's spread
over the paper's three splits against its spread over seeds (:func:`split_seed_table`,
:func:`spread_table`). The training and scoring themselves are :mod:`nucleilib.study.comparison`.

>>> import pandas as pd
>>> per_seed = pd.DataFrame({"model": ["A", "A", "B", "B"], "seed": [1, 2, 1, 2], "DSB score": [0.5, 0.6, 0.3, 0.4]})
>>> seed_separation(per_seed)["apart"].tolist()
[True]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .. import evaluation
from ..data import Sample
from ..models import ModelConfig
from .comparison import REFERENCE, evaluate_one, table_row
from .scores import micro_from_counts, without_counts

#: The seed paper's Table 2: split -> (train, val, test, IoU).
PAPER_TABLE2: dict[str, tuple[int, int, int, float]] = {
    "original": (670, 10, 60, 0.88),
    "80-10-10": (592, 74, 74, 0.85),
    "70-20-10": (518, 148, 74, 0.83),
}

#: The paper's IoU range over its three splits (0.88 to 0.83).
PAPER_SPLIT_IOU_RANGE = 0.05


# --------------------------------------------------------------------------- seeds

#: Table 1's metrics that are summarised over the training seeds.
SEED_METRICS = ("accuracy", "precision", "recall", "IoU", "Dice", "DSB score", "AP@0.5")


def score_seeds(
    runs: Mapping[tuple[str, str, int], tuple[Any, Any]],
    contenders: Mapping[str, ModelConfig],
    test_samples: Sequence[Sample],
    *,
    seeds: Sequence[int],
    main_rows: Sequence[Mapping[str, Any]],
    main_per_image: Sequence[pd.DataFrame],
    split: str = "original",
    evaluate: Callable[[Any, ModelConfig, Sequence[Sample]], tuple[pd.DataFrame, Any]] = evaluate_one,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every contender trained with each of ``seeds``, scored on the same test images.

    The first seed's scores are taken from ``main_rows`` and ``main_per_image`` (Table 1's
    rows and per-image metrics from :func:`score_contenders`, not evaluated again); every
    other seed's network is evaluated.

    Returns
    -------
    per_seed : DataFrame
        One row per (model, seed): the pooled pixel metrics, per-image mean ``DSB score``
        and ``AP@0.5`` (:data:`SEED_METRICS`).
    per_image : DataFrame
        One row per (model, seed, test image): its metrics, with ``model`` and ``seed``.
    """
    first, *others = seeds
    rows = {row["model"]: row for row in main_rows}
    images = {str(frame["model"].iloc[0]): frame for frame in main_per_image}
    seed_rows, frames = [], []
    for name, cfg in contenders.items():
        seed_rows.append({"model": name, "seed": first, **{m: rows[name][m] for m in SEED_METRICS}})
        frames.append(images[name].assign(seed=first))
        for train_seed in others:
            metrics, _ = evaluate(runs[(name, split, train_seed)][0].model, cfg, test_samples)
            row = table_row(name, metrics, micro_from_counts(metrics), 0, np.nan, np.nan, seed=first)
            seed_rows.append({"model": name, "seed": train_seed, **{m: row[m] for m in SEED_METRICS}})
            frames.append(without_counts(metrics).assign(model=name, seed=train_seed))
    return pd.DataFrame(seed_rows), pd.concat(frames, ignore_index=True)


def averaged_over_seeds(per_image: pd.DataFrame, seed_per_image: pd.DataFrame) -> pd.DataFrame:
    """``per_image`` with the rows of every model in ``seed_per_image`` replaced by its per-image
    means over seeds (:func:`seed_mean_per_image`); other models' rows (trained once, classical) kept.

    ``per_image`` has ``image_id``, ``model`` and ``modality``; the modality is carried over.
    """
    means = seed_mean_per_image(seed_per_image.drop(columns="modality", errors="ignore"))
    modality = per_image.drop_duplicates("image_id").set_index("image_id")["modality"]
    means = means.assign(modality=means["image_id"].map(modality))
    others = per_image[~per_image["model"].isin(means["model"].unique())]
    return pd.concat([means, others], ignore_index=True)


def seed_mean_per_image(per_image: pd.DataFrame) -> pd.DataFrame:
    """Each model's per-image scores averaged over its training seeds (one row per model and image).

    Examples
    --------
    >>> per_image = pd.DataFrame({"image_id": ["a", "a", "b", "b"], "model": ["X"] * 4, "seed": [1, 2, 1, 2],
    ...                           "dsb_score": [0.2, 0.4, 0.6, 0.6], "modality": ["f"] * 4})
    >>> seed_mean_per_image(per_image)["dsb_score"].round(6).tolist()
    [0.3, 0.6]
    """
    keys = [c for c in ("model", "image_id", "modality") if c in per_image.columns]
    values = per_image.drop(columns="seed").select_dtypes("number").columns.tolist()
    return per_image.groupby(keys, sort=False, as_index=False)[values].mean()


def table1_over_seeds(
    table1: pd.DataFrame, per_seed: pd.DataFrame, seed_per_image: pd.DataFrame, *, seed: int
) -> pd.DataFrame:
    """Table 1 with each contender's metrics averaged over its training seeds.

    The rows of ``per_seed``'s models get the mean over seeds of :data:`SEED_METRICS`,
    ``seeds`` (how many), ``DSB SD over seeds``, ``IoU SD over seeds`` and the ``DSB 95% CI``
    of the per-image DSB scores averaged over seeds; other rows (a model trained once, the
    classical pipeline) keep their values, with no spread. Parameters, FLOPs and timing are
    those of the first seed's network (the same architecture).

    Examples
    --------
    >>> table1 = pd.DataFrame({"DSB score": [0.5, 0.3], "IoU": [0.8, 0.6], "DSB 95% CI": ["", ""]},
    ...                       index=pd.Index(["X", "Classical"], name="model"))
    >>> per_seed = pd.DataFrame({"model": ["X", "X"], "seed": [1, 2], "DSB score": [0.5, 0.7], "IoU": [0.8, 0.9]})
    >>> per_image = pd.DataFrame({"model": ["X"] * 2, "image_id": ["a"] * 2, "seed": [1, 2], "dsb_score": [0.5, 0.7]})
    >>> table = table1_over_seeds(table1, per_seed, per_image, seed=0)
    >>> table.loc["X", ["DSB score", "seeds"]].round(3).tolist(), table.loc["Classical", "seeds"]
    ([0.6, 2.0], nan)
    """
    table = table1.copy()
    grouped = per_seed.groupby("model", sort=False)
    means = grouped[[m for m in SEED_METRICS if m in per_seed.columns]].mean()
    table.loc[means.index, means.columns] = means
    table.loc[means.index, "seeds"] = grouped.size()
    for metric in ("DSB score", "IoU"):
        table.loc[means.index, f"{metric.split()[0]} SD over seeds"] = grouped[metric].std(ddof=1)
    averaged = seed_mean_per_image(seed_per_image)
    for name, frame in averaged.groupby("model", sort=False):
        lo, hi = evaluation.bootstrap_ci(frame["dsb_score"].to_numpy(), seed=seed)
        table.loc[name, "DSB 95% CI"] = f"{lo:.3f}-{hi:.3f}"
    spread = ["seeds", "DSB SD over seeds", "IoU SD over seeds"]
    rest = [c for c in table.columns if c not in spread]
    after = rest.index("AP@0.5") + 1 if "AP@0.5" in rest else len(rest)
    return table[rest[:after] + spread + rest[after:]]


def seed_separation(per_seed: pd.DataFrame, column: str = "DSB score") -> pd.DataFrame:
    """Every pair of models ordered by mean ``column``, and whether their ranges over trainings are apart.

    A difference between two networks counts only when every training of the better one (each
    seed, and each retraining on another machine where ``per_seed`` has them, see
    :func:`nucleilib.study.reproduce.with_retrainings`) scores above every training of the other:
    their ranges do not overlap.

    Examples
    --------
    >>> per_seed = pd.DataFrame({"model": ["A", "A", "B", "B", "C", "C"], "seed": [1, 2] * 3,
    ...                          "DSB score": [0.50, 0.54, 0.45, 0.47, 0.46, 0.49]})
    >>> seed_separation(per_seed)[["better", "worse", "apart"]].values.tolist()
    [['A', 'C', True], ['A', 'B', True], ['C', 'B', False]]
    """
    stats = per_seed.groupby("model", sort=False)[column].agg(["mean", "min", "max"])
    order = stats.sort_values("mean", ascending=False, kind="stable").index.tolist()
    rows = []
    for i, better in enumerate(order):
        for worse in order[i + 1 :]:
            rows.append(
                {
                    "better": better,
                    "worse": worse,
                    f"mean {column} difference": stats.loc[better, "mean"] - stats.loc[worse, "mean"],
                    "better's lowest": stats.loc[better, "min"],
                    "worse's highest": stats.loc[worse, "max"],
                    "apart": bool(stats.loc[better, "min"] > stats.loc[worse, "max"]),
                }
            )
    return pd.DataFrame(rows)


def separation_text(separation: pd.DataFrame) -> str:
    """One sentence on which networks their trainings separate (see :func:`seed_separation`).

    Examples
    --------
    >>> separation = pd.DataFrame({"better": ["A", "A", "C"], "worse": ["C", "B", "B"], "apart": [True, True, False]})
    >>> separation_text(separation)
    'A scores above C and B in every training; C and B overlap over trainings'
    """
    parts = []
    for better, rows in separation.groupby("better", sort=False):
        apart = rows[rows["apart"]]["worse"].tolist()
        if apart:
            parts.append(f"{better} scores above {' and '.join(apart)} in every training")
    overlapping = separation[~separation["apart"]]
    parts += [f"{row.better} and {row.worse} overlap over trainings" for row in overlapping.itertuples()]
    return "; ".join(parts) if parts else "no pair of networks to compare"


# --------------------------------------------------------------------------- Table 2


def summary_row(metrics: pd.DataFrame, *, seed: int) -> dict[str, Any]:
    """Per-image mean IoU and DSB score with bootstrap 95% intervals (as text).

    Examples
    --------
    >>> summary_row(pd.DataFrame({"iou": [0.5, 0.5], "dsb_score": [0.25, 0.25]}), seed=0)
    {'IoU': 0.5, 'IoU 95% CI': '0.500-0.500', 'DSB score': 0.25, 'DSB score 95% CI': '0.250-0.250'}
    """
    row: dict[str, Any] = {}
    for column, label in [("iou", "IoU"), ("dsb_score", "DSB score")]:
        values = metrics[column].to_numpy()
        lo, hi = evaluation.bootstrap_ci(values, seed=seed)
        row[label] = values.mean()
        row[f"{label} 95% CI"] = f"{lo:.3f}-{hi:.3f}"
    return row


def table2_row(
    split: str,
    seed: int,
    ids: Mapping[str, Sequence[str]],
    metrics: pd.DataFrame,
    epochs: int,
    *,
    bootstrap_seed: int,
    paper: tuple[int, int, int, float] | None = None,
) -> dict[str, Any]:
    """One row of Table 2: split, seed, image counts, :func:`summary_row`, epochs and the paper's values.

    ``paper`` is ``(train, val, test, IoU)`` of the paper's row (``None``: the row
    has no counterpart in the paper).
    """
    counts = f"{len(ids['train'])}/{len(ids['val'])}/{len(ids['test'])}"
    return {
        "split": split,
        "seed": seed,
        "train/val/test": counts,
        **summary_row(metrics, seed=bootstrap_seed),
        "epochs": epochs,
        "paper train/val/test": "{}/{}/{}".format(*paper[:3]) if paper else "",
        "paper IoU": paper[3] if paper else np.nan,
    }


def split_seed_table(
    runs: Mapping[tuple[str, str, int], tuple[Any, Mapping[str, Any]]],
    splits: Mapping[str, Mapping[str, Sequence[str]]],
    samples: Mapping[str, Sample],
    model_config: ModelConfig,
    reference_metrics: pd.DataFrame,
    *,
    seed: int,
    extra_seeds: Iterable[int],
    reference: str = REFERENCE,
    seed_metrics: pd.DataFrame | None = None,
    evaluate: Callable[[Any, ModelConfig, Sequence[Sample]], tuple[pd.DataFrame, Any]] = evaluate_one,
) -> pd.DataFrame:
    """Table 2: the reference network on every split with ``seed``, then on the first split with each extra seed.

    Parameters
    ----------
    runs : mapping
        ``(model, split, seed) -> (TrainResult, info)`` from :func:`train_contenders`.
    splits : mapping
        ``{split: ids}``, ordered; the first is the one of ``reference_metrics``.
    samples : mapping
        ``{image_id: Sample}``.
    model_config : ModelConfig
        The reference network's configuration.
    reference_metrics : DataFrame
        The reference's per-image metrics on the first split's test images (already
        computed for Table 1, so not evaluated again).
    seed : int
        The main training seed, also the bootstrap seed.
    extra_seeds : iterable of int
    seed_metrics : DataFrame, optional
        Per-image metrics on the first split's test images with ``model`` and ``seed``
        columns, as :func:`score_seeds` returns them: the reference's extra seeds found there
        are not evaluated again.
    evaluate : callable
        ``(model, config, test_samples) -> (metrics, ...)``; :func:`evaluate_one`.
    """
    first = next(iter(splits))
    entries = [(split, seed) for split in splits] + [(first, extra) for extra in extra_seeds]
    known = {}
    if seed_metrics is not None:
        own = seed_metrics[seed_metrics["model"] == reference]
        known = {int(s): rows.reset_index(drop=True) for s, rows in own.groupby("seed", sort=False)}
    rows = []
    for split, train_seed in entries:
        result, info = runs[(reference, split, train_seed)]
        if split == first and train_seed == seed:
            metrics = reference_metrics
        elif split == first and train_seed in known:
            metrics = known[train_seed]
        else:
            metrics = evaluate(result.model, model_config, [samples[i] for i in splits[split]["test"]])[0]
        paper = PAPER_TABLE2.get(split) if train_seed == seed else None
        rows.append(
            table2_row(split, train_seed, splits[split], metrics, info["epochs_run"], bootstrap_seed=seed, paper=paper)
        )
    return pd.DataFrame(rows)


def spread_table(table2: pd.DataFrame, *, seed: int, first_split: str = "original") -> pd.DataFrame:
    """Range and SD of IoU and DSB score over seeds (on ``first_split``), range over splits (with ``seed``).

    Examples
    --------
    >>> table2 = pd.DataFrame({"split": ["original", "b", "original"], "seed": [42, 42, 1],
    ...                        "IoU": [0.8, 0.7, 0.9], "DSB score": [0.5, 0.4, 0.5]})
    >>> spread_table(table2, seed=42).loc["IoU"].round(3).tolist()
    [0.1, 0.071, 0.1, 0.05]
    """
    seed_rows = table2[table2["split"] == first_split]
    split_rows = table2[table2["seed"] == seed]
    return pd.DataFrame(
        {
            f"range over seeds ({first_split} split)": {
                "IoU": np.ptp(seed_rows["IoU"]),
                "DSB score": np.ptp(seed_rows["DSB score"]),
            },
            "SD over seeds": {"IoU": seed_rows["IoU"].std(ddof=1), "DSB score": seed_rows["DSB score"].std(ddof=1)},
            f"range over splits (seed {seed})": {
                "IoU": np.ptp(split_rows["IoU"]),
                "DSB score": np.ptp(split_rows["DSB score"]),
            },
            "paper's range over splits": {"IoU": PAPER_SPLIT_IOU_RANGE, "DSB score": np.nan},
        }
    )


def spread_glue(
    spread: pd.DataFrame, table2: pd.DataFrame, *, seed: int, first_split: str = "original"
) -> dict[str, Any]:
    """Glue values of the spread: ``seed_/split_`` ``iou_/dsb_`` ``range`` and ``n_seeds``."""
    over_seeds, over_splits = f"range over seeds ({first_split} split)", f"range over splits (seed {seed})"
    return {
        "seed_iou_range": float(spread.loc["IoU", over_seeds]),
        "split_iou_range": float(spread.loc["IoU", over_splits]),
        "seed_dsb_range": float(spread.loc["DSB score", over_seeds]),
        "split_dsb_range": float(spread.loc["DSB score", over_splits]),
        "n_seeds": int((table2["split"] == first_split).sum()),
    }
