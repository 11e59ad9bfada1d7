"""The claims audit as data: the seed paper's claims, one row each, and the
measurements of a run they are set against.

:data:`CLAIMS` holds one :class:`Claim` per quantitative claim of the paper:
where it stands (section, link), what the paper says, the verdict rule of
:mod:`nucleilib.study.audit` that judges it (``verdict_rule``, a key of
:data:`~nucleilib.study.audit.RULES`) with its arguments, and the templates of
the "measured" and "rule" texts of the audit table. An argument written
``"@name"`` is the measurement ``name`` of the run; ``"@tolerance"`` is the
chapter's metric tolerance. :func:`measure` reads the artefact folder the
chapters wrote and returns the measurements by name (:data:`ARTEFACTS` lists the
files and the chapter that writes each); :func:`audit_table` evaluates every
claim on them.

>>> from nucleilib.study import claims                                  # doctest: +SKIP
>>> measured = claims.measure("artefacts/cpu", seed=42)                 # doctest: +SKIP
>>> table = claims.audit_table(measured, tolerance=0.02)                # doctest: +SKIP
>>> table.to_csv("artefacts/cpu/claims-audit.csv", index=False)         # doctest: +SKIP

The chapter ``08_audit`` also takes the numbers of its discussion
(:func:`discussion_facts`, :func:`discussion_texts`) and of its run-facts
tables (:func:`run_log_table`, :func:`training_table`) from here.
"""

from __future__ import annotations

import html
import inspect
import json
import math
import os
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import NucleiError
from . import audit

#: The artefacts the audit reads, each with the chapter that writes it.
ARTEFACTS: Mapping[str, str] = {
    "eda-claims.json": "01_eda",
    "eda-images.csv": "01_eda",
    "models/unet-original-*/train-config.json": "02_unet",
    "models/unet-original-*/history.csv": "02_unet",
    "unet-test-summary.csv": "02_unet",
    "comparison-table1.csv": "03_comparison",
    "comparison-seeds.csv": "03_comparison",
    "comparison-table2.csv": "03_comparison",
    "comparison-training.csv": "03_comparison",
    "explain-gradcam.csv": "04_gradcam",
    "explain-lrp.csv": "05_lrp",
    "explain-lrp-confidence.json": "05_lrp",
    "speed-timing.csv": "06_speed",
    "speed-accuracy-summary.csv": "06_speed",
    "speed-shipping.json": "06_speed",
}

#: "improve significantly within the first 10 epochs": the epoch the early-progress claim names.
EARLY_EPOCHS = 10
#: Table 1's models by the key of their measurements (``t1_<key>_<metric>``);
#: the shipped U-Net (``t1_shipped_...``) is the row whose name starts with
#: :data:`SHIPPED_PREFIX`.
TABLE1_MODELS: Mapping[str, str] = {
    "unet": "U-Net",
    "resunet": "ResUNet",
    "deeplabv3plus": "DeepLabV3+",
    "classical": "Classical",
}
SHIPPED_PREFIX = "U-Net, chapter 2"
#: Metrics whose range over training seeds the audit reads (keys of :data:`TABLE1_METRICS`).
SEED_RANGE_METRICS = ("accuracy", "precision", "recall", "iou", "dsb")
TABLE1_METRICS: Mapping[str, str] = {
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
    "iou": "IoU",
    "dsb": "DSB score",
    "parameters": "parameters",
}
#: Table 2's splits by the key of their measurements (``t2_<key>_iou``, ``_ci``, ``_ci_text``).
TABLE2_SPLITS: Mapping[str, str] = {"original": "original", "80_10_10": "80-10-10", "70_20_10": "70-20-10"}


class ArtefactError(NucleiError, ValueError):
    """An artefact of the run is malformed (a column, row or key is missing); the message names it."""


class MissingArtefactError(NucleiError, FileNotFoundError):
    """An artefact the audit reads does not exist; the message names it and the chapter that writes it."""


# --------------------------------------------------------------------------- the claims


@dataclass(frozen=True)
class Claim:
    """One claim of the paper and how the audit judges it.

    ``args`` are the keyword arguments of the rule ``audit.RULES[verdict_rule]``;
    a string ``"@name"`` (also inside a list) stands for the measurement
    ``name``. ``measured`` and ``rule`` are :meth:`str.format` templates over
    the measurements (and ``tolerance``).

    Examples
    --------
    >>> claim = Claim("x", "EDA", "nuclei per image", "71", "point",
    ...               {"claimed": 71, "measured": "@count_mean", "tolerance": "@tolerance"},
    ...               "{count_mean:.1f} per image", "within {tolerance}", "01_eda.html")
    >>> claim.measurements
    ['count_mean', 'tolerance']
    >>> row = claim.evaluate({"count_mean": 43.66, "tolerance": 5})
    >>> row.measured, row.verdict, row.rule
    ('43.7 per image', 'not reproduced', 'within 5')
    >>> claim.evaluate({"count_mean": 70, "tolerance": 5}).verdict
    'reproduced'
    >>> Claim("x", "EDA", "c", "1", "plausible", {}, "", "", "01_eda.html")
    Traceback (most recent call last):
    ...
    ValueError: claim 'x': unknown verdict rule 'plausible'; use one of point, range, mean_sd, order, early_progress, majority, spread, undefined, not_testable
    """

    id: str
    section: str
    claim: str
    paper: str
    verdict_rule: str
    args: Mapping[str, Any] = field(default_factory=dict)
    measured: str = ""
    rule: str = ""
    link: str = ""

    def __post_init__(self) -> None:
        if not self.id or not self.section or not self.claim:
            raise ValueError(f"claim {self.id!r}: id, section and claim must not be empty")
        if self.verdict_rule not in audit.RULES:
            raise ValueError(
                f"claim {self.id!r}: unknown verdict rule {self.verdict_rule!r}; use one of {', '.join(audit.RULES)}"
            )
        try:
            inspect.signature(audit.RULES[self.verdict_rule]).bind(**self.args)
        except TypeError as error:
            raise ValueError(
                f"claim {self.id!r}: arguments {sorted(self.args)} do not fit rule {self.verdict_rule!r}: {error}"
            ) from None
        for template in (self.measured, self.rule):
            try:
                list(string.Formatter().parse(template))
            except ValueError as error:
                raise ValueError(f"claim {self.id!r}: malformed template {template!r}: {error}") from None

    @property
    def measurements(self) -> list[str]:
        """The names of the measurements the claim uses (arguments and templates)."""
        names = _references(list(self.args.values()))
        for template in (self.measured, self.rule):
            names += [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f]
        return list(dict.fromkeys(names))

    def evaluate(self, measured: Mapping[str, Any]) -> audit.AuditRow:
        """The audit row of this claim on the measurements ``measured``."""
        values = _Lookup(measured, self.id)
        arguments = {key: _resolve(value, values) for key, value in self.args.items()}
        verdict = audit.apply_rule(self.verdict_rule, **arguments)
        return audit.AuditRow(
            self.section,
            self.claim,
            self.paper,
            self.measured.format_map(values),
            verdict,
            self.rule.format_map(values),
            self.link,
        )


