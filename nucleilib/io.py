"""Reading images and writing results: label images, overlays and tables.

Readers accept PNG, TIFF and JPEG, 8- or 16-bit, grey, RGB or RGBA, and raise
:class:`~nucleilib.errors.DatasetError` naming the file when it cannot be used. Writers
never leave a half-written file under the final name: they write a temporary file beside
it and rename it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError

#: File name endings read as images.
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
#: Label image formats that :func:`write_labels` writes.
LABEL_FORMATS = ("png", "tif")


# --------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a microscopy image as an RGB uint8 array.

    Parameters
    ----------
    path : path-like
        PNG, TIFF or JPEG file; 8- or 16-bit; grey, grey+alpha, RGB or RGBA.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        16-bit images are scaled by their maximum possible value (65535).

    Raises
    ------
    DatasetError
        If the file is missing, unreadable, truncated or not a 2-D image.

    Examples
    --------
    >>> img = read_image("stage1_train/abc/images/abc.png")  # doctest: +SKIP
    >>> img.shape[-1]  # doctest: +SKIP
    3
    """
    return as_rgb8(read_raw(path), path)


def as_rgb8(array: np.ndarray, source: str | os.PathLike[str] = "image") -> np.ndarray:
    """An image array as RGB uint8 ``(H, W, 3)``, as :func:`read_image` returns it.

    Grey (``(H, W)`` or ``(H, W, 1)``) is repeated into three channels, alpha dropped,
    16-bit scaled by 65535, other integer and float images scaled to 0-255.
    ``source`` names the image in the error message.

    Examples
    --------
    >>> as_rgb8(np.full((2, 3), 65535, np.uint16))[0, 0].tolist()
    [255, 255, 255]
    """
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:  # grey with a channel axis
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    elif array.ndim == 3 and array.shape[-1] in (2, 4):  # grey+alpha or RGBA
        colour = array[..., :-1]
        array = np.repeat(colour, 3, axis=-1) if colour.shape[-1] == 1 else colour
    elif not (array.ndim == 3 and array.shape[-1] == 3):
        raise DatasetError(f"{source}: expected a 2-D grey or colour image, got shape {array.shape}")
    if 0 in array.shape:
        raise DatasetError(f"{source}: empty image of shape {array.shape}")
    if array.dtype == np.uint16:
        array = np.round(array.astype(np.float32) / 257.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        array = _to_uint8(array, Path(source))
    return np.ascontiguousarray(array)


def read_raw(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file as it is stored (dtype and channels unchanged).

    Used for label images, whose values must not be rescaled.

    Raises
    ------
    DatasetError
        If the file is missing or cannot be decoded.
    """
    path = Path(path)
    if is_zarr(path):
        return np.asarray(open_zarr(path))
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        with Image.open(path) as img:
            img.load()
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode in ("I;16", "I;16B", "I;16L"):
                return np.asarray(img, dtype=np.uint16)
            elif img.mode in ("I", "F"):
                return np.asarray(img)
            elif img.mode == "1":
                img = img.convert("L")
            return np.asarray(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DatasetError(f"{path}: cannot decode image ({reason})") from None


def is_zarr(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a zarr array: a folder named ``*.zarr`` or holding zarr's metadata."""
    path = Path(path)
    return path.suffix.lower() == ".zarr" or (path.is_dir() and any((path / name).exists() for name in ZARR_MARKERS))


#: Files that make a folder a zarr array (zarr v3, v2).
ZARR_MARKERS = ("zarr.json", ".zarray")


def yx_image(array: Any, where: str) -> Any:
    """``array`` as (H, W) or (H, W, C): a leading axis of 1 to 4 planes (OME's C, or one
    Z or T plane) is taken as channels, read lazily."""
    if len(array.shape) == 2 or (len(array.shape) == 3 and array.shape[2] <= 4):
        return array
    if len(array.shape) == 3 and array.shape[0] <= 4:
        return _ChannelsLast(array)
    raise ValueError(
        f"{where}: expected an image of shape (H, W), (H, W, C) or (C, H, W) with at most 4 channels, "
        f"got {tuple(array.shape)}"
    )


class _ChannelsLast:
    """A (C, H, W) array read as (H, W, C), one slice at a time."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.dtype = array.dtype
        channels, height, width = array.shape
        self.shape = (height, width, channels)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        rows, cols = (tuple(key) + (slice(None), slice(None)))[:2]
        return np.moveaxis(np.asarray(self.array[:, rows, cols]), 0, -1)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[:, :]
        return values if dtype is None else values.astype(dtype)


def open_zarr(path: str | os.PathLike[str]) -> Any:
    """A zarr array image, as (H, W) or (H, W, C), read lazily (nothing decoded until sliced).

    Raises
    ------
    DatasetError
        If ``path`` is not a readable zarr array of such a shape.
    """
    import zarr

    try:
        array = zarr.open_array(str(path), mode="r")
    except Exception as err:  # noqa: BLE001 - zarr raises several kinds; one message names the folder
        raise DatasetError(f"{path}: not a readable zarr array ({type(err).__name__}: {err})") from None
    try:
        return yx_image(array, str(path))
    except ValueError as err:
        raise DatasetError(str(err)) from None


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype.kind == "b":
        return array.astype(np.uint8) * 255
    if array.dtype.kind in "iu":
        top = float(np.iinfo(array.dtype).max) if array.max() > 255 else 255.0
        return np.clip(np.round(array.astype(np.float64) / top * 255), 0, 255).astype(np.uint8)
    if array.dtype.kind == "f":
        lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
        scale = hi - lo if hi > lo else 1.0
        return np.round((np.nan_to_num(array, nan=lo) - lo) / scale * 255).astype(np.uint8)
    raise DatasetError(f"{path}: unsupported pixel type {array.dtype}")


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one nucleus mask as a boolean array.

    Raises
    ------
    DatasetError
        If the file cannot be decoded or holds more than two distinct values.
    """
    path = Path(path)
    array = read_raw(path)
    if array.ndim == 3:
        array = array[..., 0]
    values = np.unique(array)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        shown = ", ".join(str(v) for v in values[:5]) + (", ..." if values.size > 5 else "")
        raise DatasetError(f"{path}: mask is not binary (values {shown})")
    return array > 0


# --------------------------------------------------------------------------- writing


def _replace_atomically(path: Path, write: object) -> Path:
    """Call ``write(temporary_path)`` and rename the result to ``path``."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial{path.suffix}")
    try:
        write(partial)  # type: ignore[operator]
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def write_labels(labels: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an instance label image as uint16 PNG or zlib-compressed TIFF (by the suffix).

    Raises
    ------
    ValueError
        If there are more nuclei than a uint16 image holds, or the suffix is not
        ``.png``, ``.tif`` or ``.tiff``.

    Examples
    --------
    >>> import tempfile
    >>> labels = np.zeros((8, 8), np.int32); labels[2:4, 2:4] = 1
    >>> path = write_labels(labels, Path(tempfile.mkdtemp()) / "x_labels.png")
    >>> int(read_raw(path).max())
    1
    """
    path = Path(path)
    if labels.ndim != 2:
        raise ValueError(f"{path}: a label image must be 2-D, got shape {labels.shape}")
    top = int(labels.max()) if labels.size else 0
    if top > np.iinfo(np.uint16).max:
        raise ValueError(f"{path}: {top} nuclei do not fit a uint16 label image")
    labels16 = labels.astype(np.uint16)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return _replace_atomically(path, lambda p: Image.fromarray(labels16).save(p, format="PNG"))
    if suffix in (".tif", ".tiff"):
        import tifffile

        return _replace_atomically(path, lambda p: tifffile.imwrite(p, labels16, compression="zlib"))
    raise ValueError(f"{path}: label images are written as .png or .tif, not {path.suffix!r}")


def write_image(image: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write an RGB or grey uint8 image as PNG."""
    return _replace_atomically(Path(path), lambda p: Image.fromarray(np.asarray(image)).save(p, format="PNG"))


def write_table(frame: object, path: str | os.PathLike[str]) -> Path:
    """Write a pandas DataFrame as CSV (no index)."""
    return _replace_atomically(Path(path), lambda p: frame.to_csv(p, index=False))  # type: ignore[attr-defined]


def find_images(folder: str | os.PathLike[str], *, recursive: bool = False) -> list[Path]:
    """Image files (by :data:`IMAGE_SUFFIXES`) and zarr arrays (``*.zarr`` folders) in ``folder``,
    sorted; sub-folders (not inside a zarr array) when ``recursive``."""
    found, pending = [], [Path(folder)]
    while pending:
        for path in sorted(pending.pop().iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                found.append(path)
            elif path.is_dir() and path.suffix.lower() == ".zarr":
                found.append(path)
            elif path.is_dir() and recursive:
                pending.append(path)
    return sorted(found)


def unique_stems(files: Sequence[Path]) -> list[str]:
    """One output stem per input file; repeated stems get -2, -3, ... appended.

    The names are all different, even where an input is itself called ``x-2``.

    Examples
    --------
    >>> unique_stems([Path("a/x.png"), Path("b/x.png"), Path("c/y.tif")])
    ['x', 'x-2', 'y']
    >>> unique_stems([Path("a/x.png"), Path("b/x.png"), Path("c/x-2.png")])
    ['x', 'x-2', 'x-2-2']
    """
    used: set[str] = set()
    counts: dict[str, int] = {}
    names = []
    for path in files:
        stem = name = path.stem
        count = counts.get(stem, 1)
        while name in used:
            count += 1
            name = f"{stem}-{count}"
        counts[stem] = count
        used.add(name)
        names.append(name)
    return names
