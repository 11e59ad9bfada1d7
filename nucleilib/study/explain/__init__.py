"""Explaining the U-Net: Grad-CAM (tf-explain), LRP (innvestigate) and measures of the maps.

One module per concern; every public name is also re-exported here, so
``from nucleilib.study import explain; explain.grad_cam(...)`` works:

* :mod:`~nucleilib.study.explain.windows`: choosing test images per modality
  and cutting them to square windows (:func:`pick_test_samples`,
  :func:`explanation_windows`, :class:`Windows`, :func:`centre_crop`,
  :func:`largest_nucleus_masks`).
* :mod:`~nucleilib.study.explain.gradcam`, **eager mode**: Grad-CAM of the
  segmentation network at any layer (:func:`score_model`, :func:`grad_cam`,
  :func:`grad_cam_layers`, :func:`nucleus_grad_cams`, :func:`grad_cam_cascade`).
* :mod:`~nucleilib.study.explain.lrp`, **graph mode**: layer-wise relevance
  propagation of a rebuilt network (:func:`lrp_model`, :func:`lrp_maps`,
  :func:`lrp_rule_maps`, :func:`lrp_randomisation_check`, :func:`lrp_cascade`).
  The caller disables eager execution, in a fresh process, before any model is
  built; importing the module (or this package) switches nothing, but the two
  halves cannot share a process.
* :mod:`~nucleilib.study.explain.measures`, pure NumPy and pandas: relevance
  share, pointing game, correlation, rank similarity, boundary band, one row
  per image (:func:`explanation_metrics`), stacked (:func:`measure_maps`) and
  summarised (:func:`summarise_measures`), similarity tables and the readings
  of the seed paper's undefined numbers.
* :mod:`~nucleilib.study.explain.randomise`: the model-randomisation sanity
  check of Adebayo et al. 2018 (:func:`randomise_weights`,
  :func:`layer_blocks`, :func:`cascade_steps`), in either mode.
* :mod:`~nucleilib.study.explain.figures`: :func:`explanation_grid` and
  :func:`placeholder_figure`.
* :mod:`~nucleilib.study.explain.findings`: the numbers the chapters quote,
  by glue name.

TensorFlow, tf-explain, innvestigate, matplotlib and scikit-image are imported
inside the functions that need them, so importing the package stays cheap.

>>> from nucleilib.study import explain
>>> explain.centre_crop is explain.windows.centre_crop
True
"""

from __future__ import annotations

from ._checks import TARGETS
from .figures import GRID_STYLES, explanation_grid, placeholder_figure
from .findings import (
    cascade_findings,
    glue_findings,
    gradcam_findings,
    lrp_findings,
    nucleus_findings,
    pair_findings,
    paper_findings,
    randomisation_findings,
    sanity_findings,
    timing_findings,
)
from .gradcam import (
    DEFAULT_CAM_LAYERS,
    default_cam_layers,
    grad_cam,
    grad_cam_cascade,
    grad_cam_layers,
    nucleus_grad_cams,
    score_model,
)
from .lrp import (
    LRP_RULES,
    RuleMaps,
    constant_inputs_kept_as_tensors,
    fresh_lrp_model,
    lrp_cascade,
    lrp_maps,
    lrp_model,
    lrp_randomisation_check,
    lrp_rule_maps,
)
from .measures import (
    PAPER_READINGS,
    SUMMARY_COLUMNS,
    RelevanceShare,
    boundary_band,
    confidence_readings,
    explanation_metrics,
    map_correlation,
    map_similarity,
    mean_similarity,
    measure_maps,
    no_positive_share,
    pairwise_similarity,
    paper_readings,
    pointing_game,
    randomised_similarity,
    relevance_share,
    similarity_table,
    summarise_measures,
)
from .randomise import RANDOMISATIONS, cascade_steps, layer_blocks, randomise_weights
from .windows import (
    Windows,
    centre_crop,
    explanation_windows,
    largest_nucleus_masks,
    pick_per_modality,
    pick_test_samples,
)

__all__ = [
    "DEFAULT_CAM_LAYERS",
    "GRID_STYLES",
    "LRP_RULES",
    "PAPER_READINGS",
    "RANDOMISATIONS",
    "SUMMARY_COLUMNS",
    "TARGETS",
    # windows
    "Windows",
    "centre_crop",
    "explanation_windows",
    "largest_nucleus_masks",
    "pick_per_modality",
    "pick_test_samples",
    # Grad-CAM (eager mode)
    "default_cam_layers",
    "grad_cam",
    "grad_cam_cascade",
    "grad_cam_layers",
    "nucleus_grad_cams",
    "score_model",
    # LRP (graph mode)
    "RuleMaps",
    "constant_inputs_kept_as_tensors",
    "fresh_lrp_model",
    "lrp_cascade",
    "lrp_maps",
    "lrp_model",
    "lrp_randomisation_check",
    "lrp_rule_maps",
    # measures
    "RelevanceShare",
    "boundary_band",
    "confidence_readings",
    "explanation_metrics",
    "map_correlation",
    "map_similarity",
    "mean_similarity",
    "measure_maps",
    "no_positive_share",
    "pairwise_similarity",
    "paper_readings",
    "pointing_game",
    "randomised_similarity",
    "relevance_share",
    "similarity_table",
    "summarise_measures",
    # randomisation
    "cascade_steps",
    "layer_blocks",
    "randomise_weights",
    # figures
    "explanation_grid",
    "placeholder_figure",
    # findings
    "cascade_findings",
    "glue_findings",
    "gradcam_findings",
    "lrp_findings",
    "nucleus_findings",
    "pair_findings",
    "paper_findings",
    "randomisation_findings",
    "sanity_findings",
    "timing_findings",
]
