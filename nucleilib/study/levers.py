"""The levers against unseen imaging conditions, each measured on the grouped protocol.

A *lever* is a change of the training (:data:`TRAINING_LEVERS`: nucleus scale, colour and
stain augmentation, modality-balanced sampling) or of the inference (:data:`INFERENCE_OPTIONS`:
test-time augmentation, rescaling a native-scale model at inference, the separation method).
Each training lever is trained with the comparison budget (:func:`~nucleilib.study.groups.comparison_budget`)
once per grouped fold and cached, so the table of levers is re-read, not re-trained, when the
book is rebuilt.

``python -m nucleilib.study.levers --lever scale`` runs one lever from the command line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from . import groups as grp

#: Nucleus diameter (pixels) a scale-aware model is trained and run at: about the median of
#: the DSB images' own median diameters (18 pixels), rounded up so small nuclei gain pixels.
CANONICAL_DIAMETER = 20.0
#: Zoom range of the scale-aware training crops (log-uniform in [1/j, j]).
SCALE_JITTER = 1.25

#: Training levers: changes of the comparison budget's TrainConfig (``model`` changes the
#: ModelConfig).
TRAINING_LEVERS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "modality": {"colour": True, "balance": "modality"},
    "scale": {"model": {"diameter": CANONICAL_DIAMETER}, "scale_jitter": SCALE_JITTER},
    "scale+modality": {
        "model": {"diameter": CANONICAL_DIAMETER},
        "scale_jitter": SCALE_JITTER,
        "colour": True,
        "balance": "modality",
    },
    # A stronger touching-nuclei signal: a wider contact zone, weighted three times in the loss.
    "separation": {"border_width": 3, "border_weight": 3.0},
    # The baseline trained in bfloat16 (oneDNN on CPUs with AVX-512 BF16 or AMX): kept if
    # its grouped score holds, since it trains faster.
    "bfloat16": {"mixed_precision": "bfloat16"},
}

#: Nucleus sizes a native-scale model may be taken to work at: the reference diameter that
#: ``"auto"`` rescales each image's nuclei to. Measured on the grouped folds, it chooses the
#: shipped model's (``ship_diameter`` of the U-Net chapter's profile).
REFERENCE_DIAMETERS = (16.0, 20.0, 24.0, 28.0)


def rescaled(reference: float) -> str:
    """The inference option that rescales images so their nuclei are ``reference`` pixels across.

    Examples
    --------
    >>> rescaled(24.0)
    'rescaled at inference, 24 px'
    """
    return f"rescaled at inference, {reference:g} px"


#: Colour inputs tried at inference on a model trained with RGB input (see
#: :data:`nucleilib.preprocess.COLOUR_INPUTS`): they change colour images only.
INFERENCE_COLOUR_INPUTS = ("grey", "hematoxylin")
#: Test-time augmentation views every other inference option is also scored with.
TTA_VIEWS = (4, 8)


def _colour_name(inference: str, colour_input: str) -> str:
    return f"{inference}, {colour_input} input"


def _tta_name(inference: str, views: int) -> str:
    return f"tta{views}" if inference == "plain" else f"{inference} + tta{views}"


#: Inference options scored on a trained lever (``Segmenter.from_keras`` settings; see
#: :func:`nucleilib.study.groups.grouped_evaluation`): plain, rescaled to each reference
#: diameter, each of those with each colour input, and each of all these with TTA.
INFERENCE_OPTIONS: dict[str, dict[str, Any]] = {"plain": {}}
for _reference in REFERENCE_DIAMETERS:
    INFERENCE_OPTIONS[rescaled(_reference)] = {"model_diameter": _reference, "diameter": "auto"}
for _inference, _option in list(INFERENCE_OPTIONS.items()):
    for _colour in INFERENCE_COLOUR_INPUTS:
        INFERENCE_OPTIONS[_colour_name(_inference, _colour)] = {**_option, "model_colour_input": _colour}
for _inference, _option in list(INFERENCE_OPTIONS.items()):
    for _views in TTA_VIEWS:
        INFERENCE_OPTIONS[_tta_name(_inference, _views)] = {**_option, "tta": _views}


def with_colour_input(inference: str, colour_input: str) -> str:
    """The inference option that preprocesses colour images with ``colour_input`` on top of
    ``inference``.

    Examples
    --------
    >>> with_colour_input("rescaled at inference, 24 px", "hematoxylin")
    'rescaled at inference, 24 px, hematoxylin input'
    """
    name = _colour_name(inference, colour_input)
    if name not in INFERENCE_OPTIONS:
        raise ValueError(f"no colour input option {name!r}")
    return name


def with_tta(inference: str, views: int) -> str:
    """The inference option that adds ``views``-fold test-time augmentation to ``inference``.

    Examples
    --------
    >>> with_tta("plain", 8), with_tta("rescaled at inference, 24 px", 4)
    ('tta8', 'rescaled at inference, 24 px + tta4')
    """
    name = _tta_name(inference, views)
    if name not in INFERENCE_OPTIONS:
        raise ValueError(f"no test-time augmentation option {name!r}")
    return name


def lever_config(budget: Any, lever: str) -> Any:
    """The comparison ``budget`` with the changes of a training lever.

    Examples
    --------
    >>> from nucleilib.study.groups import comparison_budget
    >>> config = lever_config(comparison_budget(), "scale")
    >>> config.model.diameter, config.scale_jitter, config.colour
    (20.0, 1.25, False)
    """
    if lever not in TRAINING_LEVERS:
        raise ValueError(f"unknown lever {lever!r}; choose one of {', '.join(TRAINING_LEVERS)}")
    changes = dict(TRAINING_LEVERS[lever])
    model_changes = changes.pop("model", {})
    config = dataclasses.replace(budget, **changes)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, **model_changes))


def lever_evaluation(
    samples: dict,
    groups: pd.Series,
    folds: Sequence[dict[str, list[str]]],
    budget: Any,
    cache_root: str | Path,
    lever: str,
    *,
    inference: str = "plain",
    methods: Sequence[str] | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`~nucleilib.study.groups.grouped_evaluation` of one training lever and one
    inference option; the rows carry ``lever`` and ``inference`` columns.

    The baseline's fold models are the chapter's (``grouped-unet-fold<k>``); the other
    levers' are cached as ``grouped-<lever>-fold<k>``.
    """
    if inference not in INFERENCE_OPTIONS:
        raise ValueError(f"unknown inference option {inference!r}; choose one of {', '.join(INFERENCE_OPTIONS)}")
    config = lever_config(budget, lever)
    options = dict(INFERENCE_OPTIONS[inference])
    if "model_diameter" in options and config.model.diameter is not None:
        options.pop("model_diameter")  # a scale-aware model rescales anyway
    name = "grouped-unet" if lever == "baseline" else f"grouped-{lever.replace('+', '-')}"
    per_image = grp.grouped_evaluation(
        samples,
        groups,
        folds,
        config,
        cache_root,
        name=name,
        methods=methods,
        segmenter_options=options or None,
        **kwargs,
    )
    per_image.insert(0, "inference", inference)
    per_image.insert(0, "lever", lever)
    return per_image


