"""StarDist beside the U-Net on the grouped folds: the field's standard under the same protocol.

StarDist :cite:`schmidt2018` predicts, per pixel, an object probability and the distances to
the nucleus boundary along 32 rays, and keeps the star-convex polygons that survive a
non-maximum suppression. Here it is trained from scratch (no pretrained weights can be
downloaded on the study's machines) once per grouped fold of the unseen-conditions chapter,
with the comparison budget of the U-Net it is set beside:

- the same training images of the fold and the same nine validation images
  (:func:`nucleilib.study.groups.validation_ids`);
- the same input: :func:`nucleilib.preprocess.preprocess` with the U-Net's settings (three
  channels, percentile normalisation, bright backgrounds inverted), so neither network gets
  an input the other lacks;
- the same number of samples seen: ``epochs x steps_per_epoch`` batches of ``batch_size``
  patches of ``crop`` pixels (1,200 batches of 8 patches of 128 pixels), the same seed;
- otherwise StarDist's own defaults, as a lab would run it: 32 rays, a (2, 2) grid, its U-Net
  backbone (about 1.4 million parameters), its learning rate and loss, random flips and
  90-degree rotations as augmentation, and its ``optimize_thresholds`` on the validation
  images after training. There is no early stopping (StarDist trains the epochs it is given;
  it keeps the weights of its best validation loss).

Each fold's model is cached under the model cache as ``grouped-stardist-fold<k>-<digest>``
(the digest covers this configuration and the image ids) and its held-out scores beside it,
so re-running the chapter neither retrains nor rescores.
``python -m nucleilib.study.starconvex`` trains and scores the folds from the command line.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import groups as grp
from .scores import rescore_requested

#: StarDist's settings that are not the budget (its defaults, written out so the digest holds them).
STARDIST_DEFAULTS: dict[str, Any] = {"n_rays": 32, "grid": [2, 2]}
#: Bumped when the scoring changes, so cached scores are not reused.
SCORES_VERSION = 1
#: The written marker of a finished training (weights and thresholds are in place).
FINISHED = "training.json"


def stardist_settings(budget: Any) -> dict[str, Any]:
    """StarDist's training settings for a comparison ``budget`` (a TrainConfig).

    Examples
    --------
    >>> from nucleilib.study.groups import comparison_budget
    >>> settings = stardist_settings(comparison_budget())
    >>> settings["train_patch_size"], settings["train_batch_size"], settings["epochs"] * settings["steps_per_epoch"]
    ([128, 128], 8, 1200)
    """
    return {
        **STARDIST_DEFAULTS,
        "n_channel_in": int(budget.model.in_channels),
        "train_patch_size": [int(budget.crop), int(budget.crop)],
        "train_batch_size": int(budget.batch_size),
        "epochs": int(budget.epochs),
        "steps_per_epoch": int(budget.steps_per_epoch),
        "seed": int(budget.seed),
        "invert_bright": bool(budget.model.invert_bright),
        "sigma": float(budget.model.sigma),
    }


def settings_digest(settings: dict[str, Any], train_ids: Sequence[str], val_ids: Sequence[str]) -> str:
    """A short digest of the settings and the image ids a fold model is trained on."""
    import stardist

    key = json.dumps(
        {"settings": settings, "train": sorted(train_ids), "val": sorted(val_ids), "stardist": stardist.__version__},
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def network_input(image: np.ndarray, settings: dict[str, Any]) -> np.ndarray:
    """The image as the U-Net gets it (:func:`nucleilib.preprocess.preprocess`), float32."""
    from ..preprocess import preprocess

    x = preprocess(
        image, sigma=settings["sigma"], invert_bright=settings["invert_bright"], grey=settings["n_channel_in"] == 1
    )
    return np.asarray(x, np.float32)


def _flip_rot90(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """StarDist's usual augmentation: a random 90-degree rotation and flip of image and labels."""
    k = np.random.randint(4)
    x, y = np.rot90(x, k, axes=(0, 1)), np.rot90(y, k, axes=(0, 1))
    if np.random.rand() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def _load(folder: Path) -> Any:
    from stardist.models import StarDist2D

    missing = [name for name in ("config.json", "weights_best.h5", "thresholds.json") if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder}: cached StarDist model is incomplete (missing {', '.join(missing)}); delete the folder to retrain"
        )
    try:
        return StarDist2D(None, name=folder.name, basedir=str(folder.parent))
    except Exception as error:  # h5py/keras errors of a damaged file
        raise ValueError(f"{folder}: cached StarDist model cannot be loaded ({error}); delete the folder") from None


