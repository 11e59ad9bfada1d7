"""Imaging groups of the DSB images, and folds that hold whole groups out.

A random split puts images of the same experiment (same microscope, stain and size) on both
sides, so its test score says little about a lab's own images. Here the images are grouped
into imaging experiments by modality and image size (the DSB2018 stage-1 set has a handful
of sizes per modality, each one experiment or a few alike), rare sizes of a modality are
pooled, and :func:`grouped_folds` makes folds in which every test image is scored by a model
that saw no image of its group.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..validation import positive_int

#: A (modality, size) cell with fewer images than this joins its modality's "other sizes" group.
MIN_GROUP_SIZE = 30


def imaging_groups(manifest: pd.DataFrame, *, min_group_size: int = MIN_GROUP_SIZE) -> pd.Series:
    """The imaging group of every image: ``"<modality> <height>x<width>"``, or
    ``"<modality>, other sizes"`` for a size with fewer than ``min_group_size`` images.

    A modality whose images all fall into small cells keeps one group of its own.

    Parameters
    ----------
    manifest : DataFrame
        With columns ``image_id``, ``modality``, ``height`` and ``width``
        (:func:`nucleilib.study.manifest.build_manifest`).

    Returns
    -------
    Series of str
        Indexed by ``image_id``.

    Examples
    --------
    >>> m = pd.DataFrame({"image_id": list("abcde"), "modality": ["fluorescence"] * 4 + ["brightfield"],
    ...                   "height": [256, 256, 256, 520, 1024], "width": [256, 256, 256, 696, 1024]})
    >>> imaging_groups(m, min_group_size=2).tolist()
    ['fluorescence 256x256', 'fluorescence 256x256', 'fluorescence 256x256', 'fluorescence, other sizes', 'brightfield']
    """
    missing = {"image_id", "modality", "height", "width"} - set(manifest.columns)
    if missing:
        raise ValueError(f"manifest lacks column(s) {', '.join(sorted(missing))}")
    positive_int(min_group_size, "min_group_size")
    size = manifest["height"].astype(int).astype(str) + "x" + manifest["width"].astype(int).astype(str)
    cell = manifest["modality"] + " " + size
    counts = cell.map(cell.value_counts())
    big = counts >= min_group_size
    groups = cell.where(big, manifest["modality"] + ", other sizes")
    for modality in manifest["modality"].unique():
        of_modality = manifest["modality"] == modality
        if not big[of_modality].any():
            groups[of_modality] = modality
    return pd.Series(groups.to_numpy(), index=manifest["image_id"].to_numpy(), name="group")


def group_table(groups: pd.Series) -> pd.DataFrame:
    """Images per group, largest first."""
    table = groups.value_counts().rename_axis("group").reset_index(name="images")
    return table.sort_values(["images", "group"], ascending=[False, True], ignore_index=True)


def grouped_folds(groups: pd.Series, n_folds: int | None = None) -> list[dict[str, list[str]]]:
    """Folds that hold whole imaging groups out.

    With ``n_folds=None`` every group is its own fold (leave one group out). Otherwise
    the groups are dealt, largest first, to the fold with the fewest images so far, so
    the folds are of similar size.

    Returns
    -------
    list of dict
        One per fold: ``{"test": ids, "train": ids, "groups": names held out}``;
        every image is in exactly one fold's test set, and no group is on both sides.

    Examples
    --------
    >>> g = pd.Series(["a", "a", "b", "c", "c", "c"], index=list("uvwxyz"))
    >>> [f["groups"] for f in grouped_folds(g, 2)]
    [['c'], ['a', 'b']]
    >>> grouped_folds(g)[1]["test"]
    ['u', 'v']
    """
    sizes = groups.value_counts()
    names = sorted(sizes.index, key=lambda name: (-sizes[name], name))
    if n_folds is None:
        assignment = [[name] for name in names]
    else:
        n_folds = positive_int(n_folds, "n_folds")
        if n_folds > len(names):
            raise ValueError(f"n_folds ({n_folds}) is more than the {len(names)} groups")
        assignment = [[] for _ in range(n_folds)]
        load = np.zeros(n_folds)
        for name in names:
            k = int(np.argmin(load))
            assignment[k].append(name)
            load[k] += sizes[name]
    ids = groups.index.to_numpy()
    folds = []
    for held_out in assignment:
        inside = groups.isin(held_out).to_numpy()
        folds.append(
            {"groups": sorted(held_out), "test": sorted(ids[inside].tolist()), "train": sorted(ids[~inside].tolist())}
        )
    return folds


def check_folds(folds: Sequence[dict[str, list[str]]], groups: pd.Series) -> None:
    """Raise a ValueError if a fold has a group on both sides or an image is tested twice or never."""
    tested: list[str] = []
    for k, fold in enumerate(folds):
        train_groups = set(groups[fold["train"]])
        test_groups = set(groups[fold["test"]])
        both = train_groups & test_groups
        if both:
            raise ValueError(f"fold {k}: group(s) {', '.join(sorted(both))} on both sides")
        tested += fold["test"]
    if sorted(tested) != sorted(groups.index):
        raise ValueError("the folds' test sets do not cover every image exactly once")


#: Version of the scoring kept in the cached per-fold scores; raise it when scoring changes.
SCORES_VERSION = 3


def _scores_path(folder: object, test_ids: Sequence[str], methods: Sequence[str], options: dict | None) -> object:
    """Where a fold model's scores with these settings are cached (None without a model folder)."""
    import hashlib
    import json
    from pathlib import Path

    folder = Path(folder)
    if not folder.is_dir():
        return None
    key = json.dumps(
        {"version": SCORES_VERSION, "test": sorted(test_ids), "methods": list(methods), "options": options or {}},
        sort_keys=True,
    )
    return folder / f"scores-{hashlib.sha256(key.encode()).hexdigest()[:12]}.csv"


