"""Images larger than memory: segmented block by block, nuclei stitched across block borders.

:func:`segment_blockwise` reads an image (any array that can be sliced, such as a
:func:`numpy.memmap` or :func:`tifffile.memmap` of an uncompressed TIFF) one block at a
time, with a margin of context around it, and writes the labels into an output array of
the same height and width (a memmap for an image larger than memory: :func:`open_labels`).
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


def open_labels(path: str, shape: tuple[int, int], dtype: Any = np.uint32) -> np.ndarray:
    """A label image on disk, written in place block by block: an uncompressed TIFF memmap
    (readable by any TIFF reader; ``tifffile.memmap`` reopens it)."""
    import tifffile

    return tifffile.memmap(path, shape=tuple(shape), dtype=dtype, photometric="minisblack")


def image_shape(path: str | Any) -> tuple[int, int]:
    """Height and width of an image file, read from its header (nothing decoded)."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shape = tif.series[0].shape
        return int(shape[0]), int(shape[1])
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
    return int(height), int(width)


def open_image(path: str | Any) -> Any:
    """A large image to read block by block: a memmap of an uncompressed TIFF (nothing read
    until sliced); other files are decoded whole (compressed TIFF, PNG, JPEG)."""
    from pathlib import Path

    from .io import read_raw

    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        try:
            return tifffile.memmap(path, mode="r")
        except ValueError:  # compressed or tiled: no memmap
            pass
    return read_raw(path)


def _level_sample(image: Any) -> np.ndarray:
    height, width = image.shape[:2]
    step = max(1, math.ceil(math.sqrt(height * width / LEVEL_SAMPLE_PIXELS)))
    return np.asarray(image[::step, ::step])


def segment_blockwise(
    segmenter: Any,
    image: Any,
    out: Any = None,
    *,
    block: int = 2048,
    margin: int | None = None,
    progress: bool = False,
) -> BlockwiseResult:
    """Segment a large image block by block (see the module docstring).

    Parameters
    ----------
    segmenter : nucleilib.segmenter.Segmenter
        Its diameter setting applies: ``"auto"`` estimates one diameter on the central block.
    image : array, shape (H, W) or (H, W, C)
        uint8 or uint16; only the slices of one block (with margin) are read at a time.
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
    """
    from skimage.measure import regionprops_table

    from .progress import Countdown

    block = multiple_of(block, 16, "block")
    if len(image.shape) not in (2, 3):
        raise ValueError(f"image: expected shape (H, W) or (H, W, C), got {tuple(image.shape)}")
    if np.dtype(image.dtype) not in (np.uint8, np.uint16):
        raise ValueError(f"image: blockwise segmentation needs uint8 or uint16 pixels, got {image.dtype}")
    height, width = image.shape[:2]
    if out is None:
        out = np.zeros((height, width), np.uint32)
    elif tuple(out.shape) != (height, width):
        raise ValueError(f"out: expected shape {(height, width)}, got {tuple(out.shape)}")
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
    leveled = leveled.with_settings(diameter=None if math.isnan(diameter) else diameter)
    if margin is None:
        margin = max(64, int(3 * (diameter if math.isfinite(diameter) else 20)))
    margin = -(-int(margin) // 16) * 16
    starts = [(y, x) for y in range(0, height, block) for x in range(0, width, block)]
    countdown = Countdown("segmenting blocks", len(starts), unit="blocks") if progress else None
    next_label, scale = 1, 1.0
    rows = []
    for by, bx in starts:
        y0, y1 = max(0, by - margin), min(height, by + block + margin)
        x0, x1 = max(0, bx - margin), min(width, bx + block + margin)
        segmented = leveled.segment_instances(np.asarray(image[y0:y1, x0:x1]))
        labels, scale = segmented.labels, segmented.scale
        if labels.max() > 0:
            table = regionprops_table(labels, properties=("label", "area", "centroid"))
            cy, cx = table["centroid-0"] + y0, table["centroid-1"] + x0
            inside = (cy >= by) & (cy < by + block) & (cx >= bx) & (cx < bx + block)
            owned = table["label"][inside]
            if owned.size:
                rows.append(
                    pd.DataFrame(
                        {
                            "label": np.arange(next_label, next_label + owned.size),
                            "area": table["area"][inside].astype(int),
                            "centroid_y": cy[inside],
                            "centroid_x": cx[inside],
                        }
                    )
                )
                lookup = np.zeros(int(labels.max()) + 1, np.uint64)
                lookup[owned] = np.arange(next_label, next_label + owned.size)
                next_label += owned.size
                region = np.asarray(out[y0:y1, x0:x1])
                # First come keeps a pixel two blocks' nuclei both claim.
                write = (lookup[labels] > 0) & (region == 0)
                region[write] = lookup[labels[write]]
                out[y0:y1, x0:x1] = region
        if countdown is not None:
            countdown.step()
    if hasattr(out, "flush"):
        out.flush()
    columns = ["label", "area", "centroid_y", "centroid_x"]
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return BlockwiseResult(out, table, next_label - 1, diameter, scale, len(starts))
