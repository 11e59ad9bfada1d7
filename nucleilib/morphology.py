"""Measurements behind the exploratory data analysis: nucleus shape, touching
nuclei, image contrast and intensity."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from skimage.measure import regionprops_table

from .data import Sample


def nucleus_table(labels: np.ndarray) -> pd.DataFrame:
    """Area, perimeter and circularity of every nucleus in a label image.

    Circularity is ``4 * pi * area / perimeter**2`` (1 for a disc), with the
    perimeter from :func:`skimage.measure.regionprops` (4-connected boundary
    length with diagonal steps). On tiny objects this digital perimeter
    underestimates the true one, so values above 1 occur and are clipped to 1.

    Parameters
    ----------
    labels : ndarray of int, shape (H, W)
        Instance labels, 0 for background.

    Returns
    -------
    DataFrame
        Columns ``label``, ``area``, ``perimeter``, ``circularity``,
        ``centroid_y``, ``centroid_x``, ``touching``.

    Examples
    --------
    >>> import numpy as np
    >>> from skimage.draw import disk
    >>> labels = np.zeros((64, 64), np.uint16)
    >>> labels[disk((32, 32), 12)] = 1
    >>> round(float(nucleus_table(labels)["circularity"][0]), 1)
    1.0
    """
    if labels.ndim != 2:
        raise ValueError(f"expected a 2-D label image, got shape {labels.shape}")
    props = regionprops_table(labels.astype(np.int32), properties=("label", "area", "perimeter", "centroid"))
    table = pd.DataFrame(props).rename(columns={"centroid-0": "centroid_y", "centroid-1": "centroid_x"})
    perimeter = table["perimeter"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        circularity = np.where(perimeter > 0, 4 * np.pi * table["area"] / perimeter**2, 1.0)
    table["circularity"] = np.clip(circularity, 0.0, 1.0)
    touching = touching_labels(labels)
    table["touching"] = table["label"].isin(touching)
    return table


def touching_labels(labels: np.ndarray) -> set[int]:
    """Labels of nuclei that touch another nucleus.

    Two nuclei touch when a 1-pixel dilation of one (8-neighbourhood) reaches a
    pixel of the other, i.e. when pixels of two different labels are 8-neighbours.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[1, 2, 0, 3]])
    >>> sorted(touching_labels(labels))
    [1, 2]
    """
    found: set[int] = set()
    height, width = labels.shape
    padded = np.pad(labels, 1)
    centre = padded[1:-1, 1:-1]
    # Half of the 8-neighbourhood suffices: each pair is seen from one side.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        other = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        meet = (centre > 0) & (other > 0) & (centre != other)
        if meet.any():
            found.update(np.unique(centre[meet]).tolist())
            found.update(np.unique(other[meet]).tolist())
    return {int(v) for v in found}


def image_statistics(image: np.ndarray) -> dict[str, float]:
    """Normalised contrast and mean intensity of an RGB image (grey level, 0-1).

    Contrast is the Michelson contrast of the 1st and 99th grey percentiles,
    ``(p99 - p1) / (p99 + p1)``: 0 for a flat image, 1 when the dark end is black.
    The seed paper does not define its "normalised contrast"; this is our choice.
    """
    grey = image.astype(np.float32).mean(axis=-1) / 255.0 if image.ndim == 3 else image / 255.0
    low, high = np.percentile(grey, [1, 99])
    contrast = float((high - low) / (high + low)) if high + low > 0 else 0.0
    return {"contrast": contrast, "mean_intensity": float(grey.mean())}


def eda_tables(samples: Sequence[Sample]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-image and per-nucleus tables for the whole set.

    Returns
    -------
    images : DataFrame
        ``image_id``, ``height``, ``width``, ``nuclei``, ``touching_nuclei``,
        ``has_touching``, ``contrast``, ``mean_intensity``, ``foreground_fraction``.
    nuclei : DataFrame
        :func:`nucleus_table` rows with an ``image_id`` column.
    """
    image_rows = []
    nucleus_frames = []
    for sample in samples:
        table = nucleus_table(sample.labels)
        table.insert(0, "image_id", sample.image_id)
        nucleus_frames.append(table)
        n_touching = int(table["touching"].sum())
        image_rows.append(
            {
                "image_id": sample.image_id,
                "height": sample.image.shape[0],
                "width": sample.image.shape[1],
                "nuclei": len(table),
                "touching_nuclei": n_touching,
                "has_touching": n_touching > 0,
                "foreground_fraction": float(sample.mask.mean()),
                **image_statistics(sample.image),
            }
        )
    nuclei = pd.concat(nucleus_frames, ignore_index=True) if nucleus_frames else pd.DataFrame()
    return pd.DataFrame(image_rows), nuclei