def _scoring_model(result: object, segmenter_options: dict | None) -> tuple[object, object]:
    """The trained model and config to score with, or a Segmenter built with the options."""
    model, config = result.model, result.config.model
    if not segmenter_options:
        return model, config
    import dataclasses

    from ..segmenter import Segmenter

    options = dict(segmenter_options)
    changes = {key.removeprefix("model_"): options.pop(key) for key in list(options) if key.startswith("model_")}
    if "diameter" in changes:
        changes["diameter"] = float(changes["diameter"])
    config = dataclasses.replace(config, **changes)
    return Segmenter.from_keras(model, config, **options), None


def validation_ids(train_ids: Sequence[str], n: int = 9) -> list[str]:
    """``n`` evenly spaced ids of the sorted training pool, kept for early stopping.

    Examples
    --------
    >>> validation_ids([f"i{k:02d}" for k in range(20)], 4)
    ['i00', 'i05', 'i10', 'i15']
    """
    ordered = sorted(train_ids)
    n = min(positive_int(n, "n"), len(ordered))
    step = len(ordered) / n
    return [ordered[int(k * step)] for k in range(n)]


def grouped_evaluation(
    samples: dict,
    groups: pd.Series,
    folds: Sequence[dict[str, list[str]]],
    budget: object,
    cache_root: object,
    *,
    name: str = "grouped",
    n_val: int = 9,
    methods: Sequence[str] | None = None,
    segmenter_options: dict | None = None,
    rescore: bool | None = None,
    only: Sequence[int] | None = None,
    train: object = None,
    evaluate: object = None,
) -> pd.DataFrame:
    """Train one network per fold on the other groups and score every held-out image.

    Parameters
    ----------
    samples : dict
        Image id -> :class:`nucleilib.data.Sample`, every id of the folds.
    groups : Series
        :func:`imaging_groups`.
    folds : sequence of dict
        :func:`grouped_folds`; checked by :func:`check_folds`.
    budget : TrainConfig
        One training configuration for every fold (cached by digest under
        ``cache_root``, so a re-run trains nothing).
    n_val : int
        Training images set aside per fold for early stopping (:func:`validation_ids`),
        at most a fifth of the fold's training pool.
    methods : sequence of str, optional
        Separation methods scored (default: the model's own).
    segmenter_options : dict, optional
        Keyword arguments of :meth:`nucleilib.segmenter.Segmenter.from_keras` (``diameter``,
        ``tta``) for scoring; a ``"model_<field>"`` key sets that field of the model's
        configuration: ``"model_diameter"`` its nucleus diameter, so that a model trained at
        the images' own scale is rescaled at inference, ``"model_colour_input"`` the
        preprocessing of colour images.
    only : sequence of int, optional
        Train and score these folds only (for a costly inference option); the rows then
        cover only their images.
    rescore : bool or None
        Score again even where the scores are cached (None: when ``NUCLEI_RESCORE`` asks to,
        :func:`nucleilib.study.scores.rescore_requested`). A fold's per-image scores are kept in
        its model folder as ``scores-<key>.csv``, the key a digest of :data:`SCORES_VERSION`,
        the test ids, the methods and the options, so a re-run of the book neither retrains
        nor rescores (its ``predict_s`` column is the time of the run that scored it).
    train, evaluate : callable, optional
        Stand-ins for :func:`nucleilib.training.train` and
        :func:`nucleilib.segmenter.evaluate_model` (tests).

    Returns
    -------
    DataFrame
        One row per held-out image: the metrics of
        :func:`nucleilib.evaluation.evaluate_pairs`, ``fold``, ``group`` and the
        model folder that scored it.
    """
    if train is None:
        from ..training import train
    if evaluate is None:
        from ..segmenter import evaluate_model as evaluate
    check_folds(folds, groups)
    if rescore is None:
        from .scores import rescore_requested

        rescore = rescore_requested()
    frames = []
    for k, fold in enumerate(folds):
        if only is not None and k not in only:
            continue
        # A small training pool (a smoke run) keeps most of its images for training.
        val = validation_ids(fold["train"], min(n_val, max(1, len(fold["train"]) // 5)))
        held = set(val)
        fit = [samples[i] for i in fold["train"] if i not in held]
        result = train(budget, fit, [samples[i] for i in val], cache_root, name=f"{name}-fold{k}", verbose=0)
        test = [samples[i] for i in fold["test"]]
        scored_with = list(methods or [result.config.model.separation])
        cached = _scores_path(result.folder, fold["test"], scored_with, segmenter_options)
        if cached is not None and cached.is_file() and not rescore:
            metrics = pd.read_csv(cached)
        else:
            model, config = _scoring_model(result, segmenter_options)
            metrics, _ = evaluate(model, config, test, methods=scored_with)
            if cached is not None:
                from ..io import write_table

                write_table(metrics, cached)
        metrics["fold"] = k
        metrics["group"] = groups[metrics["image_id"]].to_numpy()
        metrics["model"] = result.folder.name
        frames.append(metrics)
    return pd.concat(frames, ignore_index=True)


def by_size(groups: pd.Series) -> list[str]:
    """The distinct values of ``groups``, most frequent first, ties by name: the same order on
    every machine (``value_counts`` leaves the order of ties to the sort it runs).

    Examples
    --------
    >>> by_size(pd.Series(["b", "a", "c", "c", "b"]))
    ['b', 'c', 'a']
    """
    counts = groups.value_counts()
    return sorted(counts.index, key=lambda group: (-counts[group], group))


def group_summary(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per held-out group: images, mean DSB score, AP@0.5 and foreground IoU, and their
    mean over groups (each group counting once) and over images."""
    columns = {"dsb_score": "DSB", "ap50": "AP@0.5", "iou": "IoU"}
    present = {c: n for c, n in columns.items() if c in per_image}
    table = per_image.groupby("group").agg(images=("image_id", "size"), **{n: (c, "mean") for c, n in present.items()})
    table = table.loc[by_size(per_image["group"])]
    means = table[list(present.values())]
    table.loc["mean over groups"] = [table["images"].sum(), *means.mean()]
    table.loc["mean over images"] = [len(per_image), *per_image[list(present)].mean()]
    table["images"] = table["images"].astype(int)
    return table


def comparison_budget(
    *,
    crop: int = 128,
    batch_size: int = 8,
    epochs: int = 20,
    steps_per_epoch: int = 60,
    patience: int = 12,
    max_minutes: float | None = 20.0,
    seed: int = 42,
) -> object:
    """The short, equal training budget of the grouped comparisons (the comparison chapter's
    U-Net: 1,200 steps of 8 crops of 128 pixels), as a :class:`~nucleilib.training.TrainConfig`.

    The chapter and ``python -m nucleilib.study.groups`` both build it here, so their
    trainings have one digest and share the cached fold models.
    """
    from ..training import TrainConfig

    return TrainConfig(
        crop=crop,
        batch_size=batch_size,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        patience=patience,
        max_minutes=max_minutes,
        seed=seed,
    )


def write_grouped(per_image: pd.DataFrame, out: object, stem: str) -> pd.DataFrame:
    """Write ``<stem>-per-image.csv`` and ``<stem>-summary.csv`` to ``out``; return the summary."""
    from pathlib import Path

    out = Path(out)
    per_image.to_csv(out / f"{stem}-per-image.csv", index=False)
    summary = group_summary(per_image)
    summary.to_csv(out / f"{stem}-summary.csv")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nucleilib.study.groups``: the grouped evaluation of the comparison budget's U-Net."""
    import argparse
    import warnings
    from pathlib import Path

    from ..data import data_root, load_dataset

    parser = argparse.ArgumentParser(prog="python -m nucleilib.study.groups", description=main.__doc__)
    parser.add_argument("--artefacts", default="artefacts/cpu", help="the run's artefact folder (manifest, models)")
    parser.add_argument("--folds", type=int, default=3, help="grouped folds (0: leave one group out)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--steps-per-epoch", type=int, default=60)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--max-minutes", type=float, default=20.0)
    parser.add_argument("--name", default="grouped-unet")
    args = parser.parse_args(argv)
    out = Path(args.artefacts)
    manifest = pd.read_csv(out / "manifest.csv")
    groups = imaging_groups(manifest)
    folds = grouped_folds(groups, args.folds or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        samples = {s.image_id: s for s in load_dataset(data_root(), ids=list(groups.index))}
    budget = comparison_budget(
        crop=args.crop, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, max_minutes=args.max_minutes
    )
    per_image = grouped_evaluation(samples, groups, folds, budget, out / "models", name=args.name)
    summary = write_grouped(per_image, out, f"{args.name}-{len(folds)}folds")
    print(summary.round(3).to_string())
    return 0


def random_split_by_group(per_image: pd.DataFrame, groups: pd.Series, model: str = "U-Net") -> pd.DataFrame:
    """Per imaging group, the random split's test scores of one model (the comparison chapter's
    per-image table), beside which the held-out scores of :func:`group_summary` are read.

    Examples
    --------
    >>> per_image = pd.DataFrame({"image_id": ["a", "b", "c"], "model": "U-Net", "dsb_score": [0.4, 0.6, 0.8],
    ...                           "ap50": 0.5, "iou": 0.7})
    >>> random_split_by_group(per_image, pd.Series({"a": "g1", "b": "g1", "c": "g2"}))["DSB"].round(2).to_dict()
    {'g1': 0.5, 'g2': 0.8}
    """
    rows = per_image[per_image["model"] == model].copy()
    if rows.empty:
        raise ValueError(f"no per-image rows of model {model!r}")
    rows["group"] = groups.reindex(rows["image_id"]).to_numpy()
    table = rows.groupby("group").agg(
        images=("image_id", "size"), DSB=("dsb_score", "mean"), **{"AP@0.5": ("ap50", "mean")}, IoU=("iou", "mean")
    )
    return table


def held_out_against_random(held_out: pd.DataFrame, random_split: pd.DataFrame) -> pd.DataFrame:
    """One row per group: DSB and IoU when the group is held out, and on the random split's test images.

    ``held_out`` is :func:`group_summary`; ``random_split`` is :func:`random_split_by_group`.
    Groups without a random-split test image get NaN there.
    """
    groups = [g for g in held_out.index if not g.startswith("mean over")]
    table = pd.DataFrame(index=pd.Index(groups, name="group"))
    table["images"] = held_out.loc[groups, "images"]
    table["DSB, group held out"] = held_out.loc[groups, "DSB"]
    table["DSB, random split"] = random_split["DSB"].reindex(groups)
    table["random-split test images"] = random_split["images"].reindex(groups).fillna(0).astype(int)
    table["IoU, group held out"] = held_out.loc[groups, "IoU"]
    table["IoU, random split"] = random_split["IoU"].reindex(groups)
    return table


def groups_figure(comparison: pd.DataFrame) -> object:
    """Bars of DSB per imaging group: held out vs the random split (:func:`held_out_against_random`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 3.8))
    columns = ["DSB, random split", "DSB, group held out"]
    comparison[columns].plot.barh(ax=ax, color=["#9ecae1", "#de2d26"])
    ax.invert_yaxis()
    ax.set_xlabel("DSB score (mean over the group's images)")
    ax.set_ylabel("")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
