"""Shared fixtures: synthetic DSB-layout folders, an isolated cache, the real data.

The synthetic samples mimic the three DSB2018 modalities with discs drawn by
:func:`skimage.draw.disk`:

* ``fluorescence``: bright nuclei on a dark grey background;
* ``brightfield``: dark nuclei on a bright grey background;
* ``stained``: dark purple nuclei on a pink/purple background (colour).

Each can be written as an RGB, RGBA or grey (``L``) PNG.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage.draw import disk

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "dsb2018" / "stage1_train"

#: (centre_y, centre_x, radius) of the default, non-overlapping nuclei of a 64x64 image.
DEFAULT_DISCS: tuple[tuple[int, int, int], ...] = ((16, 16, 6), (40, 44, 8), (48, 14, 5))

#: Background / nucleus colours (RGB) of the synthetic modalities.
PALETTE: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "fluorescence": ((12, 12, 12), (200, 200, 200)),
    "brightfield": ((205, 205, 205), (90, 90, 90)),
    "stained": ((225, 170, 215), (95, 40, 140)),
}
KINDS = tuple(PALETTE)
MODES = ("RGB", "RGBA", "L")


def disc_mask(shape: tuple[int, int], centre_y: int, centre_x: int, radius: int) -> np.ndarray:
    """Boolean mask of one disc, clipped to ``shape``."""
    mask = np.zeros(shape, dtype=bool)
    mask[disk((centre_y, centre_x), radius, shape=shape)] = True
    return mask


def draw_rgb(
    kind: str,
    shape: tuple[int, int] = (64, 64),
    discs: Sequence[tuple[int, int, int]] = DEFAULT_DISCS,
    *,
    noise: int = 6,
    seed: int = 0,
) -> np.ndarray:
    """An (H, W, 3) uint8 image of ``kind`` with the given discs as nuclei.

    A little noise (the same on all channels, so grey stays grey) keeps the PNGs
    from compressing to a handful of bytes, which makes truncation meaningful.
    """
    background, nucleus = PALETTE[kind]
    image = np.empty((*shape, 3), dtype=np.int16)
    image[...] = background
    for cy, cx, r in discs:
        image[disc_mask(shape, cy, cx, r)] = nucleus
    if noise:
        rng = np.random.default_rng(seed)
        image += rng.integers(-noise, noise + 1, size=shape, dtype=np.int16)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def to_mode(rgb: np.ndarray, mode: str, *, seed: int = 0) -> np.ndarray:
    """The array to write for ``mode``: RGB as is, RGBA with a varying alpha, L as grey."""
    if mode == "RGB":
        return rgb
    if mode == "RGBA":
        alpha = np.random.default_rng(seed + 1).integers(0, 256, size=rgb.shape[:2], dtype=np.uint8)
        return np.dstack([rgb, alpha])
    if mode == "L":
        return rgb[..., 0].copy()
    raise ValueError(mode)


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_mask(path: Path, mask: np.ndarray) -> Path:
    """A binary 0/255 mask PNG, as in DSB2018."""
    return write_png(path, mask.astype(np.uint8) * 255)


def snapshot(root: Path) -> dict[str, tuple[str, int | None, int]]:
    """Every entry under ``root``: relative path -> (kind, size or None, mtime_ns), with file hashes."""
    import hashlib

    state: dict[str, tuple[str, int | None, int]] = {}
    for path in sorted(root.rglob("*")):
        st = path.stat()
        rel = path.relative_to(root).as_posix()
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[rel] = (digest, st.st_size, st.st_mtime_ns)
        else:
            state[rel] = ("dir", None, st.st_mtime_ns)
    return state


@dataclass
class SyntheticSample:
    """A sample written by :class:`DSBFactory` and what was written."""

    folder: Path
    image_path: Path
    mask_paths: list[Path]
    image: np.ndarray  # the array written to the image PNG
    rgb: np.ndarray  # the RGB image read_image should return
    masks: list[np.ndarray] = field(default_factory=list)

    @property
    def image_id(self) -> str:
        return self.folder.name

    @property
    def masks_dir(self) -> Path:
        return self.folder / "masks"

    @property
    def images_dir(self) -> Path:
        return self.folder / "images"

    @property
    def union(self) -> np.ndarray:
        return np.logical_or.reduce(self.masks)


class DSBFactory:
    """Builds small DSB-layout folders under ``tmp_path``.

    ``factory.sample(...)`` writes ``<root>/<id>/images/<id>.png`` and one
    ``<root>/<id>/masks/<k>.png`` per disc; ``factory.dataset(...)`` writes a few
    samples of varied modality and mode and returns the root.
    """

    # Helpers for tests, reachable through the fixture.
    draw_rgb = staticmethod(draw_rgb)
    disc_mask = staticmethod(disc_mask)
    write_png = staticmethod(write_png)
    write_mask = staticmethod(write_mask)
    snapshot = staticmethod(snapshot)
    kinds = KINDS
    modes = MODES

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "stage1_train"

    def sample(
        self,
        image_id: str = "sample",
        *,
        root: Path | None = None,
        kind: str = "fluorescence",
        mode: str = "RGB",
        shape: tuple[int, int] = (64, 64),
        discs: Sequence[tuple[int, int, int]] = DEFAULT_DISCS,
        seed: int = 0,
    ) -> SyntheticSample:
        folder = (root or self.root) / image_id
        rgb = draw_rgb(kind, shape, discs, seed=seed)
        image = to_mode(rgb, mode, seed=seed)
        image_path = write_png(folder / "images" / f"{image_id}.png", image)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        masks, mask_paths = [], []
        for k, (cy, cx, r) in enumerate(discs, start=1):
            mask = disc_mask(shape, cy, cx, r)
            masks.append(mask)
            mask_paths.append(write_mask(folder / "masks" / f"{k}.png", mask))
        expected_rgb = np.repeat(image[..., None], 3, axis=-1) if mode == "L" else rgb
        return SyntheticSample(folder, image_path, mask_paths, image, expected_rgb, masks)

    def dataset(
        self,
        n: int = 6,
        *,
        root: Path | None = None,
        prefix: str = "img",
    ) -> Path:
        """``n`` samples cycling through the modalities and modes, ids ``<prefix>00``..."""
        root = root or self.root
        for i in range(n):
            discs = DEFAULT_DISCS[: 1 + i % len(DEFAULT_DISCS)]
            self.sample(
                f"{prefix}{i:02d}",
                root=root,
                kind=KINDS[i % len(KINDS)],
                mode=MODES[(i // len(KINDS)) % len(MODES)],
                discs=discs,
                seed=i,
            )
        return root


@pytest.fixture
def dsb(tmp_path: Path) -> DSBFactory:
    """Factory of synthetic DSB-layout folders under ``tmp_path / "data"``."""
    return DSBFactory(tmp_path / "data")


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``$NUCLEI_CACHE_DIR`` at a fresh folder so no test touches the user cache."""
    cache = tmp_path_factory.mktemp("nuclei-cache")
    monkeypatch.setenv("NUCLEI_CACHE_DIR", str(cache))
    yield cache


