"""Reading, validating, caching and installing DSB2018 data (nucleilib.data)."""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nucleilib import data
from nucleilib.data import (
    DATASETS,
    DEFAULT_DATASET,
    Sample,
    content_fingerprint,
    data_root,
    fetch,
    install_archive,
    load_dataset,
    read_sample,
)
from nucleilib.errors import DatasetError
from nucleilib.io import read_image, read_mask

KINDS = ("fluorescence", "brightfield", "stained")
MODES = ("RGB", "RGBA", "L")


def png_as_array(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def decoded_files(cache: Path) -> list[Path]:
    return sorted((cache / "decoded").rglob("*.npz"))


# --------------------------------------------------------------------------- read_sample


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_read_sample_consolidates_masks(dsb, kind, mode):
    made = dsb.sample("abc123", kind=kind, mode=mode)
    sample = read_sample(made.folder)

    assert isinstance(sample, Sample)
    assert sample.image_id == "abc123"
    assert sample.image.dtype == np.uint8 and sample.image.shape == (64, 64, 3)
    np.testing.assert_array_equal(sample.image, made.rgb)
    assert sample.labels.dtype == np.uint16 and sample.labels.shape == (64, 64)

    # The binary mask is the union of the mask files, as they are on disk.
    union = np.logical_or.reduce([png_as_array(p) > 0 for p in made.mask_paths])
    np.testing.assert_array_equal(sample.mask, union)
    # One label per mask file, numbered 1..n, each covering exactly its mask.
    assert sample.n_nuclei == len(made.mask_paths) == 3
    assert set(np.unique(sample.labels).tolist()) == {0, 1, 2, 3}
    for k, mask in enumerate(made.masks, start=1):
        np.testing.assert_array_equal(sample.labels == k, mask)
    assert sample.overlapping_masks == 0


def test_labels_follow_sorted_mask_names(dsb):
    made = dsb.sample("s", discs=((10, 10, 4), (40, 40, 6)))
    # Rename so that the second disc sorts first.
    made.mask_paths[0].rename(made.masks_dir / "b.png")
    made.mask_paths[1].rename(made.masks_dir / "a.png")
    sample = read_sample(made.folder)
    np.testing.assert_array_equal(sample.labels == 1, made.masks[1])
    np.testing.assert_array_equal(sample.labels == 2, made.masks[0])


def test_rgba_alpha_is_dropped(dsb):
    made = dsb.sample("rgba", kind="stained", mode="RGBA")
    assert made.image.shape[-1] == 4 and made.image[..., 3].min() < 255  # alpha really varies
    image = read_image(made.image_path)
    assert image.shape == (64, 64, 3)
    np.testing.assert_array_equal(image, made.image[..., :3])


def test_grey_alpha_is_dropped_and_expanded(tmp_path, dsb):
    grey = dsb.draw_rgb("brightfield")[..., 0]
    alpha = np.full_like(grey, 7)
    path = dsb.write_png(tmp_path / "la.png", np.dstack([grey, alpha]))
    with Image.open(path) as img:
        assert img.mode == "LA"
    image = read_image(path)
    assert image.shape == (64, 64, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


@pytest.mark.parametrize("kind", ["fluorescence", "brightfield"])
def test_grey_becomes_three_equal_channels(dsb, kind):
    made = dsb.sample("grey", kind=kind, mode="L")
    assert made.image.ndim == 2
    image = read_image(made.image_path)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], made.image)


def test_16bit_image_is_scaled_to_uint8(tmp_path, dsb):
    values = np.array([0, 257, 1000, 32768, 65535], dtype=np.uint16)
    array = np.tile(values, (8, 4))  # 8 x 20
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    assert png_as_array(path).dtype == np.uint16  # really a 16-bit PNG
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (8, 20, 3)
    expected = np.round(array / 257.0).astype(np.uint8)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], expected)
    assert image.max() == 255 and image.min() == 0


def test_16bit_image_in_a_sample(dsb):
    made = dsb.sample("deep", mode="L")
    deep = made.image.astype(np.uint16) * 257
    Image.fromarray(deep).save(made.image_path)
    sample = read_sample(made.folder)
    np.testing.assert_array_equal(sample.image[..., 0], made.image)


