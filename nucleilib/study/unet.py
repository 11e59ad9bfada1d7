"""The U-Net chapter's computations: test summary, example panels, Gaussian ablation, shipping.

``notebooks/02_unet.py`` trains the U-Net, scores it on the test split with every
separation method (:func:`method_table`), summarises the winner's metrics
(:func:`summary_table`, :func:`summary_glue`, :func:`paper_comparison`,
:func:`per_modality`), shows example predictions (:func:`example_figure`), tests the
paper's Gaussian pre-filter (:func:`gaussian_ablation`) and ships the model
(:func:`shipping_card`, :func:`ship_model`).

>>> import pandas as pd
>>> chosen = pd.DataFrame({"image_id": list("abc"), "dsb_score": [0.5, 0.1, 0.9]})
>>> example_picks(chosen)
['b', 'a', 'c']
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import evaluation
from ..data import Sample
from ..models import ModelConfig

#: Metrics of the test summary, in its row order.
SUMMARY_METRICS = ("accuracy", "precision", "recall", "iou", "dice", "mean_iou", "dsb_score", "ap50", "f1_50")
#: Summary rows glued as ``test_<metric>`` (with ``_lo`` and ``_hi``).
GLUED_METRICS = SUMMARY_METRICS[:-1]
#: Summary rows glued as ``micro_<metric>``.
GLUED_MICRO = ("accuracy", "precision", "recall", "iou")
#: The seed paper's Table 1 row of its U-Net.
PAPER_UNET = {"accuracy": 0.975, "precision": 0.945, "recall": 0.951, "iou": 0.882}
#: Columns averaged per separation method.
METHOD_COLUMNS = ["dsb_score", "ap50", "f1_50", "iou", "dice"]


# --------------------------------------------------------------------------- training


def training_glue(info: Mapping[str, Any]) -> dict[str, Any]:
    """Glue values of the main training: minutes, epochs run, best epoch, crops per second."""
    return {
        "train_minutes": info["seconds"] / 60,
        "epochs_run": info["epochs_run"],
        "best_epoch": info["best_epoch"],
        "crops_per_s": info["train_crops_per_s"],
    }


def training_message(reused: bool, info: Mapping[str, Any]) -> str:
    """One line on the main training (reloaded or trained, epochs, minutes, speed, stop, precision)."""
    return (
        f"{'reloaded' if reused else 'trained'}: {info['epochs_run']} epochs in {info['seconds'] / 60:.1f} min "
        f"({info['train_crops_per_s']} crops/s), best epoch {info['best_epoch']}, "
        f"stopped by the time budget: {info['stopped_by_time']}, precision: {info['precision_policy']}"
    )


# --------------------------------------------------------------------------- test metrics


def method_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per-image means of the instance and pixel scores for each separation method.

    Examples
    --------
    >>> metrics = pd.DataFrame({"method": ["a", "a", "b"], "dsb_score": [0.2, 0.4, 0.5], "ap50": [1, 1, 1],
    ...                         "f1_50": [1, 1, 1], "iou": [0.5, 0.5, 0.5], "dice": [0.6, 0.6, 0.6]})
    >>> method_table(metrics)["dsb_score"].round(3).to_dict()
    {'a': 0.3, 'b': 0.5}
    """
    return metrics.groupby("method")[METHOD_COLUMNS].mean()


def best_method(table: pd.DataFrame) -> str:
    """The separation method of :func:`method_table` with the highest DSB score."""
    return str(table["dsb_score"].idxmax())


def summary_table(chosen: pd.DataFrame, micro: evaluation.PixelMetrics, *, seed: int) -> pd.DataFrame:
    """The test summary: each metric pooled over pixels, its per-image mean and bootstrap 95% interval.

    Parameters
    ----------
    chosen : DataFrame
        Per-image metrics of one separation method (the columns of
        :data:`SUMMARY_METRICS`).
    micro : PixelMetrics
        Pooled pixel metrics of the same images; instance metrics have none (NaN).
    seed : int
        Bootstrap seed.

    Returns
    -------
    DataFrame
        Indexed by ``metric``: ``micro (pixels pooled)``, ``per-image mean``,
        ``95% CI low``, ``95% CI high``.
    """
    rows = []
    for column in SUMMARY_METRICS:
        values = chosen[column].to_numpy()
        lo, hi = evaluation.bootstrap_ci(values, seed=seed)
        rows.append(
            {
                "metric": column,
                "micro (pixels pooled)": getattr(micro, column) if hasattr(micro, column) else np.nan,
                "per-image mean": values.mean(),
                "95% CI low": lo,
                "95% CI high": hi,
            }
        )
    return pd.DataFrame(rows).set_index("metric")