def lever_table(per_image: pd.DataFrame, metric: str = "dsb_score") -> pd.DataFrame:
    """One row per (lever, inference, method): ``metric`` per held-out group, its mean over
    groups and over images, and the weakest group's.

    Examples
    --------
    >>> rows = pd.DataFrame({"lever": ["a", "a", "a"], "inference": "plain", "method": "borders",
    ...                      "group": ["g1", "g1", "g2"], "image_id": ["x", "y", "z"], "dsb_score": [0.2, 0.4, 0.6]})
    >>> lever_table(rows).round(2).to_dict("records")
    [{'lever': 'a', 'inference': 'plain', 'method': 'borders', 'g1': 0.3, 'g2': 0.6, 'mean over groups': 0.45, \
'mean over images': 0.4, 'weakest group': 0.3}]
    """
    keys = ["lever", "inference", "method"]
    by_group = per_image.pivot_table(index=keys, columns="group", values=metric, aggfunc="mean", sort=False)
    table = by_group[[g for g in grp.by_size(per_image["group"]) if g in by_group.columns]].copy()
    table["mean over groups"] = by_group.mean(axis=1)
    table["mean over images"] = per_image.groupby(keys, sort=False)[metric].mean()
    table["weakest group"] = by_group.min(axis=1)
    table.columns.name = None
    return table.reset_index()


