"""Nucleus shape, touching nuclei and image statistics (nucleilib.morphology)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk

from nucleilib.data import Sample
from nucleilib.morphology import eda_tables, image_statistics, nucleus_table, touching_labels

# --------------------------------------------------------------------------- shape


@pytest.mark.parametrize("radius", [20, 30, 40])
def test_circularity_of_a_large_disc_is_close_to_one(radius):
    labels = np.zeros((100, 100), np.uint16)
    labels[disk((50, 50), radius, shape=labels.shape)] = 1
    circularity = float(nucleus_table(labels)["circularity"].iloc[0])
    assert 0.9 < circularity <= 1.0


@pytest.mark.parametrize(("height", "width"), [(3, 80), (80, 3), (2, 50)])
def test_circularity_of_a_thin_rectangle_is_low(height, width):
    labels = np.zeros((100, 100), np.uint16)
    labels[10 : 10 + height, 10 : 10 + width] = 7
    table = nucleus_table(labels)
    assert table["label"].tolist() == [7]
    assert float(table["circularity"].iloc[0]) < 0.3


def test_circularity_orders_shapes():
    labels = np.zeros((120, 200), np.uint16)
    labels[disk((30, 30), 20, shape=labels.shape)] = 1  # disc
    labels[70:110, 10:50] = 2  # square
    labels[10:16, 80:190] = 3  # long thin bar
    table = nucleus_table(labels).set_index("label")
    assert table.loc[1, "circularity"] > table.loc[2, "circularity"] > 0.6 > table.loc[3, "circularity"]


def test_area_is_pixel_count_and_centroids(dsb):
    labels = np.zeros((64, 80), np.uint16)
    labels[disk((20, 20), 9, shape=labels.shape)] = 1
    labels[40:50, 50:75] = 2
    labels[5, 70] = 3  # a single pixel
    table = nucleus_table(labels)
    assert list(table.columns) == [
        "label",
        "area",
        "perimeter",
        "centroid_y",
        "centroid_x",
        "circularity",
        "touching",
    ]
    assert table["label"].tolist() == [1, 2, 3]
    for label, area in zip(table["label"], table["area"]):
        assert area == int((labels == label).sum())
    row = table.set_index("label").loc[2]
    assert (row["centroid_y"], row["centroid_x"]) == pytest.approx((44.5, 62.0))
    assert table["circularity"].between(0, 1).all()
    assert not table["touching"].any()


def test_nucleus_table_empty_and_wrong_shape():
    assert len(nucleus_table(np.zeros((8, 8), np.uint16))) == 0
    with pytest.raises(ValueError, match="2-D"):
        nucleus_table(np.zeros((8, 8, 3), np.uint16))


def test_nucleus_table_marks_touching_nuclei():
    labels = np.zeros((40, 40), np.uint16)
    labels[5:10, 5:10] = 1
    labels[5:10, 10:15] = 2  # shares an edge with 1
    labels[25:30, 25:30] = 3  # alone
    table = nucleus_table(labels).set_index("label")
    assert table["touching"].to_dict() == {1: True, 2: True, 3: False}


# --------------------------------------------------------------------------- touching


def _grid(rows: str) -> np.ndarray:
    """'1 2 0' style rows -> label array."""
    return np.array([[int(v) for v in row.split()] for row in rows.strip().splitlines()])


@pytest.mark.parametrize(
    ("grid", "expected"),
    [
        pytest.param("1 2", {1, 2}, id="horizontal"),
        pytest.param("1\n2", {1, 2}, id="vertical"),
        pytest.param("1 0\n0 2", {1, 2}, id="diagonal-down"),
        pytest.param("0 1\n2 0", {1, 2}, id="diagonal-up"),
        pytest.param("1 0 2", set(), id="gap-horizontal"),
        pytest.param("1\n0\n2", set(), id="gap-vertical"),
        pytest.param("1 0 0\n0 0 0\n0 0 2", set(), id="gap-diagonal"),
        pytest.param("1 1 0\n1 1 0\n0 0 0", set(), id="one-label"),
        pytest.param("1 0 0 2", set(), id="no-wrap-row"),
        pytest.param("1 0\n0 0\n0 2\n0 0", set(), id="no-wrap-knight"),
        pytest.param("2 0 0 0\n0 0 0 1", set(), id="no-wrap-edges"),
        pytest.param("1 2 0 3", {1, 2}, id="docstring"),
        pytest.param("1 1 0 0\n1 1 2 0\n0 0 0 0\n3 0 0 4", {1, 2}, id="mixed"),
        pytest.param("5 5 9\n0 0 9\n7 0 0", {5, 9}, id="large-ids"),
        pytest.param("0 0 0\n0 0 0", set(), id="empty"),
    ],
)
def test_touching_labels(grid, expected):
    labels = _grid(grid).astype(np.uint16)
    assert touching_labels(labels) == expected
    # Transposing and flipping do not change which nuclei touch.
    assert touching_labels(labels.T.copy()) == expected
    assert touching_labels(labels[::-1, ::-1].copy()) == expected


def test_touching_labels_matches_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = rng.choice([0, 0, 0, 1, 2, 3, 4], size=(9, 11)).astype(np.uint16)
        expected = set()
        h, w = labels.shape
        for y in range(h):
            for x in range(w):
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        yy, xx = y + dy, x + dx
                        if 0 <= yy < h and 0 <= xx < w:
                            a, b = labels[y, x], labels[yy, xx]
                            if a and b and a != b:
                                expected |= {int(a), int(b)}
        assert touching_labels(labels) == expected


def test_touching_labels_returns_python_ints():
    found = touching_labels(np.array([[1, 2]], np.uint16))
    assert all(type(v) is int for v in found)


# --------------------------------------------------------------------------- image statistics


@pytest.mark.parametrize("value", [1, 128, 255])
def test_image_statistics_flat_image(value):
    stats = image_statistics(np.full((32, 32, 3), value, np.uint8))
    assert stats["contrast"] == pytest.approx(0.0, abs=1e-9)
    assert stats["mean_intensity"] == pytest.approx(value / 255)


def test_image_statistics_black_image():
    stats = image_statistics(np.zeros((16, 16, 3), np.uint8))
    assert stats == {"contrast": 0.0, "mean_intensity": 0.0}


@pytest.mark.parametrize("grey", [False, True])
def test_image_statistics_half_black_half_white(grey):
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    stats = image_statistics(image[..., 0] if grey else image)
    assert stats["contrast"] == pytest.approx(1.0)
    assert stats["mean_intensity"] == pytest.approx(0.5)


def test_image_statistics_michelson():
    image = np.zeros((10, 10, 3), np.uint8)
    image[:5] = 51  # 0.2
    image[5:] = 153  # 0.6
    stats = image_statistics(image)
    assert stats["contrast"] == pytest.approx((0.6 - 0.2) / (0.6 + 0.2), rel=1e-5)
    assert stats["mean_intensity"] == pytest.approx(0.4, rel=1e-5)


def test_image_statistics_averages_channels():
    image = np.zeros((4, 4, 3), np.uint8)
    image[..., 0] = 255
    assert image_statistics(image)["mean_intensity"] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- EDA tables


def _synthetic_samples(dsb) -> list[Sample]:
    shape = (48, 64)
    alone = np.zeros(shape, np.uint16)
    alone[dsb.disc_mask(shape, 12, 12, 5)] = 1
    alone[dsb.disc_mask(shape, 30, 45, 7)] = 2

    touching = np.zeros(shape, np.uint16)
    touching[10:20, 10:20] = 1
    touching[10:20, 20:30] = 2  # touches 1
    touching[35:45, 50:60] = 3

    empty = np.zeros((20, 30), np.uint16)
    return [
        Sample("alone", dsb.draw_rgb("fluorescence", shape), alone),
        Sample("touching", dsb.draw_rgb("stained", shape), touching),
        Sample("empty", np.full((20, 30, 3), 200, np.uint8), empty),
    ]


def test_eda_tables(dsb):
    samples = _synthetic_samples(dsb)
    images, nuclei = eda_tables(samples)

    assert list(images.columns) == [
        "image_id",
        "height",
        "width",
        "nuclei",
        "touching_nuclei",
        "has_touching",
        "foreground_fraction",
        "contrast",
        "mean_intensity",
    ]
    assert images["image_id"].tolist() == ["alone", "touching", "empty"]
    assert images["height"].tolist() == [48, 48, 20]
    assert images["width"].tolist() == [64, 64, 30]
    assert images["nuclei"].tolist() == [2, 3, 0]
    assert images["touching_nuclei"].tolist() == [0, 2, 0]
    assert images["has_touching"].tolist() == [False, True, False]
    for sample, fraction in zip(samples, images["foreground_fraction"]):
        assert fraction == pytest.approx((sample.labels > 0).mean())
    assert images.loc[2, "contrast"] == pytest.approx(0.0)
    assert images.loc[2, "mean_intensity"] == pytest.approx(200 / 255)

    assert list(nuclei.columns) == [
        "image_id",
        "label",
        "area",
        "perimeter",
        "centroid_y",
        "centroid_x",
        "circularity",
        "touching",
    ]
    assert len(nuclei) == images["nuclei"].sum() == 5
    assert nuclei["image_id"].tolist() == ["alone"] * 2 + ["touching"] * 3
    touching = nuclei[nuclei["image_id"] == "touching"].set_index("label")
    assert touching["touching"].to_dict() == {1: True, 2: True, 3: False}
    assert touching["area"].tolist() == [100, 100, 100]
    per_image = nuclei.groupby("image_id")["area"].sum()
    for sample in samples[:2]:
        assert per_image[sample.image_id] == int((sample.labels > 0).sum())


def test_eda_tables_empty():
    images, nuclei = eda_tables([])
    assert isinstance(images, pd.DataFrame) and isinstance(nuclei, pd.DataFrame)
    assert len(images) == 0 and len(nuclei) == 0
