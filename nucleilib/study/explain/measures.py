"""Measures of explanation maps against masks, and the tables built from them (pure NumPy and pandas).

Per map: :func:`relevance_share`, :func:`pointing_game`, :func:`map_correlation`,
:func:`boundary_band`; between two maps: :func:`map_similarity` (the
model-randomisation sanity check of Adebayo et al. 2018). Per image:
:func:`explanation_metrics`, one table row per image, stacked over layers or
rules and references by :func:`measure_maps` and summarised by
:func:`summarise_measures`. Between stacks of maps: :func:`mean_similarity`,
:func:`similarity_table`, :func:`randomised_similarity`,
:func:`pairwise_similarity`; :func:`no_positive_share`. Readings of the seed
paper's undefined numbers: :func:`paper_readings` and
:func:`confidence_readings`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from ...validation import positive_int
from ._checks import as_map, as_mask, map_and_mask, maps_by_name, names_list, normalised

#: Columns that :func:`summarise_measures` needs (``boundary_share`` and
#: ``boundary_area_share`` are used when present).
SUMMARY_COLUMNS: tuple[str, ...] = ("image_id", "relevance_share", "area_share", "pointing_game", "correlation")
#: Columns of :func:`paper_readings`.
PAPER_READINGS: tuple[str, ...] = (
    "mean relevance in nuclei",
    "mean relevance elsewhere",
    "positive pixels (sum)",
    "positive regions (sum)",
)


class RelevanceShare(NamedTuple):
    """How much of a map's positive relevance falls inside a mask.

    Attributes
    ----------
    share : float
        Positive relevance inside the mask over all positive relevance, in
        [0, 1]; NaN when the map has no positive value.
    area : float
        Fraction of the pixels inside the mask: the share a map spread evenly
        over the image would get.
    enrichment : float
        ``share / area``: 1 means no better than even spreading; NaN when
        either is undefined or the mask is empty.
    """

    share: float
    area: float
    enrichment: float


def relevance_share(relevance_map: np.ndarray, mask: np.ndarray) -> RelevanceShare:
    """Share of a map's positive relevance inside a mask, against the mask's area share.

    Parameters
    ----------
    relevance_map : ndarray, shape (H, W)
        Grad-CAM or LRP map; negative values are ignored.
    mask : ndarray of bool (or 0/1), shape (H, W)
        The region (e.g. the annotated nuclei).

    Returns
    -------
    RelevanceShare

    Raises
    ------
    ValueError
        For arrays of different or non-2-D shapes, a non-binary mask or
        non-finite map values.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((4, 4), bool); mask[:2] = True
    >>> relevance_share(mask.astype(float), mask)
    RelevanceShare(share=1.0, area=0.5, enrichment=2.0)
    >>> relevance_share(np.ones((4, 4)), mask).share
    0.5
    """
    values, region = map_and_mask(relevance_map, mask)
    positive = np.clip(values, 0.0, None)
    total = float(positive.sum())
    share = float(positive[region].sum() / total) if total > 0 else float("nan")
    area = float(region.mean())
    enrichment = share / area if area > 0 and np.isfinite(share) else float("nan")
    return RelevanceShare(share, area, float(enrichment))


def pointing_game(relevance_map: np.ndarray, mask: np.ndarray, *, tolerance: float = 0.0) -> bool:
    """Whether the map's maximum lies inside the mask (Zhang et al. 2018).

    Parameters
    ----------
    relevance_map : ndarray, shape (H, W)
    mask : ndarray of bool (or 0/1), shape (H, W)
    tolerance : float
        Count a hit within this many pixels (Euclidean) of the mask; 0 (the
        default) asks for the maximum to be inside it.

    Returns
    -------
    bool
        With ties, the first maximal pixel in row-major order counts. A
        constant map points nowhere and always loses.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((5, 5), bool); mask[1, 1] = True
    >>> heat = np.zeros((5, 5)); heat[1, 1] = 1
    >>> pointing_game(heat, mask), pointing_game(1 - heat, mask)
    (True, False)
    """
    values, region = map_and_mask(relevance_map, mask)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if values.max() == values.min() or not region.any():
        return False
    if tolerance > 0:
        region = ndimage.distance_transform_edt(~region) <= tolerance
    return bool(region.flat[int(np.argmax(values))])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if norm == 0.0:
        return 0.0
    return float(np.clip((a * b).sum() / norm, -1.0, 1.0))


def map_correlation(relevance_map: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of a map with a binary mask (point-biserial correlation).

    Returns 0.0, without a warning, when the map or the mask is constant (a
    constant map carries no information about the mask).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.eye(4, dtype=bool)
    >>> map_correlation(mask.astype(float), mask), map_correlation(np.ones((4, 4)), mask)
    (1.0, 0.0)
    """
    values, region = map_and_mask(relevance_map, mask)
    return _pearson(values, region.astype(np.float64))