def test_read_mask_accepts_binary_and_boolean(tmp_path, dsb):
    mask = dsb.disc_mask((32, 32), 16, 16, 6)
    dsb.write_mask(tmp_path / "m.png", mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    Image.fromarray(mask).save(tmp_path / "one-bit.png")  # mode "1"
    np.testing.assert_array_equal(read_mask(tmp_path / "one-bit.png"), mask)


# --------------------------------------------------------------------------- errors


def _truncate(path: Path) -> Path:
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    return path


def _truncated_image(s):
    return _truncate(s.image_path)


def _truncated_mask(s):
    return _truncate(s.mask_paths[1])


def _garbage_image(s):
    s.image_path.write_bytes(b"this is not a PNG file at all\n" * 20)
    return s.image_path


def _garbage_mask(s):
    s.mask_paths[0].write_bytes(b"\x00\x01\x02 not an image")
    return s.mask_paths[0]


def _mask_wrong_size(s):
    Image.fromarray(np.zeros((64, 65), np.uint8)).save(s.mask_paths[2])
    return s.mask_paths[2]


def _mask_not_binary(s):
    values = np.zeros((64, 64), np.uint8)
    values[:10] = 128
    values[20:30] = 255
    Image.fromarray(values).save(s.mask_paths[1])
    return s.mask_paths[1]


def _mask_not_binary_no_zero(s):
    values = np.full((64, 64), 200, np.uint8)
    values[:5] = 255
    Image.fromarray(values).save(s.mask_paths[0])
    return s.mask_paths[0]


def _empty_masks(s):
    for p in s.mask_paths:
        p.unlink()
    return s.masks_dir


def _missing_masks(s):
    for p in s.mask_paths:
        p.unlink()
    s.masks_dir.rmdir()
    return s.masks_dir


def _missing_images(s):
    s.image_path.unlink()
    s.images_dir.rmdir()
    return s.images_dir


def _missing_image_file(s):
    s.image_path.unlink()
    return s.image_path


BREAKAGES = {
    "truncated image": (_truncated_image, "cannot decode"),
    "truncated mask": (_truncated_mask, "cannot decode"),
    "non-image bytes as image": (_garbage_image, "cannot decode"),
    "non-image bytes as mask": (_garbage_mask, "cannot decode"),
    "mask size differs": (_mask_wrong_size, "65x64 differs from image size 64x64"),
    "mask not binary": (_mask_not_binary, "not binary"),
    "mask two values without zero": (_mask_not_binary_no_zero, "not binary"),
    "empty masks folder": (_empty_masks, "empty"),
    "missing masks folder": (_missing_masks, "missing"),
    "missing images folder": (_missing_images, "missing"),
    "missing image file": (_missing_image_file, "missing"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_read_sample_errors_name_the_offender(dsb, breakage):
    breaker, reason = BREAKAGES[breakage]
    made = dsb.sample("broken", kind="brightfield")
    offender = breaker(made)
    with pytest.raises(DatasetError) as excinfo:
        read_sample(made.folder)
    message = str(excinfo.value)
    assert message.startswith(str(offender)), message
    assert reason in message
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize("breakage", ["truncated mask", "mask not binary", "missing masks folder"])
def test_load_dataset_propagates_errors(dsb, breakage):
    root = dsb.dataset(3)
    made = dsb.sample("img01", kind="brightfield")  # overwrite one sample
    offender = BREAKAGES[breakage][0](made)
    with pytest.raises(DatasetError, match=re.escape(str(offender))):
        load_dataset(root, workers=1)


def test_mask_not_binary_lists_values(dsb):
    made = dsb.sample("nb")
    _mask_not_binary(made)
    with pytest.raises(DatasetError, match=r"values 0, 128, 255"):
        read_sample(made.folder)


def test_read_image_missing_file(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "nope.png"))):
        read_image(tmp_path / "nope.png")


def test_image_with_other_name_is_used_when_alone(dsb):
    made = dsb.sample("renamed")
    made.image_path.rename(made.images_dir / "other.png")
    sample = read_sample(made.folder)
    np.testing.assert_array_equal(sample.image, made.rgb)


# --------------------------------------------------------------------------- overlaps


def test_overlapping_masks_warn_and_earlier_label_wins(dsb):
    discs = ((30, 24, 10), (30, 36, 10), (5, 55, 3))  # the first two overlap
    made = dsb.sample("ovl", discs=discs)
    shared = made.masks[0] & made.masks[1]
    assert shared.any()

    with pytest.warns(UserWarning, match=re.escape(str(made.masks_dir))) as record:
        sample = read_sample(made.folder)
    assert "2.png" in str(record[0].message)
    assert sample.overlapping_masks == 1
    assert (sample.labels[shared] == 1).all()
    np.testing.assert_array_equal(sample.labels == 1, made.masks[0])
    np.testing.assert_array_equal(sample.labels == 2, made.masks[1] & ~made.masks[0])
    np.testing.assert_array_equal(sample.mask, made.union)
    assert sample.n_nuclei == 3


def test_no_warning_without_overlap(dsb):
    made = dsb.sample("clean")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_sample(made.folder)


def test_load_dataset_warns_once_naming_overlapping_samples(dsb):
    root = dsb.dataset(2)
    dsb.sample("zz-overlap", discs=((30, 24, 10), (30, 36, 10)))
    for _attempt in range(2):  # cold, then from the cache
        with pytest.warns(UserWarning) as record:
            samples = load_dataset(root, workers=1)
        messages = [str(w.message) for w in record if issubclass(w.category, UserWarning)]
        assert len(messages) == 1, messages
        assert "zz-overlap" in messages[0] and "1 sample(s)" in messages[0]
        assert [s.overlapping_masks for s in samples] == [0, 0, 1]


# --------------------------------------------------------------------------- loading and caching


def test_load_dataset_never_modifies_the_data(dsb, cache_path):
    root = dsb.dataset(6)
    dsb.sample("zz-overlap", root=root, discs=((30, 24, 10), (30, 36, 10)))
    before = dsb.snapshot(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        load_dataset(root, workers=1)
        load_dataset(root, workers=1)  # served from the cache
    assert dsb.snapshot(root) == before
    assert len(decoded_files(cache_path)) == 7  # the cache went elsewhere
    assert not list(root.rglob("*.npz"))


def test_cache_round_trip(dsb, cache_path, monkeypatch):
    root = dsb.dataset(5)
    first = load_dataset(root, workers=1)
    cached = decoded_files(cache_path)
    assert sorted(p.stem for p in cached) == [f"img{i:02d}" for i in range(5)]

    def no_decoding(folder):
        raise AssertionError(f"{folder} was decoded again instead of read from the cache")

    monkeypatch.setattr(data, "read_sample", no_decoding)
    second = load_dataset(root, workers=1)
    assert [s.image_id for s in second] == [s.image_id for s in first]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.image.dtype == b.image.dtype and a.labels.dtype == b.labels.dtype
        assert a.overlapping_masks == b.overlapping_masks


def test_cache_matches_fresh_decoding(dsb):
    root = dsb.dataset(4)
    load_dataset(root, workers=1)
    for sample in load_dataset(root, workers=1):
        fresh = read_sample(root / sample.image_id)
        np.testing.assert_array_equal(sample.image, fresh.image)
        np.testing.assert_array_equal(sample.labels, fresh.labels)


def test_cache_disabled_writes_nothing(dsb, cache_path):
    root = dsb.dataset(2)
    samples = load_dataset(root, use_cache=False, workers=1)
    assert len(samples) == 2
    assert not (cache_path / "decoded").exists()


def test_cache_invalidated_when_a_mask_changes(dsb):
    made = dsb.sample("changing", discs=((16, 16, 6), (40, 44, 8)))
    load_dataset(dsb.root, workers=1)
    new_mask = dsb.disc_mask((64, 64), 50, 20, 9)
    before = made.mask_paths[1].stat()
    dsb.write_mask(made.mask_paths[1], new_mask)
    after = made.mask_paths[1].stat()
    assert (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)

    (reloaded,) = load_dataset(dsb.root, workers=1)
    np.testing.assert_array_equal(reloaded.labels == 2, new_mask)
    np.testing.assert_array_equal(reloaded.labels == 1, made.masks[0])


def test_cache_invalidated_when_a_mask_is_added(dsb):
    made = dsb.sample("growing", discs=((16, 16, 6),))
    assert load_dataset(dsb.root, workers=1)[0].n_nuclei == 1
    dsb.write_mask(made.masks_dir / "2.png", dsb.disc_mask((64, 64), 45, 45, 7))
    assert load_dataset(dsb.root, workers=1)[0].n_nuclei == 2


def test_damaged_cache_entry_is_rebuilt(dsb, cache_path):
    root = dsb.dataset(2)
    first = load_dataset(root, workers=1)
    for entry in decoded_files(cache_path):
        entry.write_bytes(b"garbage")
    second = load_dataset(root, workers=1)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.labels, b.labels)
    assert all(zipfile.is_zipfile(p) for p in decoded_files(cache_path))


def test_load_dataset_default_order_is_sorted(dsb):
    root = dsb.dataset(4)
    assert [s.image_id for s in load_dataset(root, workers=1)] == ["img00", "img01", "img02", "img03"]


@pytest.mark.parametrize(
    ("ids", "limit", "expected"),
    [
        (None, 2, ["img00", "img01"]),
        (None, 0, []),
        (None, 99, ["img00", "img01", "img02", "img03", "img04"]),
        (["img03", "img01"], None, ["img03", "img01"]),
        (["img04", "img00", "img02"], 2, ["img04", "img00"]),
        (iter(["img02"]), None, ["img02"]),
    ],
)
def test_load_dataset_ids_and_limit(dsb, ids, limit, expected):
    root = dsb.dataset(5)
    samples = load_dataset(root, ids=ids, limit=limit, workers=1)
    assert [s.image_id for s in samples] == expected
    for s in samples:
        np.testing.assert_array_equal(s.labels, read_sample(root / s.image_id).labels)


def test_load_dataset_unknown_id(dsb):
    root = dsb.dataset(2)
    with pytest.raises(DatasetError, match=r"no sample folder for id\(s\) nope"):
        load_dataset(root, ids=["img00", "nope"], workers=1)


def test_load_dataset_with_worker_processes(dsb):
    root = dsb.dataset(10)  # more than 8 jobs: decoded in a process pool
    pooled = load_dataset(root, workers=2, use_cache=False)
    serial = load_dataset(root, workers=1, use_cache=False)
    assert [s.image_id for s in pooled] == [s.image_id for s in serial]
    for a, b in zip(pooled, serial):
        np.testing.assert_array_equal(a.labels, b.labels)


def test_load_dataset_missing_or_empty_root(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "absent"))):
        load_dataset(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no sample folders"):
        load_dataset(tmp_path / "empty")


# --------------------------------------------------------------------------- data_root and fetch


def test_data_root_honours_env(dsb, monkeypatch):
    root = dsb.dataset(2)
    monkeypatch.setenv("NUCLEI_DATA_DIR", str(root))
    assert data_root() == root
    assert data_root(download=False) == root
    assert [s.image_id for s in load_dataset(workers=1)] == ["img00", "img01"]


def test_data_root_env_missing_folder(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv("NUCLEI_DATA_DIR", str(missing))
    with pytest.raises(DatasetError) as excinfo:
        data_root()
    assert str(missing) in str(excinfo.value)
    assert "NUCLEI_DATA_DIR" in str(excinfo.value)


def test_fetch_without_download_and_no_data(monkeypatch, cache_path):
    monkeypatch.delenv("NUCLEI_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match="not downloaded"):
        fetch(download=False)
    with pytest.raises(DatasetError, match="not downloaded") as excinfo:
        data_root(download=False)
    assert str(cache_path) in str(excinfo.value)
    assert not (cache_path / "downloads").exists()


def test_fetch_offline_says_what_to_do(monkeypatch, cache_path):
    import pooch
    import requests

    def offline(**kwargs):
        raise requests.ConnectionError("Failed to resolve 'github.com'")

    monkeypatch.delenv("NUCLEI_DATA_DIR", raising=False)
    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(DatasetError, match="download failed .ConnectionError.*NUCLEI_DATA_DIR"):
        data_root()
    assert not (cache_path / "dsb2018-stage1-train").exists()


def test_fetch_that_cannot_store_names_the_folder(monkeypatch, cache_path):
    import errno

    import pooch

    def disk_full(**kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.delenv("NUCLEI_DATA_DIR", raising=False)
    monkeypatch.setattr(pooch, "retrieve", disk_full)
    with pytest.raises(DatasetError, match="downloads: cannot store the download .No space left on device"):
        fetch()


def test_fetch_unknown_name():
    with pytest.raises(DatasetError, match="unknown data set 'nope'"):
        fetch("nope", download=False)


# --------------------------------------------------------------------------- fingerprint and install


def test_content_fingerprint_tracks_content_and_names_not_times(dsb):
    root = dsb.dataset(3)
    reference = content_fingerprint(root)
    assert re.fullmatch(r"[0-9a-f]{64}", reference)
    seen: list[int] = []
    assert content_fingerprint(root, progress=seen.append) == reference
    assert seen == list(range(1, len([p for p in root.rglob("*") if p.is_file()]) + 1))

    mask = root / "img01" / "masks" / "1.png"
    import os

    os.utime(mask, ns=(1, 1))  # timestamps do not count
    assert content_fingerprint(root) == reference
    content = mask.read_bytes()
    mask.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))  # one bit
    assert content_fingerprint(root) != reference
    mask.write_bytes(content)
    assert content_fingerprint(root) == reference
    mask.rename(mask.with_name("9.png"))  # names count
    assert content_fingerprint(root) != reference


def _zip_folder(folder: Path, archive: Path, prefix: str) -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{prefix}/{folder.name}/{path.relative_to(folder).as_posix()}")
    return archive


@pytest.fixture
def archive(dsb, tmp_path):
    """A zip laid out like the GitHub archive: <repo>-<commit>/stage1_train/<id>/..."""
    src = dsb.dataset(3, root=tmp_path / "src" / "stage1_train")
    path = _zip_folder(src, tmp_path / "download.zip", "kaggle-dsbowl-2018-dataset-fixes-30354551")
    return path, src


def test_install_archive_installs_and_verifies(archive, monkeypatch, cache_path):
    path, src = archive
    fingerprint = content_fingerprint(src)
    monkeypatch.setitem(DATASETS[DEFAULT_DATASET], "content_sha256", fingerprint)

    installed = install_archive(path)
    assert installed == cache_path / DEFAULT_DATASET / "stage1_train"
    assert content_fingerprint(installed) == fingerprint
    assert (cache_path / DEFAULT_DATASET / ".verified").read_text().strip() == fingerprint
    assert sorted(p.name for p in installed.iterdir()) == ["img00", "img01", "img02"]
    # fetch now finds it without downloading, and it loads.
    monkeypatch.delenv("NUCLEI_DATA_DIR", raising=False)
    assert fetch(download=False) == installed
    assert data_root(download=False) == installed
    assert [s.n_nuclei for s in load_dataset(installed, workers=1)] == [1, 2, 3]


def test_install_archive_wrong_fingerprint_installs_nothing(archive, monkeypatch, cache_path):
    path, _ = archive
    monkeypatch.setitem(DATASETS[DEFAULT_DATASET], "content_sha256", "0" * 64)
    with pytest.raises(DatasetError, match="does not match the registry") as excinfo:
        install_archive(path)
    assert str(path) in str(excinfo.value)
    assert not (cache_path / DEFAULT_DATASET).exists()
    monkeypatch.delenv("NUCLEI_DATA_DIR", raising=False)
    with pytest.raises(DatasetError, match="not downloaded"):
        fetch(download=False)


def test_failed_install_keeps_previous_verified_copy(archive, monkeypatch, cache_path, tmp_path, dsb):
    path, src = archive
    monkeypatch.setitem(DATASETS[DEFAULT_DATASET], "content_sha256", content_fingerprint(src))
    installed = install_archive(path)
    good = content_fingerprint(installed)

    other = dsb.dataset(1, root=tmp_path / "other" / "stage1_train", prefix="x")
    bad = _zip_folder(other, tmp_path / "bad.zip", "somewhere")
    with pytest.raises(DatasetError):
        install_archive(bad)
    assert content_fingerprint(installed) == good
    monkeypatch.delenv("NUCLEI_DATA_DIR", raising=False)
    assert fetch(download=False) == installed


def test_failed_install_cleans_its_staging_folder(archive, monkeypatch, cache_path):
    path, _ = archive
    monkeypatch.setitem(DATASETS[DEFAULT_DATASET], "content_sha256", "0" * 64)
    with pytest.raises(DatasetError):
        install_archive(path)
    assert [p.name for p in cache_path.iterdir()] == []


def test_install_archive_rejects_non_zip(tmp_path, cache_path):
    fake = tmp_path / "download.zip"
    fake.write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DatasetError, match=re.escape(f"{fake}: downloaded file is not a zip")):
        install_archive(fake)
    assert not (cache_path / DEFAULT_DATASET).exists()


def test_install_archive_without_subdir(tmp_path, cache_path, dsb):
    src = dsb.dataset(1, root=tmp_path / "src" / "stage2_test")
    path = _zip_folder(src, tmp_path / "download.zip", "repo")
    with pytest.raises(DatasetError, match="archive holds no stage1_train folder"):
        install_archive(path)
    assert not (cache_path / DEFAULT_DATASET).exists()


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_samples_load(real_data_root):
    ids = sorted(p.name for p in real_data_root.iterdir() if p.is_dir())[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        samples = load_dataset(real_data_root, ids=ids, workers=1)
    assert [s.image_id for s in samples] == ids
    for sample in samples:
        h, w = sample.labels.shape
        assert sample.image.shape == (h, w, 3) and sample.image.dtype == np.uint8
        assert sample.labels.dtype == np.uint16
        assert h >= 64 and w >= 64
        n_masks = len([p for p in (real_data_root / sample.image_id / "masks").iterdir() if p.suffix == ".png"])
        assert sample.n_nuclei == n_masks
        assert set(np.unique(sample.labels).tolist()) == set(range(n_masks + 1))


@pytest.mark.realdata
@pytest.mark.slow
def test_real_content_fingerprint_matches_registry(real_data_root):
    assert content_fingerprint(real_data_root) == DATASETS["dsb2018-stage1-train"]["content_sha256"]


def test_time_loading_of_a_sample_decodes_only_the_sample_again(dsb, cache_path, monkeypatch):
    from nucleilib import data

    root = dsb.dataset(6)
    load_dataset(root, workers=1)
    before = {p.name: p.stat().st_mtime_ns for p in decoded_files(cache_path)}
    decoded = []
    real_read = data.read_sample
    monkeypatch.setattr(data, "read_sample", lambda folder: decoded.append(folder.name) or real_read(folder))

    timing = data.time_loading(root, sample_size=2, seed=3, workers=1)

    assert timing["n_images"] == 2 and timing["n_total"] == 6
    assert timing["cold_s"] > 0 and timing["cached_s"] > 0
    assert len(decoded) == 2 and len(set(decoded)) == 2  # decoded once (cold), then read from the cache
    after = {p.name: p.stat().st_mtime_ns for p in decoded_files(cache_path)}
    assert after.keys() == before.keys()
    assert sorted(n for n in before if after[n] != before[n]) == sorted(f"{d}.npz" for d in decoded)


def test_time_loading_of_the_whole_set(dsb, cache_path):
    from nucleilib import data

    timing = data.time_loading(dsb.dataset(3), workers=1)
    assert timing["n_images"] == timing["n_total"] == 3
    assert len(decoded_files(cache_path)) == 3
