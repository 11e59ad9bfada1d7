"""Images larger than memory: segmented block by block, nuclei stitched across block borders.

:func:`segment_blockwise` reads an image (any array that can be sliced, such as a TIFF or
zarr array opened by :func:`open_image`, or a :func:`numpy.memmap`) one block at a time, with
a margin of context around it, and writes the labels into an output array of the same height
and width (on disk for an image larger than memory: :func:`open_labels`).
What makes blocks agree with the whole image:

* preprocessing decisions (grey levels, bright background, stain) are taken once from an even
  sample of the whole image (:func:`nucleilib.preprocess.image_levels`), so a block of
  background is not stretched into false nuclei;
* the nucleus diameter is estimated once, on the central block, and used for every block;
* a nucleus belongs to the block its centroid lies in, and is segmented with the block's
  margin around it, which is wider than a nucleus: a nucleus across a block border is
  written once, whole, not cut and not doubled.

Peak memory is one block with its margin, its probability maps and labels, whatever the
image's size.

Examples
--------
>>> import numpy as np
>>> from skimage.draw import disk
>>> from nucleilib.models import ModelConfig
>>> from nucleilib.segmenter import Segmenter
>>> image = np.full((96, 160), 20, np.uint8)
>>> for centre in [(30, 30), (48, 80), (60, 128)]:  # the middle disc crosses the block border at x=80
...     image[disk(centre, 9)] = 220
>>> bright = Segmenter(lambda x: x[..., :1], ModelConfig(outputs=("foreground",), separation="components"))
>>> labels = segment_blockwise(bright, image, block=80, margin=32).labels
>>> int(labels.max()), sorted(np.unique(labels[48, 70:91]).tolist())
(3, [0, 2])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .io import is_zarr
from .validation import multiple_of

#: Pixels sampled (at most) to take the whole image's preprocessing decisions.
LEVEL_SAMPLE_PIXELS = 4_000_000


@dataclass
class BlockwiseResult:
    """What :func:`segment_blockwise` did.

    Attributes
    ----------
    labels : array
        The output array (H, W) of nucleus labels 1..n.
    table : DataFrame
        One row per nucleus: ``label``, ``area`` (pixels, as segmented in its block) and
        ``centroid_y``, ``centroid_x`` (pixels of the whole image), built block by block.
    nuclei : int
    diameter : float
        The nucleus diameter (pixels) every block was rescaled by; NaN at the image's own scale.
    scale : float
        The factor every block was resized by before the network (1: its own scale).
    blocks : int
    """

    labels: Any
    table: Any
    nuclei: int
    diameter: float
    scale: float
    blocks: int


#: Suffixes of label images written block by block: an uncompressed TIFF written in place, or a
#: chunked, compressed zarr array (a folder).
LABEL_FORMATS = ("tif", "zarr")


def open_labels(path: str, shape: tuple[int, int], dtype: Any = np.uint32, *, chunk: int = 2048) -> Any:
    """A label image on disk, written in place block by block.

    A path ending in ``.zarr`` is a zarr array (a folder of compressed ``chunk`` x ``chunk``
    tiles: small on disk, and only the tiles written are ever in memory); any other is an
    uncompressed TIFF, readable by any TIFF reader, written window by window
    (:class:`TiffWindows`)."""
    if str(path).endswith(".zarr"):
        import zarr

        return zarr.create_array(
            str(path), shape=tuple(shape), chunks=(chunk, chunk), dtype=dtype, fill_value=0, overwrite=True
        )
    import tifffile

    tifffile.memmap(path, shape=tuple(shape), dtype=dtype, photometric="minisblack")  # the file, all zeros
    return TiffWindows(path, writable=True)


class TiffWindows:
    """An uncompressed TIFF read, or written, one window at a time.

    Each read or write maps the file for that window alone and unmaps it after: the pages a
    block touched leave the process with it, so its resident memory holds about one block,
    where one memory map of the whole file kept open would count every page read so far (the
    kernel can take those back, but they show as the process's memory, 1.5 GB more for a
    20,000 x 20,000 image). Slicing gives an in-memory copy.

    Examples
    --------
    >>> import tempfile, os, tifffile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.tif")
    >>> labels = open_labels(path, (64, 96))
    >>> labels[8:16, 8:16] = 7
    >>> labels.shape, int(labels[:, :].sum()), int(tifffile.imread(path)[10, 10])
    ((64, 96), 448, 7)
    """

    def __init__(self, path: str | Any, *, writable: bool = False) -> None:
        import tifffile

        self.path, self.writable = str(path), writable
        mapped = tifffile.memmap(self.path, mode="r")
        self.shape, self.dtype = tuple(mapped.shape), mapped.dtype
        del mapped

    def __getitem__(self, key: Any) -> np.ndarray:
        import tifffile

        mapped = tifffile.memmap(self.path, mode="r")
        try:
            return np.array(mapped[key])
        finally:
            del mapped

    def __setitem__(self, key: Any, value: Any) -> None:
        import tifffile

        if not self.writable:
            raise ValueError(f"{self.path}: opened for reading only")
        mapped = tifffile.memmap(self.path, mode="r+")
        try:
            mapped[key] = value
            mapped.flush()
        finally:
            del mapped

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        values = self[...]
        return values if dtype is None else values.astype(dtype)


def image_shape(path: str | Any) -> tuple[int, int]:
    """Height and width of an image file or zarr array, read from its header (nothing decoded)."""
    from pathlib import Path

    path = Path(path)
    if is_zarr(path) or path.suffix.lower() in (".tif", ".tiff"):
        shape = open_image(path).shape
        return int(shape[0]), int(shape[1])
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
    return int(height), int(width)


def open_image(path: str | Any) -> Any:
    """A large image to read block by block, nothing read until sliced: an uncompressed TIFF
    read window by window (:class:`TiffWindows`), tifffile's zarr view of a tiled or compressed (OME-)TIFF (the first
    series at full resolution; only the tiles a block needs are decoded), or a zarr array
    (a ``.zarr`` folder). PNG and JPEG are decoded whole."""
    from pathlib import Path

    from .io import open_zarr, read_raw, yx_image

    path = Path(path)
    if is_zarr(path):
        return open_zarr(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            windows = TiffWindows(path)
        except ValueError:  # compressed or tiled: no memmap
            windows = None
        if windows is not None:
            return yx_image(windows, str(path))
        try:
            import zarr

            store = tifffile.imread(path, aszarr=True, series=0, level=0)
            return yx_image(zarr.open_array(store, mode="r"), str(path))
        except Exception as err:  # noqa: BLE001 - a TIFF tifffile cannot map: decoded whole below
            if isinstance(err, ValueError) and "expected an image" in str(err):
                raise
    return read_raw(path)


def _level_sample(image: Any) -> np.ndarray:
    height, width = image.shape[:2]
    step = max(1, math.ceil(math.sqrt(height * width / LEVEL_SAMPLE_PIXELS)))
    return np.asarray(image[::step, ::step])


@dataclass(frozen=True)
class BlockPlan:
    """What every block of one image is segmented with (:func:`plan_blocks`).

    Attributes
    ----------
    levels : Levels
        The whole image's preprocessing decisions.
    diameter : float
        The nucleus diameter (pixels) every block is rescaled by; NaN at the image's own scale.
    block, margin : int
        Block side and the context read around each block, in pixels (multiples of 16).
    starts : list of (int, int)
        The blocks' top-left corners, row by row.
    """

    levels: Any
    diameter: float
    block: int
    margin: int
    starts: list[tuple[int, int]]

    def window(self, start: tuple[int, int], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)``: the block at ``start`` with its margin, inside the image."""
        (by, bx), (height, width) = start, shape[:2]
        margin = self.margin
        return (
            max(0, by - margin),
            min(height, by + self.block + margin),
            max(0, bx - margin),
            min(width, bx + self.block + margin),
        )

    def segmenter(self, segmenter: Any) -> Any:
        """``segmenter`` with this plan's levels and diameter, giving the network one tile at a
        time (what bounds the memory of a large block: see :class:`~nucleilib.segmenter.Segmenter`)."""
        return segmenter.with_levels(self.levels).with_settings(
            diameter=None if math.isnan(self.diameter) else self.diameter, tile_batch=1
        )