def map_similarity(a: np.ndarray, b: np.ndarray, *, absolute: bool = False) -> float:
    """Spearman rank correlation of two maps (the randomisation sanity check).

    Parameters
    ----------
    a, b : ndarray, shape (H, W)
        Two explanations of the same image, e.g. before and after randomising
        the weights (Adebayo et al. 2018).
    absolute : bool
        Compare the magnitudes ``|a|`` and ``|b|`` (useful for signed LRP maps).

    Returns
    -------
    float
        In [-1, 1]; 0.0 when either map is constant. Ties get average ranks.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> map_similarity(x, x ** 3), map_similarity(x, -x)
    (1.0, -1.0)
    """
    first, second = as_map(a, "a"), as_map(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"maps of shapes {first.shape} and {second.shape} differ")
    if absolute:
        first, second = np.abs(first), np.abs(second)
    if first.max() == first.min() or second.max() == second.min():
        return 0.0
    return _pearson(stats.rankdata(first.ravel()), stats.rankdata(second.ravel()))


def boundary_band(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The pixels within ``width`` pixels of a mask's outline, on both sides of it.

    The dilation of the mask minus its erosion, both by ``width`` steps of a
    3 x 3 square (so distances are chessboard distances): ``width`` rings of
    pixels just inside the outline and ``width`` rings just outside it. The
    image's own edge is not an outline: a mask that touches it is not eroded
    from there (a nucleus cut by a crop goes on beyond it).

    Parameters
    ----------
    mask : ndarray of bool (or 0/1), shape (H, W)
        The region, e.g. the annotated nuclei.
    width : int
        Half-width of the band in pixels, at least 1.

    Returns
    -------
    ndarray of bool, shape (H, W)
        Empty for an empty mask or a mask that covers the whole image.

    Raises
    ------
    ValueError
        For a mask that is not 2-D and binary, or a width that is not a
        positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((8, 8), bool); mask[2:6, 2:6] = True
    >>> band = boundary_band(mask, 1)
    >>> int(band.sum()), bool(band[3, 3]), bool(band[2, 2]), bool(band[1, 1])
    (32, False, True, True)
    """
    region = as_mask(mask)
    positive_int(width, "width")
    if not region.any():
        return np.zeros_like(region)
    square = np.ones((3, 3), bool)
    grown = ndimage.binary_dilation(region, structure=square, iterations=int(width))
    shrunk = ndimage.binary_erosion(region, structure=square, iterations=int(width), border_value=1)
    return grown & ~shrunk


def explanation_metrics(
    maps: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray,
    ids: Sequence[str],
    *,
    tolerance: float = 0.0,
    boundary_width: int = 2,
) -> pd.DataFrame:
    """The measures of each map against its mask, one row per image.

    Parameters
    ----------
    maps : sequence of ndarray, shape (H, W)
        Explanations (any scale, any sign).
    masks : sequence of ndarray of bool, shape (H, W)
        Matching masks (e.g. annotated nuclei).
    ids : sequence of str
        Image ids.
    tolerance : float
        Tolerance of the pointing game, in pixels.
    boundary_width : int
        Half-width, in pixels, of the band around the mask's outline (see
        :func:`boundary_band`).

    Returns
    -------
    DataFrame
        Columns ``image_id``; ``relevance_share``, ``area_share``,
        ``enrichment`` (:func:`relevance_share`); ``pointing_game`` (1.0 for
        a hit, 0.0 for a miss) and ``correlation`` (:func:`map_correlation`),
        both NaN for an empty mask; ``mean_inside`` and
        ``mean_outside``, the mean of the map divided by its largest magnitude
        inside and outside the mask (NaN where there is no such pixel);
        ``positive_pixels``, the number of pixels with positive relevance;
        ``positive_regions``, the number of 8-connected regions they form;
        ``boundary_share``, the share of the positive relevance that lies in
        the band of ``boundary_width`` pixels on both sides of the mask's
        outline (:func:`boundary_band`; NaN when the map has no positive
        value), and ``boundary_area_share``, the share of the pixels in that
        band (what a map spread evenly would get), both NaN for an empty mask.

    Raises
    ------
    ValueError
        For sequences of different lengths, no maps, one string as ``ids``,
        an invalid ``boundary_width`` or invalid maps and masks.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((4, 4), bool); mask[0, 0] = True
    >>> explanation_metrics([mask * 2.0], [mask], ["a"])[["relevance_share", "pointing_game"]].values.tolist()
    [[1.0, 1.0]]
    """
    if isinstance(ids, str):
        raise ValueError("ids must be a sequence of image ids, not one string")
    n_maps, n_masks, n_ids = len(maps), len(masks), len(ids)
    if not n_maps == n_masks == n_ids:
        raise ValueError(f"got {n_maps} maps, {n_masks} masks and {n_ids} ids; they must match")
    if n_maps == 0:
        raise ValueError("no maps given")
    positive_int(boundary_width, "boundary_width")  # up front: a batch of empty masks never reaches boundary_band
    rows = []
    nan = float("nan")
    for image_id, values, mask in zip(ids, maps, masks):
        values, region = map_and_mask(values, mask)
        share = relevance_share(values, region)
        scaled = normalised(values)
        positive = values > 0
        _, n_regions = ndimage.label(positive, structure=np.ones((3, 3), bool))
        if region.any():
            band = relevance_share(values, boundary_band(region, boundary_width))
            boundary_share, boundary_area = band.share, band.area
        else:
            boundary_share = boundary_area = nan
        rows.append(
            {
                "image_id": str(image_id),
                "relevance_share": share.share,
                "area_share": share.area,
                "enrichment": share.enrichment,
                "pointing_game": float(pointing_game(values, region, tolerance=tolerance)) if region.any() else nan,
                "correlation": map_correlation(values, region) if region.any() else nan,
                "mean_inside": float(scaled[region].mean()) if region.any() else float("nan"),
                "mean_outside": float(scaled[~region].mean()) if (~region).any() else float("nan"),
                "positive_pixels": int(positive.sum()),
                "positive_regions": int(n_regions),
                "boundary_share": boundary_share,
                "boundary_area_share": boundary_area,
            }
        )
    return pd.DataFrame(rows)


def summarise_measures(table: pd.DataFrame, by: str | Sequence[str]) -> pd.DataFrame:
    """Means of the measures of :func:`explanation_metrics` per group.

    Parameters
    ----------
    table : DataFrame
        Rows of :func:`explanation_metrics` with the grouping column(s) added
        (``layer``, ``rule``, ``modality``...); it needs the columns of
        :data:`SUMMARY_COLUMNS`.
    by : str or sequence of str
        Column(s) to group by; groups keep their order of first appearance.

    Returns
    -------
    DataFrame
        One row per group, indexed by ``by``: ``images`` (rows in the group),
        the means of ``relevance_share`` and ``area_share``, ``enrichment``
        (4th column), ``pointing_game`` and ``correlation``; when the table
        has ``boundary_share`` and ``boundary_area_share``, their means and
        ``boundary_enrichment`` follow. Both enrichments are ratios of the
        means (mean share over mean area share), not means of per-image
        ratios, which crops with few mask pixels would dominate; NaN where the
        mean area share is 0. Means skip NaN values.

    Raises
    ------
    ValueError
        For an empty table, missing columns or an empty ``by``.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"image_id": ["a", "b"], "layer": ["x", "x"], "relevance_share": [0.2, 0.4],
    ...                       "area_share": [0.1, 0.1], "pointing_game": [1.0, 0.0], "correlation": [0.5, 0.3]})
    >>> summarise_measures(table, "layer").round(2).values.tolist()
    [[2.0, 0.3, 0.1, 3.0, 0.5, 0.4]]
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a DataFrame, got {type(table).__name__}")
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise ValueError("by: name at least one column to group by")
    missing = [name for name in (*SUMMARY_COLUMNS, *keys) if name not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {', '.join(map(repr, dict.fromkeys(missing)))}")
    if table.empty:
        raise ValueError("table: no rows to summarise")
    columns = {
        "images": ("image_id", "count"),
        "relevance_share": ("relevance_share", "mean"),
        "area_share": ("area_share", "mean"),
        "pointing_game": ("pointing_game", "mean"),
        "correlation": ("correlation", "mean"),
    }
    boundary = {"boundary_share", "boundary_area_share"} <= set(table.columns)
    if boundary:
        columns |= {
            "boundary_share": ("boundary_share", "mean"),
            "boundary_area_share": ("boundary_area_share", "mean"),
        }
    summary = table.groupby(by, sort=False).agg(**columns)

    def ratio(share: pd.Series, area: pd.Series) -> pd.Series:
        return share / area.where(area > 0)

    summary.insert(3, "enrichment", ratio(summary["relevance_share"], summary["area_share"]))
    if boundary:
        summary["boundary_enrichment"] = ratio(summary["boundary_share"], summary["boundary_area_share"])
    return summary


def confidence_readings(probabilities: np.ndarray, predicted: np.ndarray, annotated: np.ndarray) -> dict[str, float]:
    """Candidate readings of an undefined "confidence score": the mean foreground
    probability over the pixels the model calls nucleus, and over the annotated nuclei.

    Parameters
    ----------
    probabilities : ndarray, shape (N, H, W)
        Foreground probability of each window.
    predicted, annotated : ndarray of bool, shape (N, H, W)
        Predicted and annotated nucleus pixels of the same windows.

    Returns
    -------
    dict
        ``over_predicted_nuclei`` and ``over_annotated_nuclei``, pooled over all
        windows' pixels; NaN where the mask has no pixel.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[0.9, 0.2], [0.6, 0.1]]]); truth = np.array([[[True, True], [False, False]]])
    >>> {k: round(v, 2) for k, v in confidence_readings(p, p > 0.5, truth).items()}
    {'over_predicted_nuclei': 0.75, 'over_annotated_nuclei': 0.55}
    """
    values = np.asarray(probabilities, dtype=float)
    readings = {}
    for key, mask in (("over_predicted_nuclei", predicted), ("over_annotated_nuclei", annotated)):
        region = np.asarray(mask)
        if region.shape != values.shape or region.dtype != bool:
            raise ValueError(
                f"{key.removeprefix('over_')}: expected a boolean mask of shape {values.shape}, "
                f"got {region.dtype} of shape {region.shape}"
            )
        readings[key] = float(values[region].mean()) if region.any() else float("nan")
    return readings


# --------------------------------------------------------------------------- tables of many maps


def measure_maps(
    maps: Mapping[str, Any],
    references: Mapping[str, Any],
    ids: Sequence[str],
    *,
    name: str = "layer",
    columns: Mapping[str, Any] | None = None,
    per_name: Mapping[str, Mapping[str, Any]] | None = None,
    tolerance: float = 0.0,
    boundary_width: int = 2,
) -> pd.DataFrame:
    """:func:`explanation_metrics` of every stack of maps against every reference, in one table.

    Parameters
    ----------
    maps : mapping of str to maps, shape (N, H, W)
        One stack of maps per layer (Grad-CAM) or rule (LRP), in table order.
    references : mapping of str to masks, shape (N, H, W)
        The masks to measure against, e.g. ``{"truth": annotated, "prediction":
        predicted}``.
    ids : sequence of str
        Image ids, one per map.
    name : str
        Column that receives the key of ``maps`` (``"layer"``, ``"rule"``).
    columns : mapping, optional
        Further columns, the same for every stack (a value, or one value per
        image such as the modality).
    per_name : mapping of str to mapping, optional
        Further columns by key of ``maps`` (e.g. an LRP rule's seconds).
    tolerance, boundary_width
        As in :func:`explanation_metrics`.

    Returns
    -------
    DataFrame
        The rows of :func:`explanation_metrics` for each key of ``maps`` and,
        within it, each reference, followed by the columns ``name``,
        ``reference``, then those of ``columns`` and of ``per_name``.

    Raises
    ------
    ValueError
        For empty mappings, a ``name`` or further column that is already a
        column of the table, or invalid maps, masks or ids.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((1, 4, 4), bool); mask[0, 0, 0] = True
    >>> maps = {"sharp": mask * 1.0, "flat": np.ones((1, 4, 4))}
    >>> table = measure_maps(maps, {"truth": mask}, ["a"], columns={"modality": ["x"]})
    >>> table[["layer", "reference", "modality", "relevance_share"]].values.tolist()
    [['sharp', 'truth', 'x', 1.0], ['flat', 'truth', 'x', 0.0625]]
    """
    if not isinstance(maps, Mapping) or not maps:
        raise ValueError("maps: expected a non-empty mapping of names to maps of shape (N, H, W)")
    if not isinstance(references, Mapping) or not references:
        raise ValueError("references: expected a non-empty mapping of names to masks of shape (N, H, W)")
    extra = dict(columns or {})
    per_name = dict(per_name or {})
    frames = []
    for key, values in maps.items():
        own = dict(per_name.get(key, {}))
        added = [name, "reference", *extra, *own]
        for reference, masks in references.items():
            table = explanation_metrics(values, masks, ids, tolerance=tolerance, boundary_width=boundary_width)
            clash = sorted({column for column in added if added.count(column) > 1 or column in table.columns})
            if clash:
                raise ValueError(f"column(s) {', '.join(map(repr, clash))} would be written twice")
            frames.append(table.assign(**{name: key, "reference": reference}, **extra, **own))
    return pd.concat(frames, ignore_index=True)


def mean_similarity(
    a: Sequence[np.ndarray] | np.ndarray, b: Sequence[np.ndarray] | np.ndarray, *, absolute: bool = False
) -> float:
    """The mean :func:`map_similarity` of two stacks of maps of the same images, image by image.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(32.0).reshape(2, 4, 4)
    >>> mean_similarity(x, x ** 2), mean_similarity(x, np.stack([x[0], -x[1]]))
    (1.0, 0.0)
    """
    if len(a) != len(b):
        raise ValueError(f"got {len(a)} and {len(b)} maps; they must match")
    if len(a) == 0:
        raise ValueError("no maps given")
    return float(np.mean([map_similarity(a[k], b[k], absolute=absolute) for k in range(len(a))]))


def similarity_table(
    reference: Mapping[str, Any], other: Mapping[str, Any], ids: Sequence[str], *, absolute: bool = False
) -> pd.DataFrame:
    """:func:`map_similarity` of each image's maps, one column per key of ``other``.

    Parameters
    ----------
    reference, other : mapping of str to maps, shape (N, H, W)
        E.g. the maps of the trained and of a randomised network, by layer;
        every key of ``other`` must be in ``reference``.
    ids : sequence of str
        Image ids (the index).
    absolute : bool
        Compare magnitudes (see :func:`map_similarity`).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(32.0).reshape(2, 4, 4)
    >>> similarity_table({"a": x}, {"a": -x}, ["i", "j"]).to_dict()
    {'a': {'i': -1.0, 'j': -1.0}}
    """
    ids = names_list(ids, "ids")
    missing = [key for key in other if key not in reference]
    if missing:
        raise ValueError(f"reference has no maps for {', '.join(map(repr, missing))}")
    for key, maps in other.items():
        if not len(maps) == len(reference[key]) == len(ids):
            raise ValueError(
                f"{key!r}: got {len(reference[key])} reference maps, {len(maps)} maps and "
                f"{len(ids)} ids; they must match"
            )
    return pd.DataFrame(
        {
            key: [map_similarity(reference[key][k], maps[k], absolute=absolute) for k in range(len(ids))]
            for key, maps in other.items()
        },
        index=ids,
    )


def randomised_similarity(
    reference: Mapping[str, Any], randomised: Mapping[str, Any], ids: Sequence[str], *, name: str = "rule"
) -> pd.DataFrame:
    """The sanity-check table: each image's similarity to its randomised map, signed and of magnitudes.

    Returns
    -------
    DataFrame
        Columns ``image_id``, ``name``, ``randomised_similarity`` and
        ``randomised_similarity_abs`` (:func:`map_similarity` with
        ``absolute=True``); one row per key of ``randomised`` and image, in
        that order. No rows (but the columns) when ``randomised`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 4, 4) - 8
    >>> randomised_similarity({"r": x}, {"r": -x}, ["a"]).values.tolist()
    [['a', 'r', -1.0, 1.0]]
    """
    columns = ["image_id", name, "randomised_similarity", "randomised_similarity_abs"]
    if not randomised:
        return pd.DataFrame(columns=columns)
    signed = similarity_table(reference, randomised, ids)
    magnitude = similarity_table(reference, randomised, ids, absolute=True)
    rows = [
        {
            "image_id": image_id,
            name: key,
            "randomised_similarity": signed.iloc[k][key],
            "randomised_similarity_abs": magnitude.iloc[k][key],
        }
        for key in randomised
        for k, image_id in enumerate(signed.index)
    ]
    return pd.DataFrame(rows, columns=columns)


def pairwise_similarity(maps: Mapping[str, Any]) -> pd.DataFrame:
    """The :func:`mean_similarity` of every two stacks of maps (of the same images), as a matrix.

    Returns
    -------
    DataFrame
        Symmetric, indexed and labelled by the keys of ``maps``, with 1.0 on
        the diagonal.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 4, 4)
    >>> pairwise_similarity({"a": x, "b": x ** 2, "c": -x}).values.tolist()
    [[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]]
    """
    stacks = maps_by_name(maps)
    names = list(stacks)
    pairs = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pairs.loc[a, b] = pairs.loc[b, a] = mean_similarity(stacks[a], stacks[b])
    return pairs


def no_positive_share(maps: Mapping[str, Any]) -> pd.Series:
    """For each stack of maps, the share of its maps that have no positive value.

    Examples
    --------
    >>> import numpy as np
    >>> no_positive_share({"a": np.stack([np.zeros((2, 2)), np.eye(2), -np.eye(2)])}).round(3).to_dict()
    {'a': 0.667}
    """
    stacks = maps_by_name(maps, same_shape=False)
    return pd.Series({key: float((stack.max(axis=(1, 2)) <= 0).mean()) for key, stack in stacks.items()})


def paper_readings(table: pd.DataFrame, by: str) -> pd.DataFrame:
    """Candidate readings of the seed paper's undefined relevance numbers, per layer or rule.

    Parameters
    ----------
    table : DataFrame
        Rows of :func:`explanation_metrics` (against the annotated nuclei) with
        the column ``by`` added.
    by : str
        The grouping column (``"layer"``, ``"rule"``); groups keep their order
        of first appearance.

    Returns
    -------
    DataFrame
        Indexed by ``by``: ``mean relevance in nuclei`` and ``mean relevance
        elsewhere`` (means of ``mean_inside`` and ``mean_outside``, the map
        scaled by its largest magnitude; the paper's "mean relevance across
        nuclear regions"), ``positive pixels (sum)`` and ``positive regions
        (sum)`` (sums over the images; its "positively contributing regions").

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"rule": ["z", "z", "e"], "mean_inside": [0.2, 0.4, 0.1],
    ...                       "mean_outside": [0.0, 0.1, 0.0], "positive_pixels": [10, 20, 5],
    ...                       "positive_regions": [1, 2, 3]})
    >>> paper_readings(table, "rule").round(2).values.tolist()
    [[0.3, 0.05, 30.0, 3.0], [0.1, 0.0, 5.0, 3.0]]
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a DataFrame, got {type(table).__name__}")
    needed = [by, "mean_inside", "mean_outside", "positive_pixels", "positive_regions"]
    missing = [column for column in needed if column not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {', '.join(map(repr, missing))}")
    if table.empty:
        raise ValueError("table: no rows to read")
    sources = (
        ("mean_inside", "mean"),
        ("mean_outside", "mean"),
        ("positive_pixels", "sum"),
        ("positive_regions", "sum"),
    )
    return table.groupby(by, sort=False).agg(**dict(zip(PAPER_READINGS, sources)))
