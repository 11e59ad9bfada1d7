"""Per-image manifest (modality, nuclei count, density) and stratified splits."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..data import Sample

# The modality classifier is the tool's (training balances modalities with it); re-exported here.
from ..preprocess import BRIGHT_BACKGROUND, COLOUR_THRESHOLD, MODALITIES, classify_modality  # noqa: F401

DENSITY_BINS = ("sparse", "medium", "dense")

#: Split sizes of the seed paper, as (train, val, test) counts of its 740 images.
#: They are scaled to the size of the data set at hand by :func:`split_sizes`.
PAPER_SPLITS: dict[str, tuple[int, int, int]] = {
    "original": (670, 10, 60),
    "80-10-10": (592, 74, 74),
    "70-20-10": (518, 148, 74),
}
SPLIT_NAMES = tuple(PAPER_SPLITS)


def density_bins(counts: Sequence[int] | np.ndarray) -> list[str]:
    """Bin nuclei counts into terciles of the given counts (sparse / medium / dense)."""
    counts = np.asarray(counts, dtype=float)
    if counts.size == 0:
        return []
    edges = np.quantile(counts, [1 / 3, 2 / 3])
    index = np.searchsorted(edges, counts, side="right")
    return [DENSITY_BINS[min(i, 2)] for i in index]


def build_manifest(samples: Sequence[Sample]) -> pd.DataFrame:
    """One row per image: id, height, width, channels, modality, nuclei, density bin.

    ``channels`` counts the distinct colour channels (1 for grey stored as RGB).
    """
    rows = []
    for sample in samples:
        image = sample.image
        grey = bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))
        rows.append(
            {
                "image_id": sample.image_id,
                "height": image.shape[0],
                "width": image.shape[1],
                "channels": 1 if grey else 3,
                "modality": classify_modality(image),
                "nuclei": sample.n_nuclei,
            }
        )
    manifest = pd.DataFrame(rows)
    manifest["density"] = density_bins(manifest["nuclei"]) if len(manifest) else []
    return manifest


def split_sizes(n_images: int, split: str) -> tuple[int, int, int]:
    """Scale one of the paper's (train, val, test) splits to ``n_images`` images.

    Examples
    --------
    >>> split_sizes(664, "original")
    (601, 9, 54)
    >>> split_sizes(740, "80-10-10")
    (592, 74, 74)
    """
    if split not in PAPER_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(PAPER_SPLITS)}")
    train, val, test = PAPER_SPLITS[split]
    total = train + val + test
    n_val = max(1, round(n_images * val / total))
    n_test = max(1, round(n_images * test / total))
    n_train = n_images - n_val - n_test
    if n_train < 1:
        raise ValueError(f"{n_images} images are too few for the {split} split")
    return n_train, n_val, n_test


def _systematic_pick(order: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """Pick ``n`` evenly spaced items of ``order`` with a random start.

    With ``order`` grouped by stratum this is proportional stratified sampling.
    """
    if n <= 0:
        return []
    step = len(order) / n
    start = rng.uniform(0, step)
    return [order[int(start + k * step)] for k in range(n)]


def stratified_split(
    manifest: pd.DataFrame,
    split: str = "original",
    *,
    seed: int = 42,
    strata: Sequence[str] = ("modality", "density"),
) -> pd.DataFrame:
    """Assign each image to train, val or test, stratified by modality x density.

    Images are shuffled within their stratum (by ``seed``), strata are laid end to
    end, and test then validation images are drawn at evenly spaced positions, so
    each stratum contributes in proportion to its size.

    Parameters
    ----------
    manifest : DataFrame
        As made by :func:`build_manifest`.
    split : str
        One of :data:`SPLIT_NAMES`; sizes are scaled by :func:`split_sizes`.
    seed : int
        Seed of the shuffle: the same seed gives the same split.
    strata : sequence of str
        Manifest columns to stratify by.

    Returns
    -------
    DataFrame
        Columns ``image_id``, ``subset`` (train / val / test) and the strata, in
        the manifest's order.
    """
    n_train, n_val, n_test = split_sizes(len(manifest), split)
    rng = np.random.default_rng(seed)
    table = manifest[["image_id", *strata]].copy()
    # Keys are drawn in id order, so the split does not depend on the row order.
    order = np.argsort(table["image_id"].to_numpy(), kind="stable")
    keys = np.empty(len(table))
    keys[order] = rng.random(len(table))
    table["_key"] = keys
    ordered = table.sort_values([*strata, "_key"])["image_id"].tolist()
    test = set(_systematic_pick(ordered, n_test, rng))
    remaining = [i for i in ordered if i not in test]
    val = set(_systematic_pick(remaining, n_val, rng))
    table["subset"] = ["test" if i in test else "val" if i in val else "train" for i in table["image_id"]]
    result = table.drop(columns="_key")[["image_id", "subset", *strata]]
    counts = result["subset"].value_counts()
    assert (counts.get("train", 0), counts.get("val", 0), counts.get("test", 0)) == (n_train, n_val, n_test)
    return result.reset_index(drop=True)


def save_splits(manifest: pd.DataFrame, folder: str | os.PathLike[str], *, seed: int = 42) -> dict[str, Path]:
    """Write one CSV per paper split (``split-<name>.csv``) and return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name in SPLIT_NAMES:
        path = folder / f"split-{name}.csv"
        stratified_split(manifest, name, seed=seed).to_csv(path, index=False)
        paths[name] = path
    return paths


