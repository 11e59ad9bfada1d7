"""The measurements of the data chapter (``01_eda``) beside the seed paper's claims.

Each section of the chapter has one function here that turns the tables of
:func:`nucleilib.morphology.eda_tables` and the manifest of
:func:`nucleilib.study.manifest.build_manifest` into the numbers the chapter
shows and glues: :func:`count_summary`, :func:`shape_summary`,
:func:`intensity_summary`, :func:`touching_summary`; :func:`claims_tables`
sets all of them beside the paper's claims (``eda-claims.csv`` and
``eda-claims.json``). The paper's ranges are the ``PAPER_*`` constants.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import Sample
from .manifest import MODALITIES

#: Nuclei per image of the seed paper: (mean, standard deviation).
PAPER_COUNT: tuple[float, float] = (71, 9)
#: Ranges of the seed paper: nucleus area (px), circularity, contrast, mean intensity.
PAPER_AREA: tuple[float, float] = (8, 45)
PAPER_CIRCULARITY: tuple[float, float] = (0.6, 0.9)
PAPER_CONTRAST: tuple[float, float] = (0.4, 0.9)
PAPER_INTENSITY: tuple[float, float] = (0.2, 0.8)
#: Share of an image's nuclei that touch, from which touching counts as significant.
SIGNIFICANT_TOUCHING = 0.10


def pick_ids(all_ids: Sequence[str], max_images: int | None, seed: int) -> list[str]:
    """The image ids a run reads: all of them, or a sorted random subset.

    Parameters
    ----------
    all_ids : sequence of str
        Every image id of the data set.
    max_images : int or None
        None (or at least ``len(all_ids)``): every id, in the given order;
        otherwise ``max_images`` ids drawn without replacement with ``seed``.
    seed : int

    Examples
    --------
    >>> pick_ids(["a", "b", "c"], None, seed=0)
    ['a', 'b', 'c']
    >>> len(pick_ids(["a", "b", "c", "d"], 2, seed=0))
    2
    """
    if max_images is not None and max_images < len(all_ids):
        rng = np.random.default_rng(seed)
        return sorted(rng.choice(list(all_ids), size=max_images, replace=False).tolist())
    return list(all_ids)


def overlap_table(samples: Sequence[Sample]) -> pd.DataFrame:
    """The images in which a nucleus mask overlaps an earlier one.

    Returns
    -------
    DataFrame
        Columns ``image_id``, ``overlapping masks``, ``nuclei``; one row per
        sample with ``overlapping_masks > 0``, in the samples' order.
    """
    return pd.DataFrame(
        [(s.image_id, s.overlapping_masks, s.n_nuclei) for s in samples if s.overlapping_masks],
        columns=["image_id", "overlapping masks", "nuclei"],
    )


def add_modality(
    images: pd.DataFrame, nuclei: pd.DataFrame, manifest: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-image table with the manifest's ``modality`` and ``density``, and
    the per-nucleus table with ``modality``, joined on ``image_id``."""
    images = images.merge(manifest[["image_id", "modality", "density"]], on="image_id")
    nuclei = nuclei.merge(manifest[["image_id", "modality"]], on="image_id")
    return images, nuclei