def train_fold(
    settings: dict[str, Any], fit: Sequence[Any], val: Sequence[Any], cache_root: str | Path, name: str
) -> tuple[Any, Path, dict[str, Any]]:
    """Train (or load from the cache) one StarDist model; returns ``(model, folder, record)``.

    A folder without :data:`FINISHED` is a training that did not end and is trained again.
    """
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    from ..training import set_seeds

    cache_root = Path(cache_root)
    folder = cache_root / f"{name}-{settings_digest(settings, [s.image_id for s in fit], [s.image_id for s in val])}"
    if (folder / FINISHED).is_file():
        return _load(folder), folder, json.loads((folder / FINISHED).read_text())
    if folder.exists():
        shutil.rmtree(folder)  # an interrupted training of this cache entry
    cache_root.mkdir(parents=True, exist_ok=True)
    set_seeds(settings["seed"])
    config = Config2D(
        n_rays=settings["n_rays"],
        grid=tuple(settings["grid"]),
        n_channel_in=settings["n_channel_in"],
        train_patch_size=tuple(settings["train_patch_size"]),
        train_batch_size=settings["train_batch_size"],
        train_epochs=settings["epochs"],
        train_steps_per_epoch=settings["steps_per_epoch"],
        train_tensorboard=False,
        use_gpu=False,
    )
    model = StarDist2D(config, name=folder.name, basedir=str(cache_root))
    xs = [network_input(s.image, settings) for s in fit]
    ys = [fill_label_holes(s.labels) for s in fit]
    xv = [network_input(s.image, settings) for s in val]
    yv = [fill_label_holes(s.labels) for s in val]
    start = time.perf_counter()
    model.train(xs, ys, validation_data=(xv, yv), augmenter=_flip_rot90, epochs=settings["epochs"],
                steps_per_epoch=settings["steps_per_epoch"])  # fmt: skip
    train_s = time.perf_counter() - start
    model.optimize_thresholds(xv, yv)
    (folder / "weights_last.h5").unlink(missing_ok=True)  # the best weights are kept
    record = {
        "train_s": round(train_s, 1),
        "total_s": round(time.perf_counter() - start, 1),
        "parameters": int(model.keras_model.count_params()),
        "train_images": len(fit),
        "val_images": len(val),
        "settings": settings,
        "thresholds": {k: float(v) for k, v in model.thresholds._asdict().items()},
    }
    (folder / FINISHED).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return model, folder, record


def score(model: Any, samples: Sequence[Any], settings: dict[str, Any]) -> pd.DataFrame:
    """Per-image metrics (:func:`nucleilib.evaluation.evaluate_pairs`) and seconds per image."""
    from ..evaluation import evaluate_pairs

    preds, seconds = [], []
    for sample in samples:
        start = time.perf_counter()
        x = network_input(sample.image, settings)
        labels, _ = model.predict_instances(x, show_tile_progress=False)
        seconds.append(time.perf_counter() - start)
        preds.append(labels.astype(np.int32))
    frame = evaluate_pairs([s.labels for s in samples], preds, ids=[s.image_id for s in samples])
    frame["method"] = "stardist"
    frame["predict_s"] = seconds
    return frame


def read_scores(path: str | Path, test_ids: Sequence[str]) -> pd.DataFrame:
    """A fold's cached scores, checked: one complete row per held-out image, or a ValueError
    naming the file (a truncated CSV would otherwise drop or blank its last rows silently)."""
    try:
        metrics = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: cached StarDist scores cannot be read ({error}); delete it to rescore") from None
    needed = ["image_id", "dsb_score", "predict_s"]
    if (
        any(c not in metrics for c in needed)
        or metrics[needed].isna().any().any()
        or sorted(metrics["image_id"]) != sorted(test_ids)
    ):
        raise ValueError(f"{path}: cached StarDist scores are incomplete for this fold; delete the file to rescore")
    return metrics


