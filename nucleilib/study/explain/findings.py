"""The numbers the explanation chapters quote, by the names the chapters glue them under.

Each function reads a table the chapters show (a summary of
:func:`~nucleilib.study.explain.measures.summarise_measures`, a timing or
similarity table) and returns a dict from glue name to value (``float``,
``int`` or ``str``), in the order the chapters glue them; :func:`glue_findings`
glues them all (``explain.glue_findings(explain.gradcam_findings(by_layer, on_truth))``).

A check that was not run gives ``"not run"`` and NaN under the same names,
so the chapter's text still renders.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NAN = float("nan")


def _summary(table: Any, what: str, columns: tuple[str, ...]) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{what} must be a DataFrame, got {type(table).__name__}")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {', '.join(map(repr, missing))}")
    if table.empty:
        raise ValueError(f"{what}: no rows")
    return table


def _best(summary: pd.DataFrame, label: str) -> tuple[Any, dict[str, Any]]:
    best = summary["enrichment"].idxmax()
    return best, {
        f"best_{label}": best,
        "best_share": float(summary.loc[best, "relevance_share"]),
        "best_enrichment": float(summary.loc[best, "enrichment"]),
        "best_pointing": float(summary.loc[best, "pointing_game"]),
        "best_corr": float(summary.loc[best, "correlation"]),
    }


def gradcam_findings(by_layer: pd.DataFrame, on_truth: pd.DataFrame) -> dict[str, Any]:
    """The Grad-CAM chapter's numbers on whole images, against the annotated nuclei.

    Parameters
    ----------
    by_layer : DataFrame
        ``summarise_measures(on_truth, "layer")`` (with the boundary columns).
    on_truth : DataFrame
        The measures against the annotated nuclei, one row per image and layer.

    Returns
    -------
    dict
        Per layer ``share_<layer>``, ``enrich_<layer>``, ``pointing_<layer>``,
        ``corr_<layer>`` and ``boundary_enrich_<layer>``; then ``area_share``
        (mean over the rows), ``best_layer`` (highest enrichment) with its
        ``best_share``, ``best_enrichment``, ``best_pointing``, ``best_corr``
        and ``best_boundary_enrichment``, ``worst_layer`` (lowest enrichment)
        with ``worst_enrichment``, ``boundary_area_share`` (mean over the rows)
        and the layers of highest and lowest boundary enrichment
        (``boundary_enrich_max_layer``, ``boundary_enrich_max``,
        ``boundary_enrich_min_layer``, ``boundary_enrich_min``).

    Examples
    --------
    >>> import pandas as pd
    >>> by_layer = pd.DataFrame({"relevance_share": [0.2, 0.6], "enrichment": [1.0, 3.0],
    ...                          "pointing_game": [0.5, 1.0], "correlation": [0.1, 0.4],
    ...                          "boundary_enrichment": [2.0, 1.5]}, index=pd.Index(["enc", "dec"], name="layer"))
    >>> found = gradcam_findings(by_layer, pd.DataFrame({"area_share": [0.2, 0.2], "boundary_area_share": [0.1, 0.3]}))
    >>> found["best_layer"], found["worst_layer"], found["enrich_dec"], found["boundary_enrich_max_layer"]
    ('dec', 'enc', 3.0, 'enc')
    >>> round(found["boundary_area_share"], 3), found["best_boundary_enrichment"]
    (0.2, 1.5)
    """
    _summary(
        by_layer, "by_layer", ("relevance_share", "enrichment", "pointing_game", "correlation", "boundary_enrichment")
    )
    _summary(on_truth, "on_truth", ("area_share", "boundary_area_share"))
    found: dict[str, Any] = {}
    for layer, row in by_layer.iterrows():
        found[f"share_{layer}"] = float(row["relevance_share"])
        found[f"enrich_{layer}"] = float(row["enrichment"])
        found[f"pointing_{layer}"] = float(row["pointing_game"])
        found[f"corr_{layer}"] = float(row["correlation"])
        found[f"boundary_enrich_{layer}"] = float(row["boundary_enrichment"])
    best, about_best = _best(by_layer, "layer")
    worst = by_layer["enrichment"].idxmin()
    found["area_share"] = float(on_truth["area_share"].mean())
    found |= about_best
    found |= {
        "worst_layer": worst,
        "worst_enrichment": float(by_layer.loc[worst, "enrichment"]),
        "boundary_area_share": float(on_truth["boundary_area_share"].mean()),
        "best_boundary_enrichment": float(by_layer.loc[best, "boundary_enrichment"]),
        "boundary_enrich_max_layer": by_layer["boundary_enrichment"].idxmax(),
        "boundary_enrich_max": float(by_layer["boundary_enrichment"].max()),
        "boundary_enrich_min_layer": by_layer["boundary_enrichment"].idxmin(),
        "boundary_enrich_min": float(by_layer["boundary_enrichment"].min()),
    }
    return found


def nucleus_findings(by_layer: pd.DataFrame | None) -> dict[str, Any]:
    """The layer whose single-nucleus Grad-CAM wins the pointing game most often.

    Parameters
    ----------
    by_layer : DataFrame or None
        ``summarise_measures`` of the single-nucleus measures by layer; None
        when single nuclei were not explained.

    Returns
    -------
    dict
        ``nucleus_best_layer``, ``nucleus_best_pointing`` and
        ``nucleus_best_enrichment`` (``"not run"``, NaN, NaN for None).

    Examples
    --------
    >>> import pandas as pd
    >>> by_layer = pd.DataFrame({"pointing_game": [0.5, 1.0], "enrichment": [2.0, 4.0]}, index=["enc", "dec"])
    >>> nucleus_findings(by_layer)
    {'nucleus_best_layer': 'dec', 'nucleus_best_pointing': 1.0, 'nucleus_best_enrichment': 4.0}
    >>> nucleus_findings(None)["nucleus_best_layer"]
    'not run'
    """
    if by_layer is None:
        return {"nucleus_best_layer": "not run", "nucleus_best_pointing": NAN, "nucleus_best_enrichment": NAN}
    _summary(by_layer, "by_layer", ("pointing_game", "enrichment"))
    best = by_layer["pointing_game"].idxmax()
    return {
        "nucleus_best_layer": best,
        "nucleus_best_pointing": float(by_layer.loc[best, "pointing_game"]),
        "nucleus_best_enrichment": float(by_layer.loc[best, "enrichment"]),
    }


def randomisation_findings(similarity: pd.Series) -> dict[str, Any]:
    """The mean similarity of trained and randomised maps per layer: its range and each layer's.

    Parameters
    ----------
    similarity : Series
        Mean Spearman similarity by layer (e.g. the column means of
        :func:`~nucleilib.study.explain.measures.similarity_table`).

    Returns
    -------
    dict
        ``rand_sim_max``, ``rand_sim_max_layer``, ``rand_sim_min``, then
        ``rand_sim_<layer>`` for each layer.

    Examples
    --------
    >>> import pandas as pd
    >>> randomisation_findings(pd.Series({"enc": 0.5, "dec": 0.1}))
    {'rand_sim_max': 0.5, 'rand_sim_max_layer': 'enc', 'rand_sim_min': 0.1, 'rand_sim_enc': 0.5, 'rand_sim_dec': 0.1}
    """
    if not isinstance(similarity, pd.Series) or similarity.empty:
        raise ValueError("similarity: expected a non-empty Series of mean similarities by layer")
    found = {
        "rand_sim_max": float(similarity.max()),
        "rand_sim_max_layer": similarity.idxmax(),
        "rand_sim_min": float(similarity.min()),
    }
    return found | {f"rand_sim_{layer}": float(value) for layer, value in similarity.items()}


def cascade_findings(
    table: pd.DataFrame | None, explained: str, *, key: str = "cascade_layer", column: str = "similarity"
) -> dict[str, Any]:
    """The first and last step of a cascading randomisation.

    Parameters
    ----------
    table : DataFrame or None
        One row per step, in order (e.g. :func:`~nucleilib.study.explain.gradcam.grad_cam_cascade`);
        None or empty when the cascade was not run.
    explained : str
        What the cascade explained (a layer or rule), glued under ``key``.
    key, column : str
        The glue name of ``explained`` and the table's similarity column.

    Returns
    -------
    dict
        ``key``, ``cascade_first`` and ``cascade_last`` (``"not run"``, NaN,
        NaN without a table).

    Examples
    --------
    >>> import pandas as pd
    >>> cascade_findings(pd.DataFrame({"similarity": [0.8, 0.3, 0.1]}), "dec1_relu2")
    {'cascade_layer': 'dec1_relu2', 'cascade_first': 0.8, 'cascade_last': 0.1}
    >>> cascade_findings(None, "lrp.epsilon", key="cascade_rule", column="similarity |R|")["cascade_rule"]
    'not run'
    """
    if table is None or not len(table):
        return {key: "not run", "cascade_first": NAN, "cascade_last": NAN}
    _summary(table, "table", (column,))
    return {
        key: explained,
        "cascade_first": float(table[column].iloc[0]),
        "cascade_last": float(table[column].iloc[-1]),
    }


def paper_findings(readings: pd.DataFrame) -> dict[str, Any]:
    """The range over layers or rules of each candidate reading of the paper's numbers.

    Parameters
    ----------
    readings : DataFrame
        :func:`~nucleilib.study.explain.measures.paper_readings`.

    Returns
    -------
    dict
        ``relevance_in_nuclei_min``/``_max`` (floats), ``positive_pixels_min``/``_max``
        and ``positive_regions_min``/``_max`` (ints).

    Examples
    --------
    >>> import pandas as pd
    >>> readings = pd.DataFrame({"mean relevance in nuclei": [0.2, 0.5], "mean relevance elsewhere": [0.1, 0.0],
    ...                          "positive pixels (sum)": [10, 30], "positive regions (sum)": [4, 2]})
    >>> paper_findings(readings)["positive_regions_min"], paper_findings(readings)["relevance_in_nuclei_max"]
    (2, 0.5)
    """
    columns = ("mean relevance in nuclei", "positive pixels (sum)", "positive regions (sum)")
    _summary(readings, "readings", columns)
    inside, pixels, regions = (readings[column] for column in columns)
    return {
        "relevance_in_nuclei_min": float(inside.min()),
        "relevance_in_nuclei_max": float(inside.max()),
        "positive_pixels_min": int(pixels.min()),
        "positive_pixels_max": int(pixels.max()),
        "positive_regions_min": int(regions.min()),
        "positive_regions_max": int(regions.max()),
    }


def lrp_findings(by_rule: pd.DataFrame, on_truth: pd.DataFrame) -> dict[str, Any]:
    """The LRP chapter's numbers against the annotated nuclei: the most concentrated rule and the range.

    Returns
    -------
    dict
        ``area_share`` (mean over the rows of ``on_truth``), ``best_rule``
        (highest enrichment of ``by_rule``) with ``best_share``,
        ``best_enrichment``, ``best_pointing`` and ``best_corr``, and
        ``enrichment_min``, ``enrichment_max`` over the rules.

    Examples
    --------
    >>> import pandas as pd
    >>> by_rule = pd.DataFrame({"relevance_share": [0.3, 0.5], "enrichment": [1.5, 2.5], "pointing_game": [0, 1],
    ...                         "correlation": [0.1, 0.2]}, index=["lrp.z", "lrp.epsilon"])
    >>> found = lrp_findings(by_rule, pd.DataFrame({"area_share": [0.2, 0.2]}))
    >>> found["best_rule"], found["best_pointing"], found["enrichment_min"]
    ('lrp.epsilon', 1.0, 1.5)
    """
    _summary(by_rule, "by_rule", ("relevance_share", "enrichment", "pointing_game", "correlation"))
    _summary(on_truth, "on_truth", ("area_share",))
    _, about_best = _best(by_rule, "rule")
    return {
        "area_share": float(on_truth["area_share"].mean()),
        **about_best,
        "enrichment_min": float(by_rule["enrichment"].min()),
        "enrichment_max": float(by_rule["enrichment"].max()),
    }


def timing_findings(timing: pd.DataFrame) -> dict[str, Any]:
    """Each LRP rule's seconds and the fastest and slowest rule.

    Parameters
    ----------
    timing : DataFrame
        Indexed by rule, with a ``seconds`` column (:meth:`RuleMaps.timing
        <nucleilib.study.explain.lrp.RuleMaps.timing>`).

    Examples
    --------
    >>> import pandas as pd
    >>> timing_findings(pd.DataFrame({"seconds": [30.0, 90.0]}, index=["lrp.epsilon", "lrp.z"]))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'seconds_lrp.epsilon': 30.0, 'seconds_lrp.z': 90.0, 'fastest_rule': 'lrp.epsilon', 'fastest_seconds': 30.0,
     'slowest_rule': 'lrp.z', 'slowest_seconds': 90.0}
    """
    _summary(timing, "timing", ("seconds",))
    seconds = timing["seconds"]
    found = {f"seconds_{rule}": float(value) for rule, value in seconds.items()}
    return found | {
        "fastest_rule": seconds.idxmin(),
        "fastest_seconds": float(seconds.min()),
        "slowest_rule": seconds.idxmax(),
        "slowest_seconds": float(seconds.max()),
    }


def pair_findings(pairs: pd.DataFrame) -> dict[str, Any]:
    """The most and the least alike pair of rules in a :func:`pairwise_similarity` matrix.

    Returns
    -------
    dict
        ``closest_pair`` (``"<a> and <b>"``, the first pair of highest
        similarity, row by row), ``closest_similarity`` and
        ``farthest_similarity``; ``"not compared (one rule)"``, NaN and NaN for
        a single rule.

    Examples
    --------
    >>> import pandas as pd
    >>> names = ["e", "z", "a"]
    >>> pairs = pd.DataFrame([[1, 0.9, 0.2], [0.9, 1, 0.4], [0.2, 0.4, 1]], index=names, columns=names)
    >>> pair_findings(pairs)
    {'closest_pair': 'e and z', 'closest_similarity': 0.9, 'farthest_similarity': 0.2}
    """
    if not isinstance(pairs, pd.DataFrame) or pairs.shape[0] != pairs.shape[1] or pairs.empty:
        raise ValueError("pairs: expected a square, non-empty similarity matrix (see pairwise_similarity)")
    off_diagonal = pairs.where(~np.eye(len(pairs), dtype=bool)).stack()
    if not len(off_diagonal):
        return {"closest_pair": "not compared (one rule)", "closest_similarity": NAN, "farthest_similarity": NAN}
    closest = off_diagonal.idxmax()
    return {
        "closest_pair": f"{closest[0]} and {closest[1]}",
        "closest_similarity": float(off_diagonal.max()),
        "farthest_similarity": float(off_diagonal.min()),
    }


def sanity_findings(summary: pd.DataFrame) -> dict[str, Any]:
    """The range over rules of the mean similarity of magnitudes, trained against randomised.

    Parameters
    ----------
    summary : DataFrame
        Mean ``randomised_similarity_abs`` by rule; may be empty (no rule checked: NaN).

    Examples
    --------
    >>> import pandas as pd
    >>> sanity_findings(pd.DataFrame({"randomised_similarity_abs": [0.6, 0.2]}, index=["lrp.epsilon", "lrp.z"]))
    {'rand_sim_abs_max': 0.6, 'rand_sim_abs_min': 0.2}
    """
    if not isinstance(summary, pd.DataFrame) or "randomised_similarity_abs" not in summary.columns:
        raise ValueError("summary: expected a DataFrame with a randomised_similarity_abs column")
    values = summary["randomised_similarity_abs"]
    if not len(values):
        return {"rand_sim_abs_max": NAN, "rand_sim_abs_min": NAN}
    return {"rand_sim_abs_max": float(values.max()), "rand_sim_abs_min": float(values.min())}


def glue_findings(found: dict[str, Any]) -> None:
    """Glue each number of ``found`` under its name (myst-nb, ``display=False``) for the text to quote.

    Returns None, so a chapter cell that ends with it shows nothing.
    """
    from myst_nb import glue

    if not isinstance(found, dict):
        raise ValueError(f"found must be a dict of glue names to values, got {type(found).__name__}")
    for name, value in found.items():
        glue(name, value, display=False)
