"""The data chapter's measurements (nucleilib.study.eda): known answers on small tables."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from nucleilib.data import Sample, load_dataset
from nucleilib.morphology import eda_tables
from nucleilib.study import eda
from nucleilib.study import manifest as mf


def _sample(image_id: str, n_nuclei: int, overlapping: int = 0) -> Sample:
    labels = np.zeros((8, 8), np.uint16)
    for k in range(1, n_nuclei + 1):
        labels[k - 1, 0] = k
    return Sample(image_id, np.zeros((8, 8, 3), np.uint8), labels, overlapping)


# --------------------------------------------------------------------------- loading


def test_pick_ids_keeps_everything_without_a_limit() -> None:
    ids = ["c", "a", "b"]
    assert eda.pick_ids(ids, None, seed=1) == ["c", "a", "b"]
    assert eda.pick_ids(ids, 3, seed=1) == ["c", "a", "b"]
    assert eda.pick_ids(ids, 10, seed=1) == ["c", "a", "b"]


def test_pick_ids_draws_a_sorted_seeded_subset() -> None:
    ids = [f"img{i:02d}" for i in range(20)]
    picked = eda.pick_ids(ids, 5, seed=42)
    assert len(picked) == len(set(picked)) == 5
    assert picked == sorted(picked) and set(picked) <= set(ids)
    assert picked == eda.pick_ids(ids, 5, seed=42)
    expected = sorted(np.random.default_rng(42).choice(ids, size=5, replace=False).tolist())
    assert picked == expected
    assert any(eda.pick_ids(ids, 5, seed=s) != picked for s in range(1, 5))


def test_overlap_table_lists_only_images_with_overlaps() -> None:
    samples = [_sample("a", 3), _sample("b", 2, overlapping=1), _sample("c", 4, overlapping=2)]
    table = eda.overlap_table(samples)
    assert list(table.columns) == ["image_id", "overlapping masks", "nuclei"]
    assert table.values.tolist() == [["b", 1, 2], ["c", 2, 4]]
    assert len(eda.overlap_table([_sample("a", 1)])) == 0


def test_add_modality_joins_the_manifest() -> None:
    manifest = pd.DataFrame(
        {
            "image_id": ["a", "b"],
            "modality": ["brightfield", "fluorescence"],
            "density": ["sparse", "dense"],
            "nuclei": [1, 2],
        }
    )
    images = pd.DataFrame({"image_id": ["b", "a"], "nuclei": [2, 1]})
    nuclei = pd.DataFrame({"image_id": ["a", "b", "b"], "area": [5, 6, 7]})
    images, nuclei = eda.add_modality(images, nuclei, manifest)
    assert images.to_dict("list") == {
        "image_id": ["b", "a"],
        "nuclei": [2, 1],
        "modality": ["fluorescence", "brightfield"],
        "density": ["dense", "sparse"],
    }
    assert nuclei["modality"].tolist() == ["brightfield", "fluorescence", "fluorescence"]
    assert "density" not in nuclei.columns


# --------------------------------------------------------------------------- manifest section


MANIFEST = pd.DataFrame(
    {
        "image_id": ["a", "b", "c", "d", "e"],
        "height": [256, 256, 520, 256, 1200],
        "width": [256, 256, 696, 256, 1000],
        "modality": ["fluorescence", "brightfield", "fluorescence", "fluorescence", "stained tissue"],
        "nuclei": [10, 20, 30, 40, 50],
    }
)


def test_size_counts_counts_sizes_by_modality_most_frequent_first() -> None:
    sizes = eda.size_counts(MANIFEST)
    assert sizes.index[0] == "256 x 256"
    assert sizes.loc["256 x 256"].to_dict() == {"brightfield": 1, "fluorescence": 2, "stained tissue": 0}
    assert sizes.loc["520 x 696", "fluorescence"] == 1
    assert sizes.loc["1200 x 1000", "stained tissue"] == 1
    assert int(sizes.to_numpy().sum()) == len(MANIFEST)


def test_modality_facts() -> None:
    assert eda.modality_facts(MANIFEST) == {
        "n_images": 5,
        "n_nuclei": 150,
        "n_fluorescence": 3,
        "n_brightfield": 1,
        "n_tissue": 1,
        "min_side": 256,
        "max_side": 1200,
    }
    only_fluo = MANIFEST[MANIFEST["modality"] == "fluorescence"]
    facts = eda.modality_facts(only_fluo)
    assert (facts["n_brightfield"], facts["n_tissue"], facts["max_side"]) == (0, 0, 696)


# --------------------------------------------------------------------------- per-section summaries


def test_count_summary() -> None:
    summary = eda.count_summary(pd.DataFrame({"nuclei": [1, 2, 6]}))
    assert list(summary) == ["count_mean", "count_sd", "count_median"]
    assert summary["count_mean"] == 3.0
    assert summary["count_sd"] == pytest.approx(math.sqrt(7))  # sample SD: ((4 + 1 + 9) / 2) ** 0.5
    assert summary["count_median"] == 2.0


def test_shape_summary_on_a_known_table() -> None:
    # area 1..101: 5th/95th percentiles 6 and 96, median 51, 38 values within 8-45;
    # circularity 0.00..1.00: 5th/95th percentiles 0.05 and 0.95, 31 values within 0.6-0.9.
    nuclei = pd.DataFrame({"area": np.arange(1, 102), "circularity": np.linspace(0, 1, 101)})
    summary = eda.shape_summary(nuclei)
    assert list(summary) == [
        "area_median",
        "area_p5",
        "area_p95",
        "circ_median",
        "circ_p5",
        "circ_p95",
        "area_in_paper_pct",
        "circ_in_paper_pct",
    ]
    assert all(type(v) is float for v in summary.values())
    assert (summary["area_median"], summary["area_p5"], summary["area_p95"]) == (51.0, 6.0, 96.0)
    assert summary["circ_median"] == pytest.approx(0.5)
    assert (summary["circ_p5"], summary["circ_p95"]) == pytest.approx((0.05, 0.95))
    assert summary["area_in_paper_pct"] == pytest.approx(100 * 38 / 101)
    assert summary["circ_in_paper_pct"] == pytest.approx(100 * 31 / 101)
    narrow = eda.shape_summary(nuclei, area_range=(1, 1), circularity_range=(2, 3))
    assert narrow["area_in_paper_pct"] == pytest.approx(100 / 101) and narrow["circ_in_paper_pct"] == 0.0


def test_intensity_summary() -> None:
    images = pd.DataFrame({"contrast": np.linspace(0, 1, 11), "mean_intensity": np.linspace(0.2, 0.4, 11)})
    summary = eda.intensity_summary(images)
    assert list(summary) == ["contrast_p5", "contrast_p95", "intensity_p5", "intensity_p95"]
    assert [summary[k] for k in summary] == pytest.approx([0.05, 0.95, 0.21, 0.39])


def test_touching_share_and_summary() -> None:
    images = pd.DataFrame(
        {"nuclei": [10, 20, 4, 0], "touching_nuclei": [1, 1, 0, 0], "has_touching": [True, True, False, False]}
    )
    assert eda.touching_share(images).tolist() == pytest.approx([0.1, 0.05, 0.0, 0.0])
    nuclei = pd.DataFrame({"touching": [True, True] + [False] * 32})
    summary = eda.touching_summary(images, nuclei)
    assert summary == pytest.approx({"touch_any_pct": 50.0, "touch_10_pct": 25.0, "nuclei_touching_pct": 100 * 2 / 34})
    assert eda.touching_summary(images, nuclei, significant=0.05)["touch_10_pct"] == 50.0


# --------------------------------------------------------------------------- examples and splits


def test_example_ids_draws_per_modality_in_a_fixed_order() -> None:
    picks = eda.example_ids(MANIFEST, seed=0, per_modality=2)
    assert list(picks) == ["fluorescence", "brightfield", "stained tissue"]
    assert len(picks["fluorescence"]) == 2 and set(picks["fluorescence"]) <= {"a", "c", "d"}
    assert picks["brightfield"] == ["b"] and picks["stained tissue"] == ["e"]
    assert picks == eda.example_ids(MANIFEST, seed=0)
    assert list(eda.example_ids(MANIFEST.iloc[:2], seed=0)) == ["fluorescence", "brightfield"]
    assert all(len(v) == 1 for v in eda.example_ids(MANIFEST, seed=3, per_modality=1).values())


def test_split_counts_reads_each_split_file(tmp_path) -> None:
    rows = [
        ("a", "train", "fluorescence"),
        ("b", "train", "brightfield"),
        ("c", "test", "fluorescence"),
        ("d", "val", "fluorescence"),
    ]
    paths = {}
    for name, subset_rows in (("one", rows), ("two", rows[:3])):
        path = tmp_path / f"split-{name}.csv"
        pd.DataFrame(subset_rows, columns=["image_id", "subset", "modality"]).to_csv(path, index=False)
        paths[name] = path
    table = eda.split_counts(paths)
    assert table.index.names == ["split", "subset"]
    assert list(table.columns) == ["brightfield", "fluorescence", "total"]
    assert table.loc[("one", "train")].tolist() == [1, 1, 2]
    assert table.loc[("one", "val")].tolist() == [0, 1, 1]
    assert table.loc[("two", "test")].tolist() == [0, 1, 1]
    assert ("two", "val") not in table.index


# --------------------------------------------------------------------------- the claims table


def _claims_inputs():
    manifest = pd.DataFrame({"height": [256, 512, 1200, 256], "width": [256, 640, 1000, 320]})
    images = pd.DataFrame(
        {
            "nuclei": [10, 20, 30, 40],
            "touching_nuclei": [0, 1, 6, 10],
            "has_touching": [False, True, True, True],
            "contrast": [0.1, 0.5, 0.9, 0.95],
            "mean_intensity": [0.1, 0.2, 0.5, 0.9],
        }
    )
    nuclei = pd.DataFrame({"area": np.arange(1, 102), "circularity": np.linspace(0, 1, 101)})
    return manifest, images, nuclei


def test_claims_tables_numbers() -> None:
    _, numbers = eda.claims_tables(*_claims_inputs())
    assert list(numbers) == [
        "n_images",
        "sizes_share_within_256_1024",
        "count_mean",
        "count_sd",
        "area_p5",
        "area_p95",
        "area_share_in_paper",
        "circularity_p5",
        "circularity_p95",
        "circularity_share_in_paper",
        "contrast_p5",
        "contrast_p95",
        "contrast_share_in_paper",
        "intensity_p5",
        "intensity_p95",
        "intensity_share_in_paper",
        "touching_any_share",
        "touching_10_share",
    ]
    assert all(type(v) is float for v in numbers.values())
    assert numbers["n_images"] == 4.0
    assert numbers["sizes_share_within_256_1024"] == 0.75  # the 1200-pixel side is outside
    assert numbers["count_mean"] == 25.0 and numbers["count_sd"] == pytest.approx(12.909944, abs=1e-6)
    assert (numbers["area_p5"], numbers["area_p95"]) == (6.0, 96.0)
    assert numbers["area_share_in_paper"] == pytest.approx(38 / 101)
    assert numbers["circularity_share_in_paper"] == pytest.approx(31 / 101)
    assert numbers["contrast_share_in_paper"] == 0.5  # 0.5 and 0.9 (bounds included)
    assert numbers["intensity_share_in_paper"] == 0.5  # 0.2 and 0.5
    assert numbers["touching_any_share"] == 0.75
    assert numbers["touching_10_share"] == 0.5  # 6/30 and 10/40; 1/20 is below 10%
    assert json.loads(json.dumps(numbers)) == numbers


def test_claims_tables_text() -> None:
    claims, _ = eda.claims_tables(*_claims_inputs())
    assert list(claims.columns) == ["quantity", "seed paper", "measured (4 images)"]
    assert claims["quantity"].tolist() == [
        "image sizes",
        "nuclei per image",
        "nucleus area",
        "circularity",
        "normalised contrast",
        "mean intensity",
        "images with touching nuclei",
    ]
    measured = dict(zip(claims["quantity"], claims["measured (4 images)"]))
    assert measured["image sizes"] == "256x256 to 1200x1000 (H x W)"
    assert measured["nuclei per image"] == "25.0 +/- 12.9"
    assert measured["nucleus area"] == "5th-95th pct 6-96 px; 37.6% in 8-45"
    assert measured["circularity"] == "5th-95th pct 0.05-0.95; 30.7% in 0.6-0.9"
    assert measured["images with touching nuclei"] == "75.0% (any), 50.0% (>= 10% of nuclei)"
    assert claims.loc[1, "seed paper"] == "71 +/- 9 (mean +/- SD)"


def test_section_summaries_agree_with_the_claims(dsb) -> None:
    """On synthetic DSB folders, the glued section numbers and the claims files say the same."""
    root = dsb.dataset(6)
    samples = load_dataset(root)
    manifest = mf.build_manifest(samples)
    images, nuclei = eda.add_modality(*eda_tables(samples), manifest)
    _, numbers = eda.claims_tables(manifest, images, nuclei)
    shape = eda.shape_summary(nuclei)
    counts = eda.count_summary(images)
    assert numbers["n_images"] == 6 == eda.modality_facts(manifest)["n_images"]
    assert numbers["count_mean"] == counts["count_mean"] == pytest.approx(2.0)  # 1, 2, 3, 1, 2, 3 discs
    assert numbers["area_p5"] == shape["area_p5"] and numbers["area_p95"] == shape["area_p95"]
    assert 100 * numbers["area_share_in_paper"] == pytest.approx(shape["area_in_paper_pct"])
    assert numbers["touching_any_share"] == 0.0 == eda.touching_summary(images, nuclei)["touch_any_pct"]
    assert eda.intensity_summary(images)["contrast_p5"] == numbers["contrast_p5"]
