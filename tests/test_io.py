"""nucleilib.io: writing label images, images and tables without half-written files, and
naming outputs (reading is covered by tests/test_data.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nucleilib import io
from nucleilib.errors import DatasetError
from nucleilib.io import (
    IMAGE_SUFFIXES,
    LABEL_FORMATS,
    as_rgb8,
    find_images,
    read_raw,
    unique_stems,
    write_image,
    write_labels,
    write_table,
)


def labels_with(n: int, shape: tuple[int, int] = (40, 60)) -> np.ndarray:
    """``n`` one-pixel nuclei plus a square of label ``n`` (int32), in raster order."""
    labels = np.zeros(shape, np.int32)
    flat = labels.reshape(-1)
    flat[: n - 1] = np.arange(1, n)
    labels[20:30, 20:30] = n
    return labels


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "partial" in p.name)


# --------------------------------------------------------------------------- write_labels


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".PNG"])
def test_write_labels_round_trip(tmp_path: Path, suffix: str) -> None:
    labels = labels_with(300)
    labels[0, 0] = 65535  # the largest label a uint16 image holds
    path = write_labels(labels, tmp_path / f"x_labels{suffix}")
    assert path == tmp_path / f"x_labels{suffix}" and path.is_file()
    back = read_raw(path)
    assert back.dtype == np.uint16 and back.shape == labels.shape
    np.testing.assert_array_equal(back, labels)
    assert leftovers(tmp_path) == []


def test_write_labels_tiff_is_compressed(tmp_path: Path) -> None:
    import tifffile

    path = write_labels(labels_with(5, (256, 256)), tmp_path / "x.tif")
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].compression.name in ("ADOBE_DEFLATE", "DEFLATE")
    assert path.stat().st_size < 256 * 256 * 2 / 4


def test_write_labels_refuses_too_many_nuclei_naming_the_path(tmp_path: Path) -> None:
    labels = labels_with(3)
    labels[5, 5] = 70_000
    target = tmp_path / "crowded_labels.png"
    with pytest.raises(ValueError, match="70000 nuclei do not fit a uint16 label image") as caught:
        write_labels(labels, target)
    assert str(target) in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("labels", "name", "match"),
    [
        (np.zeros((4, 4, 3), np.int32), "x.png", "must be 2-D"),
        (np.zeros((4, 4), np.int32), "x.jpg", r"\.png or \.tif"),
        (np.zeros((4, 4), np.int32), "x", r"\.png or \.tif"),
    ],
)
def test_write_labels_refuses_bad_shapes_and_suffixes(tmp_path: Path, labels, name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_labels(labels, tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_write_labels_of_an_empty_segmentation(tmp_path: Path) -> None:
    path = write_labels(np.zeros((8, 9), np.uint8), tmp_path / "none.png")
    assert read_raw(path).max() == 0 and read_raw(path).shape == (8, 9)


def test_label_formats_are_the_suffixes_written() -> None:
    assert LABEL_FORMATS == ("png", "tif")


# --------------------------------------------------------------------------- atomic writes


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_partial_one(tmp_path: Path, monkeypatch, suffix: str) -> None:
    import tifffile

    target = tmp_path / f"x_labels{suffix}"
    write_labels(labels_with(2), target)
    before = target.read_bytes()

    def half_written(path, *args, **kwargs):
        Path(path).write_bytes(b"half an image")
        raise OSError("disk full")

    if suffix == ".png":
        monkeypatch.setattr(Image.Image, "save", lambda self, path, *a, **k: half_written(path))
    else:
        monkeypatch.setattr(tifffile, "imwrite", half_written)
    with pytest.raises(OSError, match="disk full"):
        write_labels(labels_with(7), target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_an_interrupted_table_write_leaves_nothing(tmp_path: Path) -> None:
    class Broken:
        def to_csv(self, path, index):
            Path(path).write_text("image,nuclei\n")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_table(Broken(), tmp_path / "summary.csv")
    assert list(tmp_path.iterdir()) == []


def test_write_image_and_write_table(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    path = write_image(rgb, tmp_path / "overlay.png")
    np.testing.assert_array_equal(read_raw(path), rgb)
    frame = pd.DataFrame({"image": ["a.png", "b.png"], "nuclei": [3, 0]})
    table = write_table(frame, tmp_path / "summary.csv")
    pd.testing.assert_frame_equal(pd.read_csv(table), frame)
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- file names


def test_unique_stems_numbers_repeats_in_order() -> None:
    files = [Path("a/x.png"), Path("b/x.png"), Path("c/y.tif"), Path("d/x.jpg")]
    assert unique_stems(files) == ["x", "x-2", "y", "x-3"]
    assert unique_stems([]) == []


def test_unique_stems_never_repeats_a_name() -> None:
    # A file already called x-2 must not collide with the second x.
    cases = [
        [Path("a/x.png"), Path("b/x.png"), Path("c/x-2.png")],
        [Path("c/x-2.png"), Path("a/x.png"), Path("b/x.png")],
        [Path("a/x.png"), Path("b/x-2.png"), Path("c/x.png"), Path("d/x-2.png")],
    ]
    for files in cases:
        names = unique_stems(files)
        assert len(set(names)) == len(files), names
        assert names[0] == files[0].stem
        for name, path in zip(names, files):
            assert name == path.stem or name.startswith(path.stem + "-"), (name, path)


def test_find_images_by_suffix_sorted_and_recursive(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.tif", "c.jpeg", "notes.txt", "sub/d.png", "sub/e.csv"):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    assert [p.name for p in find_images(tmp_path)] == ["a.tif", "b.PNG", "c.jpeg"]
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path, recursive=True)] == [
        "a.tif",
        "b.PNG",
        "c.jpeg",
        "sub/d.png",
    ]
    assert set(IMAGE_SUFFIXES) == {".png", ".tif", ".tiff", ".jpg", ".jpeg"}


# --------------------------------------------------------------------------- as_rgb8


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((2, 3), 7, np.uint8), 7),
        (np.full((2, 3, 1), 7, np.uint8), 7),
        (np.full((2, 3, 2), 7, np.uint8), 7),  # grey + alpha
        (np.full((2, 3, 4), 7, np.uint8), 7),  # RGBA
        (np.full((2, 3), 257 * 7, np.uint16), 7),
        (np.ones((2, 3), bool), 255),
    ],
)
def test_as_rgb8_gives_three_uint8_channels(array: np.ndarray, expected: int) -> None:
    rgb = as_rgb8(array)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert (rgb == expected).all()


def test_as_rgb8_scales_floats_and_refuses_bad_shapes() -> None:
    ramp = as_rgb8(np.linspace(0.2, 0.7, 6).reshape(2, 3))
    assert ramp.min() == 0 and ramp.max() == 255
    for bad in (np.zeros((2, 3, 5), np.uint8), np.zeros((4,), np.uint8), np.zeros((0, 3), np.uint8)):
        with pytest.raises(DatasetError, match="my.png"):
            as_rgb8(bad, "my.png")


def test_io_module_needs_no_tensorflow() -> None:
    import subprocess
    import sys

    code = f"import sys; import {io.__name__}; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