def run_levers(
    samples: dict,
    groups: pd.Series,
    folds: Sequence[dict[str, list[str]]],
    budget: Any,
    cache_root: str | Path,
    runs: Sequence[tuple[str, str]],
    *,
    methods: Sequence[str] | None = None,
) -> pd.DataFrame:
    """:func:`lever_evaluation` of every ``(lever, inference)`` pair of ``runs``, one table."""
    frames = [
        lever_evaluation(samples, groups, folds, budget, cache_root, lever, inference=inference, methods=methods)
        for lever, inference in runs
    ]
    return pd.concat(frames, ignore_index=True)


def best_lever(table: pd.DataFrame, method: str = "borders") -> pd.Series:
    """The row of :func:`lever_table` with the highest mean over groups among the rows with the
    model's own separation ``method`` (the criterion that picks the settings): a training
    lever and an inference option together."""
    rows = table[table["method"] == method]
    if rows.empty:
        raise ValueError(f"no rows with method {method!r}")
    return rows.loc[rows["mean over groups"].idxmax()]


def before_after(per_image: pd.DataFrame, before: tuple[str, str, str], after: tuple[str, str, str]) -> pd.DataFrame:
    """Per held-out group: DSB and IoU of two (lever, inference, method) rows, and the change.

    Examples
    --------
    >>> rows = pd.DataFrame({"lever": ["a", "b"], "inference": "plain", "method": "borders", "group": "g",
    ...                      "image_id": "x", "dsb_score": [0.2, 0.5], "iou": [0.6, 0.7]})
    >>> table = before_after(rows, ("a", "plain", "borders"), ("b", "plain", "borders"))
    >>> table.loc["g", ["DSB before", "DSB after", "DSB change", "IoU change"]].round(2).tolist()
    [0.2, 0.5, 0.3, 0.1]
    >>> table.index.tolist()
    ['g', 'mean over groups']
    """
    keys = ["lever", "inference", "method"]
    columns: dict[str, Any] = {}
    for label, choice in (("before", before), ("after", after)):
        rows = per_image[(per_image[keys] == pd.Series(choice, index=keys)).all(axis=1)]
        if rows.empty:
            raise ValueError(f"no rows of {choice}")
        by_group = rows.groupby("group")
        columns["images"] = by_group["image_id"].size()
        columns[f"DSB {label}"] = by_group["dsb_score"].mean()
        columns[f"IoU {label}"] = by_group["iou"].mean()
    table = pd.DataFrame(columns).sort_values("images", ascending=False, kind="stable")
    table["DSB change"] = table["DSB after"] - table["DSB before"]
    table["IoU change"] = table["IoU after"] - table["IoU before"]
    order = ["images", "DSB before", "DSB after", "DSB change", "IoU before", "IoU after", "IoU change"]
    table = table[order]
    table.loc["mean over groups"] = [int(table["images"].sum()), *table[order[1:]].mean()]
    table["images"] = table["images"].astype(int)
    return table


