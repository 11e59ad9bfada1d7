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
        folds.append({"groups": sorted(held_out), "test": sorted(ids[inside].tolist()),
                      "train": sorted(ids[~inside].tolist())})
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