@pytest.fixture
def cache_path(isolated_cache: Path) -> Path:
    return isolated_cache


@pytest.fixture
def real_data_root() -> Path:
    """The real DSB2018 stage1_train: ``$NUCLEI_DATA_DIR`` or ``../shared/data/dsb2018/stage1_train``."""
    env = os.environ.get("NUCLEI_DATA_DIR")
    root = Path(env).expanduser() if env else DEFAULT_REAL_DATA
    if not root.is_dir():
        pytest.skip(f"real DSB2018 data not found at {root}")
    return root


# --------------------------------------------------------------------------- tiny networks

#: A tiny untrained U-Net (base width 4, depth 2, two outputs): fast to build, convert and run.
TINY_CONFIG_KWARGS: dict[str, object] = {
    "base_filters": 4,
    "depth": 2,
    "outputs": ("foreground", "border"),
    "min_size": 1,
}


def tiny_config() -> Any:
    """The :class:`~nucleilib.models.ModelConfig` of the tiny U-Net."""
    from nucleilib.models import ModelConfig

    return ModelConfig(**TINY_CONFIG_KWARGS)


def smooth_images(n: int, shape: tuple[int, int], seed: int) -> list[np.ndarray]:
    """Images in [0, 1] with blobs, more like preprocessed micrographs than white noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        noise = ndimage.gaussian_filter(rng.random(shape), 3)
        grey = np.clip((noise - noise.min()) / (np.ptp(noise) + 1e-9), 0, 1)
        out.append(np.repeat(grey[..., None], 3, axis=-1).astype(np.float32))
    return out


@pytest.fixture(scope="session")
def tiny_unet() -> Any:
    """The tiny U-Net of :func:`tiny_config`, seeded, shared by the backend, export and benchmark tests."""
    import tensorflow as tf

    from nucleilib.models import build_unet

    tf.keras.utils.set_random_seed(0)
    return build_unet(tiny_config())


@pytest.fixture(scope="session")
def tflite_buffers(tiny_unet: Any) -> dict[str, bytes]:
    """The tiny U-Net converted to every TensorFlow Lite kind (int8 calibrated on smooth crops)."""
    from nucleilib.backends import TFLITE_KINDS
    from nucleilib.export import representative_crops, to_tflite

    crops = representative_crops(smooth_images(3, (120, 150), seed=1), n=6, size=64, seed=0)
    return {kind: to_tflite(tiny_unet, kind, crops if kind == "int8" else None) for kind in TFLITE_KINDS}