def summary_glue(summary: pd.DataFrame, chosen: pd.DataFrame) -> dict[str, float]:
    """Glue values of the test summary.

    ``test_<metric>`` (with ``_lo`` and ``_hi``) for :data:`GLUED_METRICS`,
    ``micro_<metric>`` for :data:`GLUED_MICRO`, ``count_abs_error`` (mean absolute
    nucleus-count error) and ``infer_ms`` (median prediction time per image).
    """
    values = {}
    for column in GLUED_METRICS:
        values[f"test_{column}"] = float(summary.loc[column, "per-image mean"])
        values[f"test_{column}_lo"] = float(summary.loc[column, "95% CI low"])
        values[f"test_{column}_hi"] = float(summary.loc[column, "95% CI high"])
    for column in GLUED_MICRO:
        values[f"micro_{column}"] = float(summary.loc[column, "micro (pixels pooled)"])
    values["count_abs_error"] = float(chosen["count_error"].abs().mean())
    values["infer_ms"] = 1000 * float(chosen["predict_s"].median())
    return values


def paper_comparison(summary: pd.DataFrame, paper: Mapping[str, float] = PAPER_UNET) -> pd.DataFrame:
    """The paper's U-Net row next to ours (pooled and per-image), with our DSB score below."""
    comparison = pd.DataFrame(
        {
            "seed paper": pd.Series(paper),
            "ours, micro": summary["micro (pixels pooled)"].reindex(list(paper)),
            "ours, per-image mean": summary["per-image mean"].reindex(list(paper)),
        }
    )
    comparison.loc["DSB score"] = [np.nan, np.nan, summary.loc["dsb_score", "per-image mean"]]
    return comparison


def per_modality(chosen: pd.DataFrame) -> pd.DataFrame:
    """Images, mean IoU, Dice, DSB score and signed count error per modality.

    Examples
    --------
    >>> chosen = pd.DataFrame({"image_id": list("abc"), "modality": ["f", "f", "b"], "iou": [0.2, 0.4, 0.9],
    ...                        "dice": [0.3, 0.5, 0.9], "dsb_score": [0.1, 0.3, 0.8], "count_error": [1, -3, 0]})
    >>> per_modality(chosen).loc["f"].round(3).tolist()
    [2.0, 0.3, 0.4, 0.2, -1.0]
    """
    return chosen.groupby("modality").agg(
        images=("image_id", "count"),
        iou=("iou", "mean"),
        dice=("dice", "mean"),
        dsb_score=("dsb_score", "mean"),
        count_error=("count_error", "mean"),
    )


# --------------------------------------------------------------------------- pictures