class _Lookup(dict):
    """The measurements, with an error naming the claim and the measurement it lacks."""

    def __init__(self, values: Mapping[str, Any], claim_id: str) -> None:
        super().__init__(values)
        self.claim_id = claim_id

    def __missing__(self, name: str) -> Any:
        raise ArtefactError(f"claim {self.claim_id!r}: no measurement {name!r} (see claims.measure)")


def _references(values: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for value in values:
        if isinstance(value, str) and value.startswith("@"):
            names.append(value[1:])
        elif isinstance(value, (list, tuple)):
            names += _references(value)
    return names


def _resolve(value: Any, measured: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("@"):
        return measured[value[1:]]
    if isinstance(value, (list, tuple)):
        return [_resolve(v, measured) for v in value]
    return value


EDA_SIZES = "01_eda.html#the-manifest-sizes-modalities-density"
EDA_SHAPES = "01_eda.html#nucleus-area-and-circularity"
EDA_CONTRAST = "01_eda.html#contrast-and-intensity"
TRAINING = "02_unet.html#training"
EVALUATION = "02_unet.html#evaluation-on-the-test-images"
TABLE1 = "03_comparison.html#table-1-the-networks-on-the-original-test-split"
TABLE2 = "03_comparison.html#table-2-the-u-net-on-three-splits-and-on-three-seeds"
LRP = "05_lrp.html#the-paper-s-numbers-lrp-readings"
WITHIN = "within {tolerance}"
SEED_WITHIN = "within {tolerance} of our range over seeds"
INSIDE = ">= 90% inside"
NO_RTX = "no RTX 3060 here; "


def _point(claimed: float, measurement: str, tolerance: Any = "@tolerance", **extra: Any) -> dict[str, Any]:
    return {"claimed": claimed, "measured": f"@{measurement}", "tolerance": tolerance, **extra}


#: The paper's quantitative claims, in the order of the audit table.
CLAIMS: tuple[Claim, ...] = (
    Claim(
        "data-images",
        "Data",
        "images in the data set",
        "740 (670 train, 10 val, 60 test)",
        "point",
        _point(740, "n_images", 0),
        "{n_images:.0f} (stage1_train, community-fixed)",
        "exact count",
        EDA_SIZES,
    ),
    Claim(
        "eda-sizes",
        "EDA",
        "image sizes 256x256 to 1024x1024",
        "256-1024 px",
        "range",
        {"share_inside": "@sizes_share_within_256_1024"},
        "{sizes_share_within_256_1024:.1%} of images within",
        INSIDE,
        EDA_SIZES,
    ),
    Claim(
        "eda-nuclei",
        "EDA",
        "nuclei per image",
        "71 +/- 9",
        "mean_sd",
        {"claimed_mean": 71, "claimed_sd": 9, "measured": "@nuclei_counts"},
        "{count_mean:.1f} +/- {count_sd:.1f}",
        "mean and SD within 25%",
        "01_eda.html#nuclei-per-image",
    ),
    Claim(
        "eda-area",
        "EDA",
        "nucleus area",
        "8-45 px",
        "range",
        {"share_inside": "@area_share_in_paper"},
        "5th-95th pct {area_p5:.0f}-{area_p95:.0f}; {area_share_in_paper:.1%} inside",
        INSIDE,
        EDA_SHAPES,
    ),
    Claim(
        "eda-circularity",
        "EDA",
        "nucleus circularity",
        "0.6-0.9",
        "range",
        {"share_inside": "@circularity_share_in_paper"},
        "5th-95th pct {circularity_p5:.2f}-{circularity_p95:.2f}; {circularity_share_in_paper:.1%} inside",
        INSIDE,
        EDA_SHAPES,
    ),
    Claim(
        "eda-contrast",
        "EDA",
        "normalised contrast",
        "0.4-0.9",
        "range",
        {"share_inside": "@contrast_share_in_paper"},
        "5th-95th pct {contrast_p5:.2f}-{contrast_p95:.2f}; {contrast_share_in_paper:.1%} inside",
        INSIDE,
        EDA_CONTRAST,
    ),
    Claim(
        "eda-intensity",
        "EDA",
        "mean intensity",
        "0.2-0.8",
        "range",
        {"share_inside": "@intensity_share_in_paper"},
        "5th-95th pct {intensity_p5:.2f}-{intensity_p95:.2f}; {intensity_share_in_paper:.1%} inside",
        INSIDE,
        EDA_CONTRAST,
    ),
    Claim(
        "eda-touching",
        "EDA",
        "images with overlapping (touching) nuclei",
        "about 27%",
        "point",
        _point(0.27, "touching_10_share", 0.05),
        "{touching_any_share:.1%} any, {touching_10_share:.1%} >= 10% of nuclei",
        "within 5 points (>= 10% definition)",
        "01_eda.html#touching-nuclei",
    ),
    Claim(
        "model-parameters",
        "Model",
        "U-Net parameters",
        "about 1.94 M",
        "point",
        _point(1.94e6, "plain_parameters", 0.005e6),
        "{plain_parameters:,} (plain), {t1_shipped_parameters:,.0f} (ours: BN, shortcuts, 2 outputs)",
        "within 0.005 M",
        "02_unet.html#the-network",
    ),
    Claim(
        "training-accuracy",
        "Training",
        "training accuracy",
        "0.9710",
        "point",
        _point(0.9710, "best_accuracy"),
        "{best_accuracy:.4f} (augmented crops, kept epoch)",
        WITHIN,
        TRAINING,
    ),
    Claim(
        "training-iou",
        "Training",
        "training IoU",
        "0.8829",
        "point",
        _point(0.8829, "best_iou"),
        "{best_iou:.4f} (augmented crops, kept epoch)",
        WITHIN,
        TRAINING,
    ),
    Claim(
        "validation-accuracy",
        "Training",
        "validation accuracy",
        "0.9705",
        "point",
        _point(0.9705, "best_val_accuracy"),
        "{best_val_accuracy:.4f} ({epochs} epochs, kept epoch {best_epoch})",
        WITHIN,
        TRAINING,
    ),
    Claim(
        "validation-iou",
        "Training",
        "validation IoU",
        "0.8826",
        "point",
        _point(0.8826, "best_val_iou"),
        "{best_val_iou:.4f} ({epochs} epochs, kept epoch {best_epoch})",
        WITHIN,
        TRAINING,
    ),
    Claim(
        "training-loss",
        "Training",
        "training / validation loss",
        "0.0753 / 0.0717",
        "undefined",
        {},
        "{best_loss:.4f} / {best_val_loss:.4f} (BCE + Dice on two outputs)",
        "the paper's loss weighting is not given, so loss values are not comparable",
        TRAINING,
    ),
    Claim(
        "loss-order",
        "Training",
        "validation loss ends below training loss",
        "0.0717 < 0.0753",
        "order",
        {"claimed": [0.0753, 0.0717], "measured": ["@best_loss", "@best_val_loss"]},
        "{best_val_loss:.4f} {val_loss_order} {best_loss:.4f} (kept epoch)",
        "same order",
        TRAINING,
    ),
    Claim(
        "early-progress",
        "Training",
        "loss and accuracy improve significantly within the first 10 epochs",
        "first 10 epochs",
        "early_progress",
        {"shares": ["@early_val_loss", "@early_val_accuracy"]},
        "by epoch {early_epoch}: {early_val_loss:.0%} of the validation loss's and {early_val_accuracy:.0%} of the "
        "validation accuracy's change from epoch 1 to the kept epoch {best_epoch} (our epochs: {steps_per_epoch} "
        "steps of {batch_size} crops)",
        ">= 50% of each curve's change made by epoch 10",
        TRAINING,
    ),
    Claim(
        "table1-unet-accuracy",
        "Table 1",
        "U-Net accuracy",
        "0.975",
        "point",
        _point(0.975, "t1_shipped_accuracy"),
        "{t1_shipped_accuracy:.3f} ({shipped_name}, pixels pooled)",
        WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-unet-precision",
        "Table 1",
        "U-Net precision",
        "0.945",
        "point",
        _point(0.945, "t1_shipped_precision"),
        "{t1_shipped_precision:.3f} ({shipped_name}, pixels pooled)",
        WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-unet-recall",
        "Table 1",
        "U-Net recall",
        "0.951",
        "point",
        _point(0.951, "t1_shipped_recall"),
        "{t1_shipped_recall:.3f} ({shipped_name}, pixels pooled)",
        WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-unet-iou",
        "Table 1",
        "U-Net IoU",
        "0.882",
        "point",
        _point(0.882, "t1_shipped_iou"),
        "{t1_shipped_iou:.3f} ({shipped_name}, pixels pooled)",
        WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-deeplab-accuracy",
        "Table 1",
        "DeepLabV3+ accuracy",
        "0.912",
        "point",
        _point(0.912, "t1_deeplabv3plus_accuracy", interval="@t1_deeplabv3plus_accuracy_range"),
        "{t1_deeplabv3plus_accuracy:.3f} (DeepLabV3+, pixels pooled; mean of {t1_deeplabv3plus_seeds} seeds, range {t1_deeplabv3plus_accuracy_range_text})",
        SEED_WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-deeplab-precision",
        "Table 1",
        "DeepLabV3+ precision",
        "0.887",
        "point",
        _point(0.887, "t1_deeplabv3plus_precision", interval="@t1_deeplabv3plus_precision_range"),
        "{t1_deeplabv3plus_precision:.3f} (DeepLabV3+, pixels pooled; mean of {t1_deeplabv3plus_seeds} seeds, range {t1_deeplabv3plus_precision_range_text})",
        SEED_WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-deeplab-recall",
        "Table 1",
        "DeepLabV3+ recall",
        "0.891",
        "point",
        _point(0.891, "t1_deeplabv3plus_recall", interval="@t1_deeplabv3plus_recall_range"),
        "{t1_deeplabv3plus_recall:.3f} (DeepLabV3+, pixels pooled; mean of {t1_deeplabv3plus_seeds} seeds, range {t1_deeplabv3plus_recall_range_text})",
        SEED_WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-deeplab-iou",
        "Table 1",
        "DeepLabV3+ IoU",
        "0.805",
        "point",
        _point(0.805, "t1_deeplabv3plus_iou", interval="@t1_deeplabv3plus_iou_range"),
        "{t1_deeplabv3plus_iou:.3f} (DeepLabV3+, pixels pooled; mean of {t1_deeplabv3plus_seeds} seeds, range {t1_deeplabv3plus_iou_range_text})",
        SEED_WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-resunet-accuracy",
        "Table 1",
        "DeepResNet accuracy",
        "0.946",
        "point",
        _point(0.946, "t1_resunet_accuracy", interval="@t1_resunet_accuracy_range"),
        "{t1_resunet_accuracy:.3f} (ResUNet, pixels pooled; mean of {t1_resunet_seeds} seeds, range {t1_resunet_accuracy_range_text})",
        SEED_WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-resunet-precision",
        "Table 1",
        "DeepResNet precision",
        "0.886",
        "point",
        _point(0.886, "t1_resunet_precision", interval="@t1_resunet_precision_range"),
        "{t1_resunet_precision:.3f} (ResUNet, pixels pooled; mean of {t1_resunet_seeds} seeds, range {t1_resunet_precision_range_text})",
        SEED_WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-resunet-recall",
        "Table 1",
        "DeepResNet recall",
        "0.817",
        "point",
        _point(0.817, "t1_resunet_recall", interval="@t1_resunet_recall_range"),
        "{t1_resunet_recall:.3f} (ResUNet, pixels pooled; mean of {t1_resunet_seeds} seeds, range {t1_resunet_recall_range_text})",
        SEED_WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-resunet-iou",
        "Table 1",
        "DeepResNet IoU",
        "0.853",
        "point",
        _point(0.853, "t1_resunet_iou", interval="@t1_resunet_iou_range"),
        "{t1_resunet_iou:.3f} (ResUNet, pixels pooled; mean of {t1_resunet_seeds} seeds, range {t1_resunet_iou_range_text})",
        SEED_WITHIN,
        TABLE1,
    ),
    Claim(
        "table1-methods",
        "Table 1",
        "methods compared",
        '"three widely recognized SOTA methods", two named',
        "undefined",
        {},
        "the two named networks (DeepLabV3+, ResUNet) and a classical baseline",
        "the paper names two of its three methods",
        TABLE1,
    ),
    Claim(
        "table2-original",
        "Table 2",
        "U-Net IoU, original split",
        "0.88",
        "point",
        _point(0.88, "t2_original_iou", 0.0, interval="@t2_original_ci"),
        "{t2_original_iou:.3f} (95% CI {t2_original_ci_text}, per image)",
        "inside our 95% CI",
        TABLE2,
    ),
    Claim(
        "table2-80-10-10",
        "Table 2",
        "U-Net IoU, 80-10-10 split",
        "0.85",
        "point",
        _point(0.85, "t2_80_10_10_iou", 0.0, interval="@t2_80_10_10_ci"),
        "{t2_80_10_10_iou:.3f} (95% CI {t2_80_10_10_ci_text}, per image)",
        "inside our 95% CI",
        TABLE2,
    ),
    Claim(
        "table2-70-20-10",
        "Table 2",
        "U-Net IoU, 70-20-10 split",
        "0.83",
        "point",
        _point(0.83, "t2_70_20_10_iou", 0.0, interval="@t2_70_20_10_ci"),
        "{t2_70_20_10_iou:.3f} (95% CI {t2_70_20_10_ci_text}, per image)",
        "inside our 95% CI",
        TABLE2,
    ),
    Claim(
        "table2-split-spread",
        "Table 2",
        "IoU insensitive to the split (0.83-0.88)",
        "range 0.05 over splits",
        "spread",
        {"spread": "@split_range", "reference": "@seed_range", "floor": 0.05},
        "range {split_range:.3f} over splits, {seed_range:.3f} over {n_seeds} seeds",
        "split range no wider than the seed range (or 0.05)",
        TABLE2,
    ),
    Claim(
        "summary-iou",
        "Summary",
        'headline IoU (abstract; "on the validation set" in the conclusion)',
        "0.88",
        "point",
        _point(0.88, "t1_shipped_iou"),
        "test: {t1_shipped_iou:.3f} pooled, {unet_iou_per_image:.3f} per image; validation: {best_val_iou:.3f}",
        WITHIN,
        EVALUATION,
    ),
    Claim(
        "summary-dsb",
        "Summary",
        "official DSB score (not in the paper; the Keras starter scored 0.277)",
        "-",
        "undefined",
        {},
        "{unet_dsb_per_image:.3f} per image, on our test split of stage1_train",
        "the paper reports no instance metric",
        EVALUATION,
    ),
    Claim(
        "lrp-relevance",
        "Explanations",
        "LRP mean relevance across nuclear regions",
        "0.45",
        "undefined",
        {},
        "{lrp_mean_inside_min:.3f} to {lrp_mean_inside_max:.3f} (mean scaled relevance in nuclei, by rule)",
        "no definition, rule or image set given",
        LRP,
    ),
    Claim(
        "lrp-regions",
        "Explanations",
        "positively contributing regions",
        "31,988",
        "undefined",
        {},
        "{lrp_regions_min:,.0f} to {lrp_regions_max:,.0f} regions ({lrp_pixels_min:,.0f} to {lrp_pixels_max:,.0f} "
        "pixels) over {lrp_windows} windows, by rule",
        "a count that scales with image number and size; no definition given",
        LRP,
    ),
    Claim(
        "gradcam-boundary",
        "Explanations",
        "Grad-CAM attention high on nuclear boundaries, low on background",
        "qualitative (its Fig. 6)",
        "majority",
        {"holds": "@cam_holds_by_layer"},
        "a band along the nucleus outlines gets {cam_boundary_min:.1f}-{cam_boundary_max:.1f}x its area share of "
        "positive Grad-CAM, the background {cam_background_min:.2f}-{cam_background_max:.2f}x; both hold in "
        "{cam_holds} of {cam_layers} layers (the nuclei as a whole get {cam_nucleus_min:.1f}-{cam_nucleus_max:.1f}x: "
        "the band beats them in {cam_band_beats} layers)",
        "boundary band enriched (> 1x) and background depleted (< 1x) in most layers",
        "04_gradcam.html#how-much-of-the-map-falls-on-nuclei",
    ),
    Claim(
        "lrp-confidence",
        "Explanations",
        "confidence score (with the LRP overlays)",
        "0.902",
        "undefined",
        {},
        "{confidence_over_predicted_nuclei:.3f} / {confidence_over_annotated_nuclei:.3f} (mean foreground "
        "probability over predicted / annotated nuclei, {confidence_windows} windows)",
        "no definition given",
        LRP,
    ),
    Claim(
        "speed-inference",
        "Speed",
        "inference time per image",
        "99.37 ms (RTX 3060)",
        "not_testable",
        {},
        "{speed_min_ms:.1f} ms ({speed_fastest}) to {speed_max_ms:.1f} ms ({speed_slowest}) per "
        "{speed_size}x{speed_size} image on this run's CPU",
        NO_RTX + "CPU figures given instead",
        "06_speed.html",
    ),
    Claim(
        "speed-training",
        "Speed",
        "training time",
        "about 2.5 h (RTX 3060)",
        "not_testable",
        {},
        "{shipped_training_minutes:.1f} min for the shipped model on a {shipped_profile} run "
        "({shipped_epochs_run} epochs)",
        NO_RTX + "our budget is a choice",
        TRAINING,
    ),
)


def check_claims(claims: Sequence[Claim] = CLAIMS) -> None:
    """Refuse a claim list with repeated ids (each :class:`Claim` checks its own rule and arguments).

    Examples
    --------
    >>> check_claims()
    >>> check_claims([CLAIMS[0], CLAIMS[0]])
    Traceback (most recent call last):
    ...
    ValueError: repeated claim id(s): 'data-images'
    """
    ids = [c.id for c in claims]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"repeated claim id(s): {', '.join(map(repr, repeated))}")


def claims_table(claims: Sequence[Claim] = CLAIMS) -> pd.DataFrame:
    """The claims as a table: one row each, the rule arguments as JSON.

    Examples
    --------
    >>> claims_table().loc["eda-touching", ["paper", "verdict_rule", "args"]].tolist()
    ['about 27%', 'point', '{"claimed": 0.27, "measured": "@touching_10_share", "tolerance": 0.05}']
    """
    rows = [
        {
            "id": c.id,
            "section": c.section,
            "claim": c.claim,
            "paper": c.paper,
            "verdict_rule": c.verdict_rule,
            "args": json.dumps(dict(c.args)),
            "measured": c.measured,
            "rule": c.rule,
            "link": c.link,
        }
        for c in claims
    ]
    return pd.DataFrame(rows).set_index("id")


# --------------------------------------------------------------------------- reading the artefacts


def artefact(out: str | os.PathLike[str], name: str) -> Path:
    """The path of artefact ``name`` of the run folder ``out``; an error naming it (and the
    chapter that writes it) when it does not exist.

    Examples
    --------
    >>> artefact("/nowhere", "speed-timing.csv")
    Traceback (most recent call last):
    ...
    nucleilib.study.claims.MissingArtefactError: /nowhere/speed-timing.csv: missing artefact speed-timing.csv (written by chapter 06_speed); execute that chapter first
    """
    path = Path(out) / name
    if not path.is_file():
        pattern = name if name in ARTEFACTS else "models/unet-original-*/" + Path(name).name
        writer = ARTEFACTS.get(pattern)
        by = f" (written by chapter {writer}); execute that chapter first" if writer else ""
        raise MissingArtefactError(f"{path}: missing artefact {name}{by}")
    return path


def read_csv(out: str | os.PathLike[str], name: str, *, columns: Sequence[str] = (), **kwargs: Any) -> pd.DataFrame:
    """Read artefact ``name`` (a CSV file), checking that it has ``columns``."""
    path = artefact(out, name)
    table = pd.read_csv(path, **kwargs)
    missing = [c for c in columns if c not in table.columns and c != table.index.name]
    if missing:
        raise ArtefactError(f"{path}: lacks column(s) {', '.join(map(repr, missing))}")
    return table


def read_json(out: str | os.PathLike[str], name: str, *, keys: Sequence[str] = ()) -> dict[str, Any]:
    """Read artefact ``name`` (a JSON object), checking that it has ``keys``."""
    path = artefact(out, name)
    values = json.loads(path.read_text())
    missing = [k for k in keys if k not in values]
    if missing:
        raise ArtefactError(f"{path}: lacks key(s) {', '.join(map(repr, missing))}")
    return dict(values)


def _row(table: pd.DataFrame, label: Any, path: Path) -> pd.Series:
    if label not in table.index:
        raise ArtefactError(f"{path}: no row {label!r} (has {', '.join(map(str, table.index))})")
    return table.loc[label]


def main_run(out: str | os.PathLike[str]) -> str:
    """The folder (``models/unet-original-...``) of chapter 2's training, the latest if several."""
    runs = sorted((Path(out) / "models").glob("unet-original-*/train-config.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise MissingArtefactError(
            f"{Path(out) / 'models'}: missing artefact models/unet-original-*/train-config.json "
            "(written by chapter 02_unet); execute that chapter first"
        )
    return f"models/{runs[-1].parent.name}"


def parse_interval(text: str) -> tuple[float, float]:
    """An interval written ``"low-high"`` (as in Table 2's ``IoU 95% CI``).

    Examples
    --------
    >>> parse_interval("0.791-0.864")
    (0.791, 0.864)
    """
    parts = str(text).split("-")
    if len(parts) != 2:
        raise ArtefactError(f"interval {text!r} is not written low-high")
    low, high = (float(v) for v in parts)
    return low, high


# --------------------------------------------------------------------------- the measurements


def measure_eda(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Chapter 1's readings (``eda-claims.json`` as it is) and the nuclei count of each image."""
    values = read_json(out, "eda-claims.json")
    values["nuclei_counts"] = read_csv(out, "eda-images.csv", columns=["nuclei"])["nuclei"].to_numpy()
    return values


def measure_training(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The kept epoch (``best_<metric>``) and the early progress of chapter 2's training."""
    folder = main_run(out)
    info = read_json(out, f"{folder}/train-config.json", keys=["best_epoch", "config", "seconds", "epochs_run"])
    metrics = ("loss", "accuracy", "iou", "val_loss", "val_accuracy", "val_iou")
    history = read_csv(out, f"{folder}/history.csv", columns=metrics)
    best_epoch = info["best_epoch"]
    if not 1 <= best_epoch <= len(history):
        raise ArtefactError(
            f"{Path(out) / folder}: kept epoch {best_epoch} is not in history.csv ({len(history)} epochs)"
        )
    best = history.iloc[best_epoch - 1]
    values: dict[str, Any] = {f"best_{m}": best[m] for m in metrics}
    early_epoch = min(EARLY_EPOCHS, best_epoch)
    for metric in ("val_loss", "val_accuracy"):
        values[f"early_{metric}"] = audit.progress_share(history[metric], by_epoch=early_epoch, final_epoch=best_epoch)
    return values | {
        "main_run": Path(folder).name,
        "epochs": len(history),
        "best_epoch": best_epoch,
        "early_epoch": early_epoch,
        "steps_per_epoch": info["config"]["steps_per_epoch"],
        "batch_size": info["config"]["batch_size"],
        "train_seconds": info["seconds"],
        "train_epochs_run": info["epochs_run"],
        "val_loss_order": "<" if best["val_loss"] < best["loss"] else ">=",
    }


def measure_table1(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Table 1 of chapter 3 as ``t1_<model>_<metric>`` (:data:`TABLE1_MODELS`, :data:`TABLE1_METRICS`)."""
    name = "comparison-table1.csv"
    table = read_csv(out, name, columns=["model", *TABLE1_METRICS.values()]).set_index("model")
    shipped = [model for model in table.index if str(model).startswith(SHIPPED_PREFIX)]
    if not shipped:
        raise ArtefactError(f"{Path(out) / name}: no row for the shipped U-Net ({SHIPPED_PREFIX!r}...)")
    values: dict[str, Any] = {"shipped_name": shipped[0]}
    for key, model in {**TABLE1_MODELS, "shipped": shipped[0]}.items():
        row = _row(table, model, Path(out) / name)
        values |= {f"t1_{key}_{metric_key}": row[metric] for metric_key, metric in TABLE1_METRICS.items()}
    return values | measure_seed_ranges(out)


def measure_seed_ranges(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Each trained network's range over its training seeds (chapter 3's ``comparison-seeds.csv``):
    ``t1_<model>_<metric>_range`` as ``(low, high)``, its ``_range_text`` and ``t1_<model>_seeds``."""
    name = "comparison-seeds.csv"
    metrics = {key: TABLE1_METRICS[key] for key in SEED_RANGE_METRICS}
    per_seed = read_csv(out, name, columns=["model", "seed", *metrics.values()])
    values: dict[str, Any] = {}
    for key, model in TABLE1_MODELS.items():
        if model == "Classical":
            continue
        rows = per_seed[per_seed["model"] == model]
        if rows.empty:
            raise ArtefactError(
                f"{Path(out) / name}: no rows for {model!r} (has {', '.join(per_seed['model'].unique())})"
            )
        values[f"t1_{key}_seeds"] = len(rows)
        for metric_key, metric in metrics.items():
            low, high = float(rows[metric].min()), float(rows[metric].max())
            values[f"t1_{key}_{metric_key}_range"] = (low, high)
            values[f"t1_{key}_{metric_key}_range_text"] = f"{low:.3f}-{high:.3f}"
    return values


def measure_table2(out: str | os.PathLike[str], *, seed: int) -> dict[str, Any]:
    """Table 2 of chapter 3: the IoU and its interval on each split (seed ``seed``) and the
    ranges over the splits and over the seeds of the original split."""
    name = "comparison-table2.csv"
    table = read_csv(out, name, columns=["split", "seed", "IoU", "IoU 95% CI"])
    split_rows, seed_rows = table[table["seed"] == seed], table[table["split"] == "original"]
    values: dict[str, Any] = {
        "split_range": float(split_rows["IoU"].max() - split_rows["IoU"].min()),
        "seed_range": float(seed_rows["IoU"].max() - seed_rows["IoU"].min()),
        "n_seeds": len(seed_rows),
    }
    for key, split in TABLE2_SPLITS.items():
        rows = split_rows[split_rows["split"] == split]
        if len(rows) != 1:
            raise ArtefactError(f"{Path(out) / name}: needs one row for split {split!r}, seed {seed}; has {len(rows)}")
        row = rows.iloc[0]
        values |= {
            f"t2_{key}_iou": row["IoU"],
            f"t2_{key}_ci_text": row["IoU 95% CI"],
            f"t2_{key}_ci": parse_interval(row["IoU 95% CI"]),
        }
    return values


def measure_test_summary(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Chapter 2's per-image means of the test IoU and DSB score."""
    name = "unet-test-summary.csv"
    summary = read_csv(out, name, columns=["metric", "per-image mean"]).set_index("metric")
    return {
        "unet_iou_per_image": _row(summary, "iou", Path(out) / name)["per-image mean"],
        "unet_dsb_per_image": _row(summary, "dsb_score", Path(out) / name)["per-image mean"],
    }


def measure_lrp(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Chapter 5's LRP readings against the annotation, by rule, and its confidence readings."""
    from . import explain

    columns = ["image_id", "rule", "reference", "mean_inside", "positive_regions", "positive_pixels"]
    lrp = read_csv(out, "explain-lrp.csv", columns=columns)
    lrp = lrp[lrp["reference"] == "truth"]
    by_rule = lrp.groupby("rule").agg(
        mean_inside=("mean_inside", "mean"), regions=("positive_regions", "sum"), pixels=("positive_pixels", "sum")
    )
    values = {f"lrp_{c}_{end}": getattr(by_rule[c], end)() for c in by_rule.columns for end in ("min", "max")}
    values |= {
        "lrp_windows": lrp["image_id"].nunique(),
        "lrp_enrichment_max": explain.summarise_measures(lrp, "rule")["enrichment"].max(),
    }
    confidence = read_json(
        out, "explain-lrp-confidence.json", keys=["over_predicted_nuclei", "over_annotated_nuclei", "windows"]
    )
    return values | {f"confidence_{key}": value for key, value in confidence.items()}


def measure_gradcam(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Chapter 4's Grad-CAM shares by layer: on a band along the nucleus outlines, on the
    background and on the nuclei, and the layers where the band is enriched and the background depleted."""
    from . import explain

    columns = ["layer", "target", "reference", "boundary_share", "boundary_area_share"]
    gradcam = read_csv(out, "explain-gradcam.csv", columns=columns)
    layers = explain.summarise_measures(
        gradcam[(gradcam["reference"] == "truth") & (gradcam["target"] == "image")], "layer"
    )
    boundary, nucleus = layers["boundary_enrichment"], layers["enrichment"]
    background = (1 - layers["relevance_share"]) / (1 - layers["area_share"])
    holds = (boundary > 1) & (background < 1)
    values = {
        f"cam_{key}_{end}": getattr(series, end)()
        for key, series in (("boundary", boundary), ("background", background), ("nucleus", nucleus))
        for end in ("min", "max")
    }
    return values | {
        "cam_holds": int(holds.sum()),
        "cam_layers": len(holds),
        "cam_holds_by_layer": holds.tolist(),
        "cam_band_beats": int((boundary > nucleus).sum()),
    }


def measure_speed(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Chapter 6's time per image, one at a time, at the smallest size timed, by backend."""
    timing = read_csv(out, "speed-timing.csv", columns=["label", "size", "batch", "ms_per_image"])
    size = timing["size"].min()
    times = timing[(timing["size"] == size) & (timing["batch"] == 1)].set_index("label")["ms_per_image"]
    if times.empty:
        raise ArtefactError(f"{Path(out) / 'speed-timing.csv'}: no timing of batch 1 at size {size}")
    return {
        "speed_size": int(size),
        "speed_min_ms": times.min(),
        "speed_fastest": times.idxmin(),
        "speed_max_ms": times.max(),
        "speed_slowest": times.idxmax(),
        "speed_predict_ms": times.get("Keras model.predict", float("nan")),
    }


def plain_unet_parameters() -> int:
    """Parameters of the paper's plain U-Net (no batch norm, no shortcuts, one output); builds it in Keras."""
    from nucleilib import models

    plain = models.ModelConfig(residual=False, batch_norm=False, outputs=("foreground",))
    return int(models.build_unet(plain).count_params())


def measure(
    out: str | os.PathLike[str],
    *,
    seed: int = 42,
    plain_parameters: int | None = None,
    shipped_card: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """All measurements the claims are set against, by name, from the run folder ``out``.

    Parameters
    ----------
    out : path-like
        The run's artefact folder (``artefacts/<profile>``), written by chapters 1 to 6.
    seed : int
        The seed of the run (picks the rows of Table 2 on each split).
    plain_parameters : int, optional
        Parameters of the plain U-Net; by default :func:`plain_unet_parameters` (needs TensorFlow).
    shipped_card : mapping, optional
        The shipped model's card (``training_minutes``, ``profile``, ``epochs_run``); by default
        that of ``unet-dsb2018``.

    Raises
    ------
    MissingArtefactError
        When a file is missing; the message names it and the chapter that writes it.
    ArtefactError
        When a file lacks a column, row or key the claims need.
    """
    if shipped_card is None:
        from nucleilib import models

        shipped_card = models.model_card("unet-dsb2018")
    values = measure_eda(out) | measure_training(out) | measure_table1(out) | measure_table2(out, seed=seed)
    values |= measure_test_summary(out) | measure_lrp(out) | measure_gradcam(out) | measure_speed(out)
    values["plain_parameters"] = plain_unet_parameters() if plain_parameters is None else int(plain_parameters)
    return values | {f"shipped_{key}": shipped_card[key] for key in ("training_minutes", "profile", "epochs_run")}


def audit_table(
    measured: Mapping[str, Any], *, tolerance: float = 0.02, claims: Sequence[Claim] = CLAIMS
) -> pd.DataFrame:
    """The audit: one row per claim (section, claim, paper, measured, verdict, rule, link).

    ``tolerance`` is the absolute tolerance of the single-metric claims (``"@tolerance"``).
    """
    check_claims(claims)
    context = {**measured, "tolerance": tolerance}
    return pd.DataFrame([claim.evaluate(context).as_dict() for claim in claims])


def build_audit(
    out: str | os.PathLike[str], *, seed: int = 42, tolerance: float = 0.02, **measure_options: Any
) -> pd.DataFrame:
    """:func:`audit_table` on :func:`measure` of the run folder ``out``."""
    return audit_table(measure(out, seed=seed, **measure_options), tolerance=tolerance)


# --------------------------------------------------------------------------- the chapter's other numbers


def verdict_counts(table: pd.DataFrame) -> dict[str, int]:
    """``n_claims`` and ``n_<verdict>`` (spaces as underscores) of an audit table.

    Examples
    --------
    >>> verdict_counts(pd.DataFrame({"verdict": ["reproduced", "reproduced", "not testable here"]}))
    {'n_reproduced': 2, 'n_not_reproduced': 0, 'n_undefined_in_the_paper': 0, 'n_not_testable_here': 1, 'n_claims': 3}
    """
    counts = table["verdict"].value_counts()
    values = {f"n_{v.replace(' ', '_')}": int(counts.get(v, 0)) for v in audit.VERDICTS}
    return values | {"n_claims": len(table)}


def audit_html(table: pd.DataFrame) -> str:
    """The audit table as HTML, its links as a ``where`` column naming the chapter."""
    where = [f'<a href="{html.escape(link)}">{link.split("#")[0].removesuffix(".html")}</a>' for link in table["link"]]
    return table.assign(where=where).drop(columns="link").to_html(index=False, escape=False)


def discussion_facts(out: str | os.PathLike[str], measured: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of the chapter's discussion, from the measurements and chapter 6's accuracy table."""
    accuracy = read_csv(out, "speed-accuracy-summary.csv", index_col=0, columns=["IoU change"])
    int8 = accuracy.loc["TFLite int8", "IoU change"] if "TFLite int8" in accuracy.index else math.nan
    m = measured
    facts = {
        "unet_dsb": m["t1_unet_dsb"],
        "resunet_dsb": m["t1_resunet_dsb"],
        "deeplab_dsb": m["t1_deeplabv3plus_dsb"],
        "classical_dsb": m["t1_classical_dsb"],
        "shipped_dsb": m["t1_shipped_dsb"],
        "shipped_iou": m["t1_shipped_iou"],
        "classical_iou": m["t1_classical_iou"],
        "split_range": m["split_range"],
        "seed_range": m["seed_range"],
        "touching_pct": 100 * m["touching_any_share"],
        "fastest_ms": m["speed_min_ms"],
        "predict_ms": m["speed_predict_ms"],
        "int8_iou_change": int8,
        "gradcam_enrichment_max": m["cam_nucleus_max"],
        "lrp_enrichment_max": m["lrp_enrichment_max"],
    }
    return {key: float(value) for key, value in facts.items()}


def discussion_texts(out: str | os.PathLike[str], measured: Mapping[str, Any], table: pd.DataFrame) -> dict[str, Any]:
    """The other values the discussion quotes: which networks their trainings (seeds and
    retrainings on other machines) separate, Table 1's
    U-Net verdicts, the classical gaps, the fastest backend, chapter 6's shipping decisions and
    the shipped model's training time."""
    m = measured
    shipping = read_json(out, "speed-shipping.json", keys=["decisions"])
    unet = table[(table["section"] == "Table 1") & table["claim"].str.startswith("U-Net ")]
    gaps = {
        f"classical_gap_{key}": float(m[f"t1_{model}_dsb"] - m["t1_classical_dsb"])
        for key, model in (("unet", "unet"), ("deeplab", "deeplabv3plus"), ("resunet", "resunet"))
    }
    from .reproduce import read_drift, with_retrainings
    from .spread import seed_separation, separation_text

    per_seed = read_csv(out, "comparison-seeds.csv", columns=["model", "seed", "DSB score"])
    return {
        "network_seeds": int(per_seed.groupby("model").size().min()),
        "network_separation": separation_text(seed_separation(with_retrainings(per_seed, read_drift(out)))),
        "unet_t1_reproduced": int((unet["verdict"] == audit.REPRODUCED).sum()),
        "unet_t1_total": len(unet),
        "split_vs_seed": "wider than" if m["split_range"] > m["seed_range"] else "no wider than",
        **gaps,
        "fastest_backend": m["speed_fastest"],
        "timing_size": int(m["speed_size"]),
        "shipping_decisions": "; ".join(shipping["decisions"]),
        "train_minutes": float(m["shipped_training_minutes"]),
    }


LOG_COLUMNS = ("notebook", "wall minutes", "finished (UTC)", "commit", "CPU", "cores", "GPU")


def run_log_table(out: str | os.PathLike[str], *, leave_out: str = "08_audit") -> pd.DataFrame:
    """Each chapter's last execution from the runner's ``run-log.json`` (empty without one),
    leaving out the chapter ``leave_out`` (this one, logged only when it ends)."""
    path = Path(out) / "run-log.json"
    log = json.loads(path.read_text()) if path.is_file() else {}
    rows = [
        (
            name,
            entry["seconds"] / 60,
            entry.get("finished_utc", ""),
            entry.get("git_commit", ""),
            entry.get("machine", {}).get("cpu", ""),
            entry.get("machine", {}).get("cores", ""),
            entry.get("machine", {}).get("gpu", ""),
        )
        for name, entry in sorted(log.items())
        if name != leave_out
    ]
    return pd.DataFrame(rows, columns=list(LOG_COLUMNS))


def training_table(out: str | os.PathLike[str]) -> pd.DataFrame:
    """The trainings behind the book (model, minutes, epochs): chapter 2's and chapter 3's."""
    folder = main_run(out)
    info = read_json(out, f"{folder}/train-config.json", keys=["seconds", "epochs_run"])
    main = pd.DataFrame(
        [
            {
                "model": f"U-Net, chapter 2 ({Path(folder).name})",
                "minutes": info["seconds"] / 60,
                "epochs": info["epochs_run"],
            }
        ]
    )
    comparison = read_csv(out, "comparison-training.csv", columns=["model", "split", "seed", "minutes", "epochs"])
    comparison = comparison.assign(
        model=comparison["model"] + ", " + comparison["split"] + ", seed " + comparison["seed"].astype(str)
    )
    return pd.concat([main, comparison[["model", "minutes", "epochs"]]], ignore_index=True)