def size_counts(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per size (``"H x W"``) and modality, the most frequent size first.

    Examples
    --------
    >>> import pandas as pd
    >>> manifest = pd.DataFrame({"height": [256, 256, 520], "width": [256, 256, 696],
    ...                          "modality": ["fluorescence", "brightfield", "fluorescence"]})
    >>> size_counts(manifest).to_dict(orient="index")
    {'256 x 256': {'brightfield': 1, 'fluorescence': 1}, '520 x 696': {'brightfield': 0, 'fluorescence': 1}}
    """
    sizes = (
        manifest.assign(size=manifest["height"].astype(str) + " x " + manifest["width"].astype(str))
        .groupby(["size", "modality"])
        .size()
        .unstack(fill_value=0)
    )
    return sizes.loc[sizes.sum(axis=1).sort_values(ascending=False).index]


def modality_facts(manifest: pd.DataFrame) -> dict[str, int]:
    """Counts of the manifest section: images, nuclei, images per modality, side range.

    Returns
    -------
    dict
        ``n_images``, ``n_nuclei``, ``n_fluorescence``, ``n_brightfield``,
        ``n_tissue`` (stained tissue), ``min_side`` and ``max_side`` (pixels).
    """
    counts = manifest["modality"].value_counts()
    return {
        "n_images": len(manifest),
        "n_nuclei": int(manifest["nuclei"].sum()),
        "n_fluorescence": int(counts.get("fluorescence", 0)),
        "n_brightfield": int(counts.get("brightfield", 0)),
        "n_tissue": int(counts.get("stained tissue", 0)),
        "min_side": int(manifest[["height", "width"]].min().min()),
        "max_side": int(manifest[["height", "width"]].max().max()),
    }


def count_summary(images: pd.DataFrame) -> dict[str, float]:
    """Mean, sample standard deviation and median of the nuclei per image.

    Examples
    --------
    >>> import pandas as pd
    >>> summary = count_summary(pd.DataFrame({"nuclei": [1, 2, 6]}))
    >>> {k: round(float(v), 3) for k, v in summary.items()}
    {'count_mean': 3.0, 'count_sd': 2.646, 'count_median': 2.0}
    """
    nuclei = images["nuclei"]
    return {"count_mean": nuclei.mean(), "count_sd": nuclei.std(), "count_median": nuclei.median()}


def _p5_p95(values: pd.Series) -> tuple[float, float]:
    low, high = np.percentile(values, [5, 95])
    return low, high


def _share_within(values: pd.Series, bounds: tuple[float, float]) -> float:
    return float(values.between(*bounds).mean())


def shape_summary(
    nuclei: pd.DataFrame,
    area_range: tuple[float, float] = PAPER_AREA,
    circularity_range: tuple[float, float] = PAPER_CIRCULARITY,
) -> dict[str, float]:
    """Median and 5th-95th percentiles of nucleus area and circularity, and the
    percentage of nuclei inside the paper's ranges (bounds included).

    Parameters
    ----------
    nuclei : DataFrame
        With ``area`` and ``circularity`` columns (:func:`nucleilib.morphology.nucleus_table`).
    area_range, circularity_range : (float, float)
        The ranges whose share is reported (default the paper's).

    Returns
    -------
    dict
        ``area_median``, ``area_p5``, ``area_p95``, ``circ_median``, ``circ_p5``,
        ``circ_p95``, ``area_in_paper_pct``, ``circ_in_paper_pct``.

    Examples
    --------
    >>> import pandas as pd
    >>> nuclei = pd.DataFrame({"area": [4, 8, 45, 100], "circularity": [0.5, 0.6, 0.7, 1.0]})
    >>> shape_summary(nuclei)["area_in_paper_pct"], shape_summary(nuclei)["circ_in_paper_pct"]
    (50.0, 50.0)
    """
    area_lo, area_hi = _p5_p95(nuclei["area"])
    circ_lo, circ_hi = _p5_p95(nuclei["circularity"])
    values = {
        "area_median": nuclei["area"].median(),
        "area_p5": area_lo,
        "area_p95": area_hi,
        "circ_median": nuclei["circularity"].median(),
        "circ_p5": circ_lo,
        "circ_p95": circ_hi,
        "area_in_paper_pct": 100 * _share_within(nuclei["area"], area_range),
        "circ_in_paper_pct": 100 * _share_within(nuclei["circularity"], circularity_range),
    }
    return {name: float(value) for name, value in values.items()}


def _q5_q95(values: pd.Series) -> np.ndarray:
    return values.quantile([0.05, 0.95]).to_numpy()


def intensity_summary(images: pd.DataFrame) -> dict[str, float]:
    """5th and 95th percentiles of the per-image contrast and mean intensity.

    Returns
    -------
    dict
        ``contrast_p5``, ``contrast_p95``, ``intensity_p5``, ``intensity_p95``.

    Examples
    --------
    >>> import pandas as pd
    >>> images = pd.DataFrame({"contrast": [0.0, 1.0], "mean_intensity": [0.2, 0.4]})
    >>> {k: round(v, 2) for k, v in intensity_summary(images).items()}
    {'contrast_p5': 0.05, 'contrast_p95': 0.95, 'intensity_p5': 0.21, 'intensity_p95': 0.39}
    """
    contrast = _q5_q95(images["contrast"])
    intensity = _q5_q95(images["mean_intensity"])
    return {
        "contrast_p5": float(contrast[0]),
        "contrast_p95": float(contrast[1]),
        "intensity_p5": float(intensity[0]),
        "intensity_p95": float(intensity[1]),
    }


def touching_share(images: pd.DataFrame) -> pd.Series:
    """Per image, the share of its nuclei that touch another (0 for an image without nuclei).

    Examples
    --------
    >>> import pandas as pd
    >>> touching_share(pd.DataFrame({"touching_nuclei": [2, 0], "nuclei": [4, 0]})).tolist()
    [0.5, 0.0]
    """
    return images["touching_nuclei"] / images["nuclei"].clip(lower=1)


def _touching_shares(images: pd.DataFrame, significant: float) -> tuple[float, float]:
    share_any = float(images["has_touching"].mean())
    share_significant = float((touching_share(images) >= significant).mean())
    return share_any, share_significant


def touching_summary(
    images: pd.DataFrame, nuclei: pd.DataFrame, significant: float = SIGNIFICANT_TOUCHING
) -> dict[str, float]:
    """Percentages of images with touching nuclei and of nuclei that touch.

    Returns
    -------
    dict
        ``touch_any_pct`` (images with at least one touching pair),
        ``touch_10_pct`` (images with at least ``significant`` of their nuclei
        touching) and ``nuclei_touching_pct`` (nuclei touching another).

    Examples
    --------
    >>> import pandas as pd
    >>> images = pd.DataFrame({"nuclei": [10, 10], "touching_nuclei": [1, 0], "has_touching": [True, False]})
    >>> touching_summary(images, pd.DataFrame({"touching": [True, False, False, False]}))
    {'touch_any_pct': 50.0, 'touch_10_pct': 50.0, 'nuclei_touching_pct': 25.0}
    """
    share_any, share_significant = _touching_shares(images, significant)
    return {
        "touch_any_pct": 100 * share_any,
        "touch_10_pct": 100 * share_significant,
        "nuclei_touching_pct": 100 * float(nuclei["touching"].mean()),
    }


def example_ids(manifest: pd.DataFrame, seed: int, per_modality: int = 2) -> dict[str, list[str]]:
    """Up to ``per_modality`` image ids of each modality present, drawn with ``seed``.

    The modalities come in the order of :data:`~nucleilib.study.manifest.MODALITIES`
    and share one random generator, so the picks depend only on the manifest and
    the seed.
    """
    rng = np.random.default_rng(seed)
    picks: dict[str, list[str]] = {}
    for modality in MODALITIES:
        candidates = manifest.loc[manifest["modality"] == modality, "image_id"].tolist()
        if candidates:
            chosen = rng.choice(candidates, size=min(per_modality, len(candidates)), replace=False)
            picks[modality] = [str(i) for i in chosen]
    return picks


def split_counts(paths: Mapping[str, str | os.PathLike[str]]) -> pd.DataFrame:
    """Images per subset and modality of each saved split, with a total column.

    Parameters
    ----------
    paths : mapping
        Split name -> split CSV (:func:`nucleilib.study.manifest.save_splits`).

    Returns
    -------
    DataFrame
        Index (``split``, ``subset``), one column per modality and ``total``.
    """
    tables = []
    for name, path in paths.items():
        table = pd.read_csv(Path(path))
        counts = table.groupby(["subset", "modality"]).size().unstack(fill_value=0)
        counts["total"] = counts.sum(axis=1)
        counts.index = pd.MultiIndex.from_product([[name], counts.index], names=["split", "subset"])
        tables.append(counts)
    return pd.concat(tables)


def claims_tables(
    manifest: pd.DataFrame, images: pd.DataFrame, nuclei: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The paper's claims about the data beside this data set's measurements.

    Parameters
    ----------
    manifest : DataFrame
        :func:`~nucleilib.study.manifest.build_manifest` (``height``, ``width``).
    images : DataFrame
        Per-image table (``nuclei``, ``contrast``, ``mean_intensity``,
        ``touching_nuclei``, ``has_touching``).
    nuclei : DataFrame
        Per-nucleus table (``area``, ``circularity``).

    Returns
    -------
    claims : DataFrame
        Columns ``quantity``, ``seed paper`` and ``measured (<n> images)``, as
        text (``eda-claims.csv``).
    numbers : dict of str to float
        The measurements as numbers (``eda-claims.json``); shares are fractions.
    """
    count = count_summary(images)
    area_lo, area_hi = _p5_p95(nuclei["area"])
    circ_lo, circ_hi = _p5_p95(nuclei["circularity"])
    area_in = _share_within(nuclei["area"], PAPER_AREA)
    circ_in = _share_within(nuclei["circularity"], PAPER_CIRCULARITY)
    contrast, intensity = _q5_q95(images["contrast"]), _q5_q95(images["mean_intensity"])
    share_any, share_10 = _touching_shares(images, SIGNIFICANT_TOUCHING)
    height, width = manifest["height"], manifest["width"]
    claims = pd.DataFrame(
        [
            (
                "image sizes",
                "256x256 to 1024x1024",
                f"{height.min()}x{width.min()} to {height.max()}x{width.max()} (H x W)",
            ),
            ("nuclei per image", "71 +/- 9 (mean +/- SD)", f"{count['count_mean']:.1f} +/- {count['count_sd']:.1f}"),
            ("nucleus area", "8-45 px", f"5th-95th pct {area_lo:.0f}-{area_hi:.0f} px; {100 * area_in:.1f}% in 8-45"),
            ("circularity", "0.6-0.9", f"5th-95th pct {circ_lo:.2f}-{circ_hi:.2f}; {100 * circ_in:.1f}% in 0.6-0.9"),
            ("normalised contrast", "0.4-0.9", f"5th-95th pct {contrast[0]:.2f}-{contrast[1]:.2f}"),
            ("mean intensity", "0.2-0.8", f"5th-95th pct {intensity[0]:.2f}-{intensity[1]:.2f}"),
            (
                "images with touching nuclei",
                "about 27%",
                f"{100 * share_any:.1f}% (any), {100 * share_10:.1f}% (>= 10% of nuclei)",
            ),
        ],
        columns=["quantity", "seed paper", f"measured ({len(manifest)} images)"],
    )
    sides = manifest[["height", "width"]]
    numbers = {
        "n_images": len(manifest),
        "sizes_share_within_256_1024": float(((sides >= 256) & (sides <= 1024)).all(axis=1).mean()),
        "count_mean": count["count_mean"],
        "count_sd": count["count_sd"],
        "area_p5": area_lo,
        "area_p95": area_hi,
        "area_share_in_paper": area_in,
        "circularity_p5": circ_lo,
        "circularity_p95": circ_hi,
        "circularity_share_in_paper": circ_in,
        "contrast_p5": contrast[0],
        "contrast_p95": contrast[1],
        "contrast_share_in_paper": _share_within(images["contrast"], PAPER_CONTRAST),
        "intensity_p5": intensity[0],
        "intensity_p95": intensity[1],
        "intensity_share_in_paper": _share_within(images["mean_intensity"], PAPER_INTENSITY),
        "touching_any_share": share_any,
        "touching_10_share": share_10,
    }
    return claims, {name: float(value) for name, value in numbers.items()}