def error_profile(rows: pd.DataFrame, samples: dict) -> pd.DataFrame:
    """Per held-out group, what kind of error remains in one setting's ``rows``: pixel precision
    and recall, nuclei found per annotated nucleus, and the median nucleus diameter the first
    pass estimated (``diameter`` column) against the annotated one.

    A recall near one with a low precision and a diameter estimate far above the annotated one
    says the network took larger objects (whole cells) for nuclei; many more nuclei found than
    annotated says it fragments or finds debris.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> labels = np.zeros((40, 40), np.uint16); labels[5:15, 5:15] = 1; labels[20:30, 20:30] = 2
    >>> rows = pd.DataFrame({"group": ["g"], "image_id": ["x"], "precision": [0.1], "recall": [1.0],
    ...                      "n_true": [2], "n_pred": [1], "diameter": [60.0]})
    >>> table = error_profile(rows, {"x": SimpleNamespace(labels=labels)})
    >>> table.loc["g"].round(2).tolist()
    [1.0, 0.1, 1.0, 0.5, 60.0, 11.28]
    """
    from ..scale import typical_diameter

    annotated = pd.Series({i: typical_diameter(samples[i].labels) for i in rows["image_id"].unique()})
    frame = rows.assign(annotated=annotated[rows["image_id"]].to_numpy())
    by_group = frame.groupby("group")
    table = pd.DataFrame(
        {
            "images": by_group["image_id"].size(),
            "pixel precision": by_group["precision"].mean(),
            "pixel recall": by_group["recall"].mean(),
            "found per annotated nucleus": by_group["n_pred"].sum() / by_group["n_true"].sum(),
            "estimated diameter (median)": by_group["diameter"].median() if "diameter" in frame else float("nan"),
            "annotated diameter (median)": by_group["annotated"].median(),
        }
    )
    return table.sort_values("images", ascending=False, kind="stable")


def tta_effect(plain: pd.DataFrame, augmented: pd.DataFrame) -> pd.DataFrame:
    """Per separation method, on the same images: DSB, IoU and seconds per image without and
    with test-time augmentation.

    Examples
    --------
    >>> plain = pd.DataFrame({"image_id": ["x", "y"], "method": "borders", "dsb_score": [0.4, 0.6],
    ...                       "iou": 0.7, "predict_s": 0.1})
    >>> tta = plain.assign(dsb_score=[0.5, 0.6], predict_s=0.8)
    >>> tta_effect(plain, tta).round(2).to_dict("records")
    [{'method': 'borders', 'images': 2, 'DSB plain': 0.5, 'DSB with TTA': 0.55, 'IoU plain': 0.7, \
'IoU with TTA': 0.7, 's per image plain': 0.1, 's per image with TTA': 0.8}]
    """
    keys = ["image_id", "method"]
    both = plain.merge(augmented, on=keys, suffixes=(" plain", " with TTA"))
    if both.empty:
        raise ValueError("no image scored both without and with test-time augmentation")
    table = both.groupby("method").agg(
        images=("image_id", "size"),
        **{
            f"{name} {side}": (f"{column} {side}", "mean")
            for name, column in (("DSB", "dsb_score"), ("IoU", "iou"), ("s per image", "predict_s"))
            for side in ("plain", "with TTA")
        },
    )
    return table.reset_index()


def glue_key(lever: str, inference: str) -> str:
    """The chapter's glue name of a (lever, inference) row's mean DSB score over groups.

    Examples
    --------
    >>> glue_key("scale+modality", "plain"), glue_key("baseline", "rescaled at inference, 24 px")
    ('mean_scale_modality_plain', 'mean_baseline_rescaled_at_inference_24_px')
    """
    import re

    return "mean_" + re.sub(r"[^0-9a-z]+", "_", f"{lever} {inference}".lower()).strip("_")


def setting_diameter(inference: str) -> float | None:
    """The reference diameter an inference option rescales a native-scale model's images to.

    Examples
    --------
    >>> setting_diameter("rescaled at inference, 24 px + tta8"), setting_diameter("plain")
    (24.0, None)
    """
    if inference not in INFERENCE_OPTIONS:
        raise ValueError(f"unknown inference option {inference!r}")
    return INFERENCE_OPTIONS[inference].get("model_diameter")


def matches_shipped(best: pd.Series, shipped_config: Any) -> bool:
    """Whether the shipped model runs the chosen setting: trained without a lever (the
    shipped configuration), rescaled at inference to the chosen reference diameter and
    given colour images as the chosen option prepares them."""
    colour_input = INFERENCE_OPTIONS[best["inference"]].get("model_colour_input", "rgb")
    return (
        best["lever"] == "baseline"
        and shipped_config.diameter == setting_diameter(best["inference"])
        and shipped_config.colour_input == colour_input
    )