def stardist_grouped_evaluation(
    samples: dict,
    groups: pd.Series,
    folds: Sequence[dict[str, list[str]]],
    budget: Any,
    cache_root: str | Path,
    *,
    name: str = "grouped-stardist",
    n_val: int = 9,
    only: Sequence[int] | None = None,
) -> pd.DataFrame:
    """StarDist trained per fold on the other groups; one row per held-out image, with the
    columns of :func:`nucleilib.study.groups.grouped_evaluation` (``method`` is ``"stardist"``)
    and the fold's training seconds (``train_s``). A fold's scores are cached beside its model
    and scored again when ``NUCLEI_RESCORE`` asks to (:func:`nucleilib.study.scores.rescore_requested`)."""
    grp.check_folds(folds, groups)
    settings = stardist_settings(budget)
    rescore = rescore_requested()
    frames = []
    for k, fold in enumerate(folds):
        if only is not None and k not in only:
            continue
        val_ids = grp.validation_ids(fold["train"], min(n_val, max(1, len(fold["train"]) // 5)))
        held = set(val_ids)
        fit = [samples[i] for i in fold["train"] if i not in held]
        model, folder, record = train_fold(settings, fit, [samples[i] for i in val_ids], cache_root, f"{name}-fold{k}")
        key = hashlib.sha256(json.dumps([SCORES_VERSION, sorted(fold["test"])]).encode()).hexdigest()[:12]
        cached = folder / f"scores-{key}.csv"
        if cached.is_file() and not rescore:
            metrics = read_scores(cached, fold["test"])
        else:
            metrics = score(model, [samples[i] for i in fold["test"]], settings)
            metrics.to_csv(cached, index=False)
        metrics["fold"] = k
        metrics["group"] = groups[metrics["image_id"]].to_numpy()
        metrics["model"] = folder.name
        metrics["train_s"] = record["train_s"]
        frames.append(metrics)
    if not frames:
        raise ValueError("no fold selected")
    return pd.concat(frames, ignore_index=True)


def side_by_side(per_image: dict[str, pd.DataFrame], metric: str = "dsb_score") -> pd.DataFrame:
    """Per held-out group, ``metric`` of each contender (``{name: per-image rows}``), its mean
    over groups and over images, and the mean seconds per image.

    Examples
    --------
    >>> a = pd.DataFrame({"group": ["g1", "g1", "g2"], "dsb_score": [0.2, 0.4, 0.6], "predict_s": 0.1})
    >>> side_by_side({"A": a, "B": a.assign(dsb_score=0.5)}).round(2).loc[["g1", "mean over groups"]].to_dict()
    {'A': {'g1': 0.3, 'mean over groups': 0.45}, 'B': {'g1': 0.5, 'mean over groups': 0.5}}
    """
    columns = {}
    for name, rows in per_image.items():
        by_group = rows.groupby("group")[metric].mean()
        columns[name] = pd.concat(
            [
                by_group,
                pd.Series(
                    {
                        "mean over groups": by_group.mean(),
                        "mean over images": rows[metric].mean(),
                        "s per image": rows["predict_s"].mean(),
                    }
                ),
            ]
        )
    table = pd.DataFrame(columns)
    order = grp.by_size(next(iter(per_image.values()))["group"])
    return table.loc[order + ["mean over groups", "mean over images", "s per image"]]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nucleilib.study.starconvex``: train and score StarDist on the grouped folds."""
    import argparse
    import warnings

    from ..data import data_root, load_dataset

    parser = argparse.ArgumentParser(prog="python -m nucleilib.study.starconvex", description=main.__doc__)
    parser.add_argument("--artefacts", default="artefacts/cpu", help="the run's artefact folder (manifest, models)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--only", type=int, nargs="+", help="train and score these folds only")
    args = parser.parse_args(argv)
    out = Path(args.artefacts)
    groups = grp.imaging_groups(pd.read_csv(out / "manifest.csv"))
    folds = grp.grouped_folds(groups, args.folds or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        samples = {s.image_id: s for s in load_dataset(data_root(), ids=list(groups.index))}
    per_image = stardist_grouped_evaluation(samples, groups, folds, grp.comparison_budget(), out / "models",
                                            only=args.only)  # fmt: skip
    per_image.to_csv(out / "stardist-per-image.csv", index=False)  # the file chapter 07 writes
    print(grp.group_summary(per_image).round(3).to_string(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