def example_picks(chosen: pd.DataFrame) -> list[str]:
    """Ids of the test images with the worst, the median and the best DSB score."""
    hard = chosen.sort_values("dsb_score", kind="stable")
    return [hard["image_id"].iloc[0], hard["image_id"].iloc[len(hard) // 2], hard["image_id"].iloc[-1]]


def error_map(truth: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """RGB float map of the errors: green where a nucleus pixel was missed, magenta where one was invented.

    Examples
    --------
    >>> error_map(np.array([[True, False]]), np.array([[0, 1]])).tolist()
    [[[0.0, 0.8, 0.0], [0.9, 0.0, 0.9]]]
    """
    truth = np.asarray(truth, bool)
    errors = np.zeros(truth.shape + (3,))
    errors[truth & (labels == 0)] = (0, 0.8, 0)
    errors[~truth & (labels > 0)] = (0.9, 0, 0.9)
    return errors


def example_figure(
    segmenter: Any,
    samples: Sequence[Sample],
    method: str,
    modality: Mapping[str, str],
    title: str,
    probs_by_id: Mapping[str, np.ndarray] | None = None,
) -> Any:
    """Five panels per sample: image, annotation, outlined prediction, errors, foreground probability.

    Parameters
    ----------
    segmenter : Segmenter
        The model (probability maps are predicted when ``probs_by_id`` lacks them).
    samples : sequence of Sample
    method : str
        Separation method of the predicted nuclei.
    modality : mapping
        Image id -> modality (the row's label).
    title : str
    probs_by_id : mapping, optional
        Probability maps already predicted.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from ..plotting import outline_overlay

    fig, axes = plt.subplots(len(samples), 5, figsize=(17, 3.4 * len(samples)), squeeze=False)
    for row, sample in enumerate(samples):
        probs = (probs_by_id or {}).get(sample.image_id)
        if probs is None:
            probs = segmenter.probabilities(sample.image)
        labels = segmenter.labels(probs, method)
        truth = sample.labels > 0
        panels = [
            (sample.image, "image"),
            (truth, f"truth: {sample.n_nuclei} nuclei"),
            (outline_overlay(sample.image, labels), f"prediction: {labels.max()} nuclei"),
            (error_map(truth, labels), "errors"),
            (probs[..., 0], "foreground probability"),
        ]
        for ax, (panel, name) in zip(axes[row], panels):
            ax.imshow(
                panel,
                cmap="magma" if name.startswith("foreground") else "gray",
                vmin=0,
                vmax=1 if panel.dtype != np.uint8 else 255,
            )
            ax.set_title(name, fontsize=9)
            ax.axis("off")
        axes[row, 0].set_ylabel(modality[sample.image_id])
    fig.suptitle(title)
    plt.tight_layout()
    return fig


# --------------------------------------------------------------------------- Gaussian ablation


def ablation_config(config: Any, sigma: float, *, steps: int, minutes: float) -> Any:
    """The main training configuration with fewer steps per epoch, a shorter time limit and pre-filter ``sigma``."""
    from ..training import with_model

    return with_model(dataclasses.replace(config, steps_per_epoch=steps, max_minutes=minutes), sigma=sigma)


def gaussian_ablation(
    config: Any,
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample],
    test_samples: Sequence[Sample],
    cache_root: Any,
    method: str,
    *,
    steps: int,
    minutes: float,
    sigmas: Sequence[float] = (0.0, 1.5),
    scores: Any = None,
) -> pd.DataFrame:
    """Short trainings with and without the Gaussian pre-filter, scored on the test images.

    Parameters
    ----------
    config : TrainConfig
        The main training's configuration (see :func:`ablation_config`).
    train_samples, val_samples, test_samples : sequence of Sample
    cache_root : path-like
        Folder of trained models (cached as ``ablation-sigma<sigma>``).
    method : str
        Separation method of the scores.
    steps, minutes : int, float
        Steps per epoch and time limit of each short training.
    sigmas : sequence of float
    scores : ScoreCache, optional
        Where the test scores are cached (:mod:`nucleilib.study.scores`); None scores anew.

    Returns
    -------
    DataFrame
        Indexed by ``sigma``: ``epochs``, ``test IoU``, ``test DSB score``.
    """
    from ..training import train
    from .scores import evaluate_cached

    rows = []
    for sigma in sigmas:
        short = ablation_config(config, sigma, steps=steps, minutes=minutes)
        trained = train(short, train_samples, val_samples, cache_root, name=f"ablation-sigma{sigma}")
        metrics, _ = evaluate_cached(
            scores,
            trained.model,
            short.model,
            test_samples,
            methods=[method],
            label=f"ablation-sigma{sigma}",
            count_pixels=False,
        )
        rows.append(
            {
                "sigma": sigma,
                "epochs": len(trained.history),
                "test IoU": metrics["iou"].mean(),
                "test DSB score": metrics["dsb_score"].mean(),
            }
        )
    return pd.DataFrame(rows).set_index("sigma")


# --------------------------------------------------------------------------- shipping


def shipping_card(
    *,
    split: str,
    split_ids: Mapping[str, Sequence[str]],
    profile: str,
    info: Mapping[str, Any],
    parameters: int,
    separation: str,
    summary: pd.DataFrame,
    training_config: Any,
    run: Mapping[str, str] | None = None,
    diameter: float | None = None,
    rescaled: pd.DataFrame | None = None,
    colour_input: str = "rgb",
) -> dict[str, Any]:
    """The model card of the shipped U-Net.

    Parameters
    ----------
    split : str
    split_ids : mapping
        The split's ``{"train": [...], "val": [...], "test": [...]}`` ids (counted).
    profile : str
    info : mapping
        The training facts (``epochs_run``, ``best_epoch``, ``seconds``).
    parameters : int
    separation : str
    summary : DataFrame
        :func:`summary_table` (its per-image means, to 4 decimals).
    training_config : TrainConfig
    run : mapping, optional
        :func:`nucleilib.study.runner.run_info` (for the commit and date); read when omitted.
    diameter : float, optional
        The reference nucleus diameter the shipped model rescales images to by default.
    rescaled : DataFrame, optional
        :func:`rescaling_effect` on the test images (its means go into the card).
    colour_input : str
        What the shipped model makes of stained images by default
        (:data:`nucleilib.preprocess.COLOUR_INPUTS`).
    """
    if run is None:
        from .runner import run_info

        run = run_info()
    return {
        "name": "unet-dsb2018",
        "data": "DSB2018 stage1_train, community-fixed (664 images), CC0",
        "split": split,
        "train_images": len(split_ids["train"]),
        "val_images": len(split_ids["val"]),
        "test_images": len(split_ids["test"]),
        "profile": profile,
        "epochs_run": info["epochs_run"],
        "best_epoch": info["best_epoch"],
        "training_minutes": round(info["seconds"] / 60, 1),
        "parameters": int(parameters),
        "separation": separation,
        "test_metrics_per_image_mean": {k: round(float(v), 4) for k, v in summary["per-image mean"].items()},
        "commit": run["git commit"],
        "date": run["date (UTC)"],
        "training_config": training_config.as_dict(),
        "inference": {
            "diameter": "auto" if diameter is not None else None,
            "reference_diameter": None if diameter is None else float(diameter),
            "colour_input": colour_input,
            "test_metrics_by_setting": None
            if rescaled is None
            else {column: {k: round(float(v), 4) for k, v in rescaled[column].items()} for column in rescaled},
        },
    }


def rescaling_effect(
    model: Any,
    model_config: ModelConfig,
    samples: Sequence[Sample],
    separation: str,
    diameter: float,
    own_scale: pd.DataFrame,
    *,
    colour_input: str = "rgb",
    scores: Any = None,
) -> pd.DataFrame:
    """The network on test images at their own scale and rescaled so nuclei are ``diameter`` px
    across, and with stained images given as ``colour_input`` too (when it is not ``"rgb"``).

    Parameters
    ----------
    model : tf.keras.Model
    model_config : ModelConfig
        The trained network's (native scale: its ``diameter`` is ignored).
    samples : sequence of Sample
    separation : str
    diameter : float
        The reference nucleus diameter (pixels) each image is rescaled to after a first pass
        estimates its own (``Segmenter(diameter="auto")``).
    own_scale : DataFrame
        :func:`nucleilib.segmenter.evaluate_model` rows of the same images at their own scale,
        with ``separation`` as ``method``.
    colour_input : str
        A :data:`nucleilib.preprocess.COLOUR_INPUTS` setting scored as a third column.
    scores : ScoreCache, optional
        Where the scores are cached (:mod:`nucleilib.study.scores`); None scores anew.

    Returns
    -------
    DataFrame
        Rows DSB, AP@0.5, IoU, seconds per image and the DSB score of the stained-tissue
        images alone; one column per setting.
    """
    from ..preprocess import classify_modality
    from .scores import evaluate_cached

    stained = {s.image_id for s in samples if classify_modality(s.image) == "stained tissue"}
    names = {"dsb_score": "DSB", "ap50": "AP@0.5", "iou": "IoU", "predict_s": "s per image"}

    def means(rows: pd.DataFrame) -> pd.Series:
        values = rows[list(names)].mean().rename(names)
        values["DSB, stained tissue"] = rows.loc[rows["image_id"].isin(stained), "dsb_score"].mean()
        return values

    settings = {f"rescaled to {diameter:g} px": "rgb"}
    if colour_input != "rgb":
        settings[f"rescaled to {diameter:g} px, {colour_input} input"] = colour_input
    columns = {}
    for label, setting in settings.items():
        config = dataclasses.replace(model_config, diameter=float(diameter), colour_input=setting)
        rows, _ = evaluate_cached(
            scores, model, config, samples, methods=[separation], count_pixels=False, diameter="auto"
        )
        columns[label] = means(rows)
    plain = own_scale[own_scale["method"] == separation].set_index("image_id").loc[[s.image_id for s in samples]]
    return pd.DataFrame({"own scale": means(plain.reset_index()), **columns})


# What a card says of the run that shipped the model rather than of the model itself.
CARD_RUN_FACTS = ("commit", "date")
CARD_TIMING = "s per image"


def card_without_run_facts(card: Mapping[str, Any]) -> dict[str, Any]:
    """A model card without the commit, date and timings of the run that wrote it.

    Examples
    --------
    >>> card = {"name": "x", "commit": "abc", "date": "2026-12-07 10:00",
    ...         "inference": {"test_metrics_by_setting": {"own scale": {"DSB": 0.5, "s per image": 0.21}}}}
    >>> card_without_run_facts(card)
    {'name': 'x', 'inference': {'test_metrics_by_setting': {'own scale': {'DSB': 0.5}}}}
    """
    plain = json.loads(json.dumps(card, default=str))
    for key in CARD_RUN_FACTS:
        plain.pop(key, None)
    settings = (plain.get("inference") or {}).get("test_metrics_by_setting") or {}
    for values in settings.values():
        values.pop(CARD_TIMING, None)
    return plain


def already_shipped(model: Any, config: ModelConfig, card: Mapping[str, Any], folder: Path) -> bool:
    """Whether ``folder`` holds this model already: the same float16 weights and configuration,
    and a card that differs at most in the commit, date and timings of the run that wrote it
    (or in entries other chapters add, such as the grouped estimate)."""
    weights_path, config_path, card_path = folder / "weights.npz", folder / "config.json", folder / "card.json"
    if not (weights_path.is_file() and config_path.is_file() and card_path.is_file()):
        return False
    if config_path.read_text() != config.to_json() + "\n":
        return False
    try:
        stored_card = json.loads(card_path.read_text())
        with np.load(weights_path) as stored:
            stored_weights = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    except (OSError, ValueError, KeyError):
        return False
    weights = [w.astype(np.float16) for w in model.get_weights()]
    if len(stored_weights) != len(weights) or not all(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(stored_weights, weights)
    ):
        return False
    new, old = card_without_run_facts(card), card_without_run_facts(stored_card)
    return all(key in old and old[key] == value for key, value in new.items())


def ship_model(
    model: Any,
    model_config: ModelConfig,
    separation: str,
    card: Mapping[str, Any],
    folder: Path,
    check_samples: Sequence[Sample],
    *,
    diameter: float | None = None,
    colour_input: str = "rgb",
    root: Path | None = None,
) -> str:
    """Save the model in float16 with its card, reload it and compare its DSB score on a few test images.

    Parameters
    ----------
    model : tf.keras.Model
    model_config : ModelConfig
        Saved with ``separation`` as its method and ``diameter`` as its reference diameter.
    separation : str
    card : mapping
        See :func:`shipping_card`.
    folder : Path
        Where the model goes (``nucleilib/pretrained/unet-dsb2018``).
    check_samples : sequence of Sample
        Test images scored by the float32 model and again after the float16 reload, with
        the shipped settings.
    diameter : float, optional
        The nucleus diameter (pixels) images are rescaled to by default (``Segmenter``'s
        ``diameter="auto"``); None ships a model that works at each image's own scale. The
        weights are the same either way.
    colour_input : str
        What the shipped model makes of stained images by default
        (:data:`nucleilib.preprocess.COLOUR_INPUTS`); the weights are the same.
    root : Path, optional
        Show ``folder`` relative to this folder (the project's).

    Returns
    -------
    str
        Where it went, its size and the two DSB scores; or, when ``folder`` holds this
        model already (:func:`already_shipped`), that it was left as it is, so that
        re-executing the chapter without retraining changes no file.
    """
    from ..models import load_model_folder, save_model
    from ..segmenter import evaluate_model

    final_config = dataclasses.replace(
        model_config,
        separation=separation,
        diameter=None if diameter is None else float(diameter),
        colour_input=colour_input,
    )
    shown = folder.relative_to(root) if root is not None else folder
    if already_shipped(model, final_config, card, folder):
        return (
            f"{shown} already holds this model (the same float16 weights and configuration; its card differs at "
            "most in the commit, date and timings of the run that shipped it): left as it is"
        )
    before, _ = evaluate_model(model, final_config, check_samples, methods=[separation])
    save_model(model, final_config, folder, card=dict(card), float16=True)
    size = sum(p.stat().st_size for p in folder.iterdir())
    reloaded, _ = load_model_folder(folder)
    check, _ = evaluate_model(reloaded, final_config, check_samples, methods=[separation])
    return (
        f"shipped to {shown} ({size / 1e6:.1f} MB); float16 reload, DSB on {len(check_samples)} test images: "
        f"{check['dsb_score'].mean():.3f} vs {before['dsb_score'].mean():.3f} in float32"
    )