def card_estimate(change: pd.DataFrame, best: pd.Series, n_folds: int) -> dict[str, Any]:
    """The grouped estimate of the shipped setting for its model card, from
    :func:`before_after`'s table (its "after" columns).

    Examples
    --------
    >>> change = pd.DataFrame({"images": [3, 3], "DSB after": [0.4, 0.5], "IoU after": [0.7, 0.8]},
    ...                       index=["g1", "mean over groups"])
    >>> best = pd.Series({"lever": "baseline", "inference": "rescaled at inference, 24 px"})
    >>> card_estimate(change, best, 3)["per_group"]
    {'g1': {'images': 3, 'dsb_score': 0.4, 'iou': 0.7}}
    """
    rows = {
        str(group): {
            "images": int(row["images"]),
            "dsb_score": round(float(row["DSB after"]), 4),
            "iou": round(float(row["IoU after"]), 4),
        }
        for group, row in change.iterrows()
    }
    return {
        "protocol": f"{n_folds} grouped folds: each imaging group scored by a same-budget network that saw none of it",
        "setting": {"training": str(best["lever"]), "inference": str(best["inference"])},
        "mean_over_groups": rows.pop("mean over groups"),
        "per_group": rows,
    }


def record_card_estimate(folder: str | Path, estimate: dict[str, Any]) -> Path:
    """Write ``estimate`` into the model card (``card.json``) of the model in ``folder``
    as ``grouped_estimate``; the rest of the card is kept."""
    import json

    path = Path(folder) / "card.json"
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no model card to record the grouped estimate in") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: the model card is not valid JSON ({error})") from None
    card["grouped_estimate"] = estimate
    path.write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
    return path


def unseen_facts(out: str | Path) -> dict[str, Any]:
    """The audit's summary of the unseen-conditions chapter, read from its ``levers-before-after.csv``:
    mean DSB over held-out groups before and after, the gain, the weakest group after and how
    many groups stay below 0.30."""
    path = Path(out) / "levers-before-after.csv"
    try:
        table = pd.read_csv(path, index_col=0)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: run the unseen-conditions chapter (07_unseen) first") from None
    groups_only = table.drop(index="mean over groups")
    return {
        "unseen_dsb_before": float(table.loc["mean over groups", "DSB before"]),
        "unseen_dsb_after": float(table.loc["mean over groups", "DSB after"]),
        "unseen_dsb_gain": float(table.loc["mean over groups", "DSB change"]),
        "unseen_weakest": str(groups_only["DSB after"].idxmin()),
        "unseen_weakest_dsb": float(groups_only["DSB after"].min()),
        "unseen_below_030": int((groups_only["DSB after"] < 0.30).sum()),
        "unseen_groups": int(len(groups_only)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nucleilib.study.levers``: train and score levers on the grouped folds."""
    import argparse
    import warnings

    from ..data import data_root, load_dataset
    from ..inference import METHODS

    parser = argparse.ArgumentParser(prog="python -m nucleilib.study.levers", description=main.__doc__)
    parser.add_argument("--artefacts", default="artefacts/cpu", help="the run's artefact folder (manifest, models)")
    parser.add_argument("--lever", nargs="+", default=list(TRAINING_LEVERS), choices=list(TRAINING_LEVERS))
    parser.add_argument("--inference", nargs="+", default=["plain"], choices=list(INFERENCE_OPTIONS))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), help="separations scored")
    args = parser.parse_args(argv)
    out = Path(args.artefacts)
    manifest = pd.read_csv(out / "manifest.csv")
    groups = grp.imaging_groups(manifest)
    folds = grp.grouped_folds(groups, args.folds or None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        samples = {s.image_id: s for s in load_dataset(data_root(), ids=list(groups.index))}
    (out / "levers").mkdir(exist_ok=True)
    for lever in args.lever:
        for inference in args.inference:
            per_image = lever_evaluation(
                samples,
                groups,
                folds,
                grp.comparison_budget(),
                out / "models",
                lever,
                inference=inference,
                methods=args.methods,
            )
            stem = f"{lever}-{inference}".replace(" ", "-").replace("+", "-")
            per_image.to_csv(out / "levers" / f"{stem}-per-image.csv", index=False)
            print(lever_table(per_image).round(3).to_string(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
