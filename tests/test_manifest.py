"""Modality classification, density bins and stratified splits (nucleilib.study.manifest)."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from nucleilib.data import Sample, load_dataset
from nucleilib.study.manifest import (
    DENSITY_BINS,
    MODALITIES,
    PAPER_SPLITS,
    SPLIT_NAMES,
    build_manifest,
    classify_modality,
    density_bins,
    load_split,
    save_splits,
    split_sizes,
    stratified_split,
)

# --------------------------------------------------------------------------- modality


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("fluorescence", "fluorescence"), ("brightfield", "brightfield"), ("stained", "stained tissue")],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_classify_modality_synthetic(dsb, kind, expected, seed):
    image = dsb.draw_rgb(kind, (96, 128), seed=seed)
    assert classify_modality(image) == expected


def test_classify_modality_many_bright_nuclei_stay_fluorescence(dsb):
    # Dense fluorescence: a third of the image is bright, the background stays dark.
    discs = [(y, x, 6) for y in range(8, 64, 16) for x in range(8, 64, 16)]
    image = dsb.draw_rgb("fluorescence", (64, 64), discs)
    assert 0.25 < (image[..., 0] > 100).mean() < 0.5
    assert classify_modality(image) == "fluorescence"


@pytest.mark.parametrize(
    ("value", "expected"), [(0, "fluorescence"), (120, "fluorescence"), (140, "brightfield"), (255, "brightfield")]
)
def test_classify_modality_flat_grey(value, expected):
    assert classify_modality(np.full((16, 16, 3), value, np.uint8)) == expected


def test_classify_modality_faint_colour_cast_is_grey():
    image = np.full((16, 16, 3), 30, np.uint8)
    image[..., 2] += 2  # 0.008 on the 0-1 scale, below the colour threshold
    assert classify_modality(image) == "fluorescence"


@pytest.mark.parametrize("shape", [(16, 16), (16, 16, 4), (16, 16, 1)])
def test_classify_modality_rejects_non_rgb(shape):
    with pytest.raises(ValueError, match="expected an RGB image"):
        classify_modality(np.zeros(shape, np.uint8))


# --------------------------------------------------------------------------- density


def test_density_bins_terciles():
    counts = list(range(1, 10))
    bins = density_bins(counts)
    assert bins == ["sparse"] * 3 + ["medium"] * 3 + ["dense"] * 3


def test_density_bins_keep_input_order_and_balance():
    rng = np.random.default_rng(3)
    counts = rng.permutation(np.arange(300))
    bins = density_bins(counts)
    assert Counter(bins) == {"sparse": 100, "medium": 100, "dense": 100}
    for count, label in zip(counts, bins):
        expected = "sparse" if count < 100 else "medium" if count < 200 else "dense"
        assert label == expected


def test_density_bins_monotone():
    counts = np.random.default_rng(0).integers(0, 500, size=200)
    rank = {name: i for i, name in enumerate(DENSITY_BINS)}
    pairs = sorted(zip(counts, (rank[b] for b in density_bins(counts))))
    assert [r for _, r in pairs] == sorted(r for _, r in pairs)


def test_density_bins_edge_cases():
    assert density_bins([]) == []
    tied = density_bins(np.array([5, 5, 5, 5]))
    assert len(tied) == 4 and len(set(tied)) == 1
    assert set(density_bins([7])) <= set(DENSITY_BINS)


# --------------------------------------------------------------------------- split sizes


@pytest.mark.parametrize("split", SPLIT_NAMES)
def test_split_sizes_paper_counts_at_740(split):
    assert split_sizes(740, split) == PAPER_SPLITS[split]


@pytest.mark.parametrize("split", SPLIT_NAMES)
@pytest.mark.parametrize("n", [20, 37, 100, 300, 664, 740, 1000])
def test_split_sizes_sum_and_proportions(split, n):
    train, val, test = split_sizes(n, split)
    assert train + val + test == n
    assert min(train, val, test) >= 1
    paper = PAPER_SPLITS[split]
    total = sum(paper)
    assert abs(val - n * paper[1] / total) <= 1
    assert abs(test - n * paper[2] / total) <= 1


def test_split_sizes_documented_example():
    assert split_sizes(664, "original") == (601, 9, 54)
    assert split_sizes(664, "80-10-10") == (532, 66, 66)


def test_split_sizes_errors():
    with pytest.raises(ValueError, match="unknown split 'bogus'"):
        split_sizes(100, "bogus")
    with pytest.raises(ValueError, match="too few"):
        split_sizes(2, "original")


# --------------------------------------------------------------------------- stratified split

#: Stratum sizes (modality, density) -> count of the synthetic manifest: unequal on purpose.
STRATA = {
    ("fluorescence", "sparse"): 70,
    ("fluorescence", "medium"): 60,
    ("fluorescence", "dense"): 50,
    ("brightfield", "sparse"): 12,
    ("brightfield", "medium"): 10,
    ("brightfield", "dense"): 11,
    ("stained tissue", "sparse"): 25,
    ("stained tissue", "medium"): 30,
    ("stained tissue", "dense"): 32,
}


@pytest.fixture
def manifest() -> pd.DataFrame:
    rows = []
    for (modality, density), count in STRATA.items():
        for _ in range(count):
            rows.append({"modality": modality, "density": density})
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
    table.insert(0, "image_id", [f"id{i:04d}" for i in range(len(table))])
    table["nuclei"] = np.arange(len(table))
    return table


@pytest.mark.parametrize("split", SPLIT_NAMES)
def test_stratified_split_sizes_and_cover(manifest, split):
    result = stratified_split(manifest, split, seed=0)
    assert list(result.columns) == ["image_id", "subset", "modality", "density"]
    # Every image exactly once, in the manifest's order, strata carried over.
    assert result["image_id"].tolist() == manifest["image_id"].tolist()
    assert result["modality"].tolist() == manifest["modality"].tolist()
    assert set(result["subset"]) == {"train", "val", "test"}
    counts = result["subset"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == split_sizes(len(manifest), split)
    groups = [set(result.loc[result["subset"] == s, "image_id"]) for s in ("train", "val", "test")]
    assert sum(len(g) for g in groups) == len(manifest)
    assert set().union(*groups) == set(manifest["image_id"])


def test_stratified_split_deterministic_per_seed(manifest):
    first = stratified_split(manifest, "80-10-10", seed=7)
    again = stratified_split(manifest, "80-10-10", seed=7)
    pd.testing.assert_frame_equal(first, again)
    other = stratified_split(manifest, "80-10-10", seed=8)
    assert set(other.loc[other["subset"] == "test", "image_id"]) != set(
        first.loc[first["subset"] == "test", "image_id"]
    )
    assert set(other.loc[other["subset"] == "val", "image_id"]) != set(first.loc[first["subset"] == "val", "image_id"])


@pytest.mark.parametrize("split", SPLIT_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 42])
def test_stratified_split_is_proportional(manifest, split, seed):
    k = 5
    result = stratified_split(manifest, split, seed=seed)
    n = len(result)
    _, n_val, n_test = split_sizes(n, split)
    table = pd.crosstab([result["modality"], result["density"]], result["subset"])
    for subset in ("train", "val", "test"):
        if subset not in table:
            table[subset] = 0
    for stratum, size in STRATA.items():
        row = table.loc[stratum]
        assert row.sum() == size
        if size >= k:
            assert row["train"] >= 1, stratum
        # Systematic sampling over strata laid end to end: within one of the share.
        assert abs(row["test"] - size * n_test / n) < 1 + 1e-9, (stratum, row["test"])
        assert abs(row["val"] - size * n_val / n) < 2 + 1e-9, (stratum, row["val"])


def test_stratified_split_beats_chance_on_a_small_stratum():
    # 200 fluorescence and 20 brightfield images, 10 % test: exactly 2 brightfield in test.
    table = pd.DataFrame(
        {
            "image_id": [f"i{i}" for i in range(220)],
            "modality": ["fluorescence"] * 200 + ["brightfield"] * 20,
            "density": ["medium"] * 220,
        }
    )
    for seed in range(10):
        result = stratified_split(table, "80-10-10", seed=seed)
        test = result[result["subset"] == "test"]
        assert len(test) == 22
        assert (test["modality"] == "brightfield").sum() == 2


def test_stratified_split_custom_strata(manifest):
    result = stratified_split(manifest, "original", seed=0, strata=("modality",))
    assert list(result.columns) == ["image_id", "subset", "modality"]


# --------------------------------------------------------------------------- saving and loading


def test_save_and_load_splits_round_trip(manifest, tmp_path):
    paths = save_splits(manifest, tmp_path / "splits", seed=11)
    assert set(paths) == set(SPLIT_NAMES)
    for name, path in paths.items():
        assert path == tmp_path / "splits" / f"split-{name}.csv"
        loaded = load_split(path)
        assert set(loaded) == {"train", "val", "test"}
        expected = stratified_split(manifest, name, seed=11)
        for subset in ("train", "val", "test"):
            assert loaded[subset] == expected.loc[expected["subset"] == subset, "image_id"].tolist()
        assert tuple(len(loaded[s]) for s in ("train", "val", "test")) == split_sizes(len(manifest), name)


def test_load_split_groups_by_subset(tmp_path):
    path = tmp_path / "split.csv"
    pd.DataFrame(
        {"image_id": ["a", "b", "c", "d"], "subset": ["train", "test", "val", "train"], "modality": list("wxyz")}
    ).to_csv(path, index=False)
    assert load_split(path) == {"train": ["a", "d"], "val": ["c"], "test": ["b"]}


@pytest.mark.parametrize(
    ("columns", "missing"),
    [(["image_id"], "subset"), (["subset"], "image_id"), (["id", "split"], "image_id, subset")],
)
def test_load_split_missing_columns(tmp_path, columns, missing):
    path = tmp_path / "bad.csv"
    pd.DataFrame({c: ["x", "y"] for c in columns}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"lacks column\\(s\\) {missing}") as excinfo:
        load_split(path)
    assert str(path) in str(excinfo.value)


# --------------------------------------------------------------------------- manifest


def test_build_manifest_synthetic(dsb):
    samples = []
    for i, (kind, n_discs) in enumerate([("fluorescence", 1), ("brightfield", 2), ("stained", 3)]):
        image = dsb.draw_rgb(kind, (48, 40), seed=i)
        labels = np.zeros((48, 40), np.uint16)
        for k in range(1, n_discs + 1):
            labels[dsb.disc_mask((48, 40), 10 * k, 20, 4)] = k
        samples.append(Sample(f"s{i}", image, labels))
    manifest = build_manifest(samples)
    assert list(manifest.columns) == ["image_id", "height", "width", "channels", "modality", "nuclei", "density"]
    assert manifest["image_id"].tolist() == ["s0", "s1", "s2"]
    assert manifest["height"].tolist() == [48] * 3 and manifest["width"].tolist() == [40] * 3
    assert manifest["channels"].tolist() == [1, 1, 3]
    assert manifest["modality"].tolist() == ["fluorescence", "brightfield", "stained tissue"]
    assert manifest["nuclei"].tolist() == [1, 2, 3]
    assert manifest["density"].tolist() == ["sparse", "medium", "dense"]


def test_build_manifest_empty():
    manifest = build_manifest([])
    assert len(manifest) == 0 and "density" in manifest.columns


@pytest.mark.realdata
def test_build_manifest_real(real_data_root):
    ids = sorted(p.name for p in real_data_root.iterdir() if p.is_dir())[::16][:40]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        samples = load_dataset(real_data_root, ids=ids)
    manifest = build_manifest(samples)
    assert len(manifest) == 40
    assert manifest["image_id"].tolist() == ids
    assert set(manifest["modality"]) <= set(MODALITIES)
    assert "fluorescence" in set(manifest["modality"])
    assert set(manifest["density"]) == set(DENSITY_BINS)
    assert set(manifest["channels"]) <= {1, 3}
    # Grey images can never be stained tissue; colour ones are.
    grey = manifest["channels"] == 1
    assert (manifest.loc[grey, "modality"] != "stained tissue").all()
    assert (manifest.loc[~grey, "modality"] == "stained tissue").all()
    for sample, row in zip(samples, manifest.itertuples()):
        assert (row.height, row.width) == sample.image.shape[:2]
        assert row.nuclei == sample.labels.max() > 0
    # Denser bins hold more nuclei.
    medians = manifest.groupby("density")["nuclei"].median()
    assert medians["sparse"] < medians["medium"] < medians["dense"]