def load_split(path: str | os.PathLike[str]) -> dict[str, list[str]]:
    """Read a split CSV into ``{"train": [...], "val": [...], "test": [...]}``."""
    table = pd.read_csv(path)
    missing = {"image_id", "subset"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: split file lacks column(s) {', '.join(sorted(missing))}")
    return {name: table.loc[table["subset"] == name, "image_id"].tolist() for name in ("train", "val", "test")}


def split_file(out: str | os.PathLike[str], split: str) -> Path:
    """The split CSV ``<out>/splits/split-<split>.csv`` written by the data chapter."""
    return Path(out) / "splits" / f"split-{split}.csv"


def load_splits(
    out: str | os.PathLike[str], names: Sequence[str] = SPLIT_NAMES, *, test_limit: int | None = None
) -> dict[str, dict[str, list[str]]]:
    """Read several splits of an artefact folder, optionally keeping only the first test images.

    Parameters
    ----------
    out : path-like
        Artefact folder holding ``splits/split-<name>.csv``.
    names : sequence of str
        The splits to read, in this order.
    test_limit : int, optional
        Keep only the first ``test_limit`` test ids of each split (quick runs);
        ``None`` or 0 keeps them all.

    Returns
    -------
    dict
        ``{name: {"train": [...], "val": [...], "test": [...]}}``.
    """
    splits = {name: load_split(split_file(out, name)) for name in names}
    if test_limit:
        splits = {name: {**ids, "test": ids["test"][:test_limit]} for name, ids in splits.items()}
    return splits


def load_samples(ids: Iterable[str], root: str | os.PathLike[str] | None = None) -> dict[str, Sample]:
    """Load the samples of ``ids`` (each once, in first-seen order) as ``{image_id: Sample}``.

    The warning about overlapping masks is silenced: the data chapter reports them.

    Parameters
    ----------
    ids : iterable of str
        Image ids; repeats are loaded once.
    root : path-like, optional
        DSB-layout folder; defaults to :func:`nucleilib.data.data_root`.
    """
    from ..data import data_root, load_dataset

    wanted = list(dict.fromkeys(ids))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loaded = load_dataset(root if root is not None else data_root(), ids=wanted)
    return {s.image_id: s for s in loaded}


def load_split_samples(
    out: str | os.PathLike[str],
    split: str,
    *,
    root: str | os.PathLike[str] | None = None,
    test_limit: int | None = None,
) -> tuple[dict[str, list[str]], dict[str, Sample]]:
    """One split of an artefact folder and the samples of all its images.

    Parameters
    ----------
    out : path-like
        Artefact folder holding ``splits/split-<split>.csv``.
    split : str
        The split's name (one of :data:`SPLIT_NAMES`).
    root : path-like, optional
        DSB-layout folder; defaults to :func:`nucleilib.data.data_root`.
    test_limit : int, optional
        Keep only the first ``test_limit`` test ids.

    Returns
    -------
    ids : dict
        ``{"train": [...], "val": [...], "test": [...]}``.
    samples : dict
        ``{image_id: Sample}`` for every id of the split.
    """
    ids = load_splits(out, [split], test_limit=test_limit)[split]
    return ids, load_samples([i for part in ids.values() for i in part], root)


def load_manifest(out: str | os.PathLike[str]) -> pd.DataFrame:
    """The data chapter's ``manifest.csv`` of an artefact folder, indexed by image id."""
    return pd.read_csv(Path(out) / "manifest.csv").set_index("image_id")