def plan_blocks(segmenter: Any, image: Any, *, block: int = 2048, margin: int | None = None) -> BlockPlan:
    """The levels, diameter, margin and blocks of :func:`segment_blockwise` (see there)."""
    block = multiple_of(block, 16, "block")
    if len(image.shape) not in (2, 3):
        raise ValueError(f"image: expected shape (H, W) or (H, W, C), got {tuple(image.shape)}")
    if np.dtype(image.dtype) not in (np.uint8, np.uint16):
        raise ValueError(f"image: blockwise segmentation needs uint8 or uint16 pixels, got {image.dtype}")
    height, width = image.shape[:2]
    leveled = segmenter.with_levels(segmenter.image_levels(_level_sample(image)))
    diameter = math.nan
    if leveled.diameter is not None and leveled.config.diameter is not None:
        if leveled.diameter == "auto":
            cy, cx, half = height // 2, width // 2, block // 2
            centre = np.asarray(image[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half])
            diameter = leveled.estimate_diameter(centre)
        else:
            diameter = float(leveled.diameter)
    if math.isfinite(diameter):
        # A scale factor in sixteenths puts every block's origin (a multiple of 16) on a pixel of
        # the rescaled grid, so a rescaled block is the matching window of the rescaled image.
        factor = max(1, round(leveled.config.diameter / diameter * 16)) / 16
        diameter = leveled.config.diameter / factor
    if margin is None:
        margin = max(64, int(3 * (diameter if math.isfinite(diameter) else 20)))
    margin = -(-int(margin) // 16) * 16
    starts = [(y, x) for y in range(0, height, block) for x in range(0, width, block)]
    return BlockPlan(leveled.levels, diameter, block, margin, starts)


@dataclass
class BlockLabels:
    """The nuclei one block owns (:func:`segment_block`): ``labels`` over the block's window
    (``origin`` its top-left corner in the image) numbered 1..n, 0 elsewhere; ``table`` their
    ``area`` and ``centroid_y``, ``centroid_x`` in image pixels, in label order; ``scale`` the
    factor the block was resized by."""

    origin: tuple[int, int]
    labels: np.ndarray
    table: pd.DataFrame
    scale: float


def segment_block(
    segmenter: Any, pixels: np.ndarray, origin: tuple[int, int], start: tuple[int, int], block: int
) -> BlockLabels:
    """Segment one block's window (``pixels``, read at ``origin``) with a planned segmenter
    (:meth:`BlockPlan.segmenter`) and keep the nuclei whose centroid lies in the block at
    ``start``. A pure function of its arguments: where it runs does not change its result."""
    from skimage.measure import regionprops_table

    segmented = segmenter.segment_instances(np.asarray(pixels))
    labels = segmented.labels
    empty = pd.DataFrame({"area": np.zeros(0, int), "centroid_y": np.zeros(0), "centroid_x": np.zeros(0)})
    if labels.max() == 0:
        return BlockLabels(origin, np.zeros(labels.shape, np.uint32), empty, segmented.scale)
    table = regionprops_table(labels, properties=("label", "area", "centroid"))
    cy, cx = table["centroid-0"] + origin[0], table["centroid-1"] + origin[1]
    (by, bx) = start
    inside = (cy >= by) & (cy < by + block) & (cx >= bx) & (cx < bx + block)
    owned = table["label"][inside]
    lookup = np.zeros(int(labels.max()) + 1, np.uint32)
    lookup[owned] = np.arange(1, owned.size + 1)
    rows = pd.DataFrame({"area": table["area"][inside].astype(int), "centroid_y": cy[inside], "centroid_x": cx[inside]})
    return BlockLabels(origin, lookup[labels], rows, segmented.scale)


def _write_block(out: Any, result: BlockLabels, first_label: int) -> pd.DataFrame:
    """Write a block's nuclei into ``out`` numbered from ``first_label``; their table rows."""
    count = len(result.table)
    if count:
        (y0, x0), (h, w) = result.origin, result.labels.shape
        region = np.asarray(out[y0 : y0 + h, x0 : x0 + w])
        # First come keeps a pixel two blocks' nuclei both claim.
        write = (result.labels > 0) & (region == 0)
        region[write] = result.labels[write] + np.uint32(first_label - 1)
        out[y0 : y0 + h, x0 : x0 + w] = region
    return result.table.assign(label=np.arange(first_label, first_label + count))


_WORKER_SEGMENTERS: dict[int, tuple[Any, Any, Any]] = {}


def _worker_segmenter(make_segmenter: Any) -> tuple[Any, Any]:
    """The segmenter ``make_segmenter`` builds and a lock: built once per worker process for each
    recipe (the client scatters one recipe object to every worker) and used by one task at a
    time, as a TensorFlow Lite interpreter is not thread-safe."""
    import threading

    entry = _WORKER_SEGMENTERS.get(id(make_segmenter))
    if entry is None or entry[0] is not make_segmenter:
        entry = (make_segmenter, make_segmenter(), threading.Lock())
        _WORKER_SEGMENTERS[id(make_segmenter)] = entry
    return entry[1], entry[2]


def _segment_block_remotely(
    make_segmenter: Any, plan: BlockPlan, pixels: np.ndarray, origin: tuple[int, int], start: tuple[int, int]
) -> BlockLabels:
    segmenter, lock = _worker_segmenter(make_segmenter)
    with lock:
        return segment_block(plan.segmenter(segmenter), pixels, origin, start, plan.block)


def segment_blockwise(
    segmenter: Any,
    image: Any,
    out: Any = None,
    *,
    block: int = 2048,
    margin: int | None = None,
    progress: bool = False,
    client: Any = None,
    make_segmenter: Any = None,
) -> BlockwiseResult:
    """Segment a large image block by block (see the module docstring).

    Parameters
    ----------
    segmenter : nucleilib.segmenter.Segmenter
        Its diameter setting applies: ``"auto"`` estimates one diameter on the central block.
    image : array, shape (H, W) or (H, W, C)
        uint8 or uint16; only the slices of one block (with margin) are read at a time
        (:func:`open_image`).
    out : array, shape (H, W), optional
        Where the labels go, all zero (:func:`open_labels` for an image larger than memory);
        by default a new uint32 array.
    block : int
        Side of the blocks each nucleus is assigned to, in pixels.
    margin : int, optional
        Context read around each block, in pixels; by default three nucleus diameters (at
        least 64). It must exceed the largest nucleus for every nucleus to be whole.
    progress : bool
        Report each block done (:mod:`nucleilib.progress`).
    client : dask.distributed.Client, optional
        Segment the blocks on its workers: this process reads each block and writes its labels,
        the workers (which need no access to the files) run the network, each building its own
        segmenter once with ``make_segmenter``, a picklable callable that returns one like
        ``segmenter``. At most two blocks per worker are in flight, so memory stays bounded; the
        labels are those of the serial run.
    make_segmenter : callable, optional
        Required with ``client``.
    """
    from .progress import Countdown

    plan = plan_blocks(segmenter, image, block=block, margin=margin)
    height, width = image.shape[:2]
    if out is None:
        out = np.zeros((height, width), np.uint32)
    elif tuple(out.shape) != (height, width):
        raise ValueError(f"out: expected shape {(height, width)}, got {tuple(out.shape)}")
    countdown = Countdown("segmenting blocks", len(plan.starts), unit="blocks") if progress else None

    def read(start: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
        y0, y1, x0, x1 = plan.window(start, image.shape)
        return np.asarray(image[y0:y1, x0:x1]), (y0, x0)

    if client is None:
        planned = plan.segmenter(segmenter)
        results = (segment_block(planned, *read(start), start, plan.block) for start in plan.starts)
    else:
        if make_segmenter is None:
            raise ValueError("segment_blockwise: a client needs make_segmenter (a picklable callable)")
        results = _remote_blocks(client, make_segmenter, plan, read)
    next_label, scale, rows = 1, 1.0, []
    for result in results:
        rows.append(_write_block(out, result, next_label))
        next_label += len(result.table)
        scale = result.scale
        if countdown is not None:
            countdown.step()
    if hasattr(out, "flush"):
        out.flush()
    columns = ["label", "area", "centroid_y", "centroid_x"]
    table = pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)
    return BlockwiseResult(out, table, next_label - 1, plan.diameter, scale, len(plan.starts))


def _remote_blocks(client: Any, make_segmenter: Any, plan: BlockPlan, read: Any) -> Any:
    """The blocks' :class:`BlockLabels` in order, segmented on ``client``'s workers."""
    from collections import deque

    workers = max(1, len(client.scheduler_info().get("workers", {})))
    in_flight: deque[Any] = deque()
    recipe, planned = client.scatter([make_segmenter, plan], broadcast=True)
    try:
        for start in plan.starts:
            pixels, origin = read(start)
            in_flight.append(client.submit(_segment_block_remotely, recipe, planned, pixels, origin, start, pure=False))
            if len(in_flight) >= 2 * workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
    finally:
        for future in in_flight:
            future.cancel()
