"""Choosing the test images to explain and cutting them to square windows of one size.

:func:`pick_per_modality` draws image ids per modality, :func:`pick_test_samples`
loads the drawn test images of a split, :func:`explanation_windows` cuts one
window per image (centred on its nuclei, with :func:`centre_crop`) into a
:class:`Windows`, and :func:`largest_nucleus_masks` picks the nucleus that the
per-nucleus explanations explain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from ...models import ModelConfig
from ...validation import multiple_of, positive_int


def pick_per_modality(
    table: pd.DataFrame,
    n: int,
    *,
    seed: int = 42,
    modalities: Sequence[str] | None = None,
) -> list[str]:
    """Pick up to ``n`` image ids of each modality, reproducibly.

    Parameters
    ----------
    table : DataFrame
        Columns ``image_id`` and ``modality`` (a split file or the manifest).
    n : int
        Images per modality; a modality with fewer images gives them all.
    seed : int
        Seed of the choice; the ids are drawn from each modality's ids in
        sorted order, so the table's row order does not matter.
    modalities : sequence of str, optional
        Modalities in the order wanted; default the order of first appearance
        in ``table``. A modality absent from ``table`` gives nothing.

    Returns
    -------
    list of str
        Ids grouped by modality, sorted within a modality.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"image_id": list("abcde"), "modality": ["x", "x", "x", "y", "y"]})
    >>> len(pick_per_modality(table, 2, seed=0))
    4
    >>> pick_per_modality(table, 5, modalities=["y"])
    ['d', 'e']
    """
    positive_int(n, "n")
    missing = {"image_id", "modality"} - set(table.columns)
    if missing:
        raise ValueError(f"table lacks column(s) {', '.join(sorted(missing))}")
    order = list(modalities) if modalities is not None else list(dict.fromkeys(table["modality"]))
    rng = np.random.default_rng(seed)
    picked: list[str] = []
    for modality in order:
        ids = sorted(table.loc[table["modality"] == modality, "image_id"].astype(str).unique())
        if not ids:
            continue
        chosen = rng.choice(len(ids), size=min(n, len(ids)), replace=False)
        picked += [ids[i] for i in sorted(chosen)]
    return picked


def pick_test_samples(
    artefacts: Any, split: str, n_per_modality: int, *, seed: int = 42, max_images: int | None = None
) -> tuple[list[Any], list[str]]:
    """Test samples of a split, up to ``n_per_modality`` per modality, and their modalities.

    Reads ``splits/split-<split>.csv`` and ``manifest.csv`` from a profile's
    artefact folder and loads only the picked images (see :func:`pick_per_modality`).

    Examples
    --------
    >>> samples, modality = pick_test_samples("artefacts/cpu", "original", 3)  # doctest: +SKIP
    >>> sorted(set(modality))  # doctest: +SKIP
    ['brightfield', 'fluorescence', 'stained tissue']
    """
    import warnings
    from pathlib import Path

    from ...data import data_root, load_dataset
    from ..manifest import MODALITIES

    folder = Path(artefacts)
    split_table = pd.read_csv(folder / "splits" / f"split-{split}.csv")
    manifest = pd.read_csv(folder / "manifest.csv").set_index("image_id")
    test_table = split_table[split_table["subset"] == "test"][["image_id"]].assign(
        modality=lambda t: manifest.loc[t["image_id"], "modality"].to_numpy()
    )
    picked = pick_per_modality(test_table, n_per_modality, seed=seed, modalities=MODALITIES)
    if max_images is not None:
        picked = picked[:max_images]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # overlapping masks, reported in the data chapter
        loaded = {s.image_id: s for s in load_dataset(data_root(), ids=picked)}
    return [loaded[i] for i in picked], [str(manifest.loc[i, "modality"]) for i in picked]


@dataclasses.dataclass(frozen=True)
class Windows:
    """Square windows of test images, ready to explain (see :func:`explanation_windows`).

    Attributes
    ----------
    ids, modality : list of str
        Image ids and their modality, one per window.
    x : ndarray, shape (N, S, S, C)
        Preprocessed network input.
    raw : ndarray, shape (N, S, S, 3)
        The original pixels of the same windows, for display.
    truth_labels : ndarray, shape (N, S, S)
        Annotated nuclei in the windows.
    """

    ids: list[str]
    modality: list[str]
    x: np.ndarray
    raw: np.ndarray
    truth_labels: np.ndarray

    @property
    def truth(self) -> np.ndarray:
        """Annotated nucleus pixels, ``(N, S, S)`` booleans."""
        return self.truth_labels > 0

    def table(self) -> pd.DataFrame:
        """Modality, nuclei and nucleus area share of each window."""
        return pd.DataFrame(
            {
                "modality": self.modality,
                "nuclei in window": [len(np.unique(t)) - 1 for t in self.truth_labels],
                "nucleus area share": self.truth.mean(axis=(1, 2)),
            },
            index=[i[:12] for i in self.ids],
        )


def explanation_windows(samples: Any, modality: Sequence[str], config: ModelConfig, size: int) -> Windows:
    """Cut one ``size`` x ``size`` window of each sample, centred on its nuclei.

    Each image is preprocessed as the model was trained (over the whole image,
    so the window looks as it does in full-image prediction) and the window is
    centred on the centre of mass of the annotated nuclei, so that a window of
    an unevenly covered image still holds nuclei.

    Parameters
    ----------
    samples : sequence of Sample
    modality : sequence of str
        The modality of each sample.
    config : ModelConfig
        Preprocessing settings (sigma, inversion, grey input).
    size : int
        Window side, a positive multiple of 16.

    Examples
    --------
    >>> import numpy as np
    >>> from nucleilib.data import Sample
    >>> from nucleilib.models import ModelConfig
    >>> labels = np.zeros((40, 60), np.uint16); labels[25:30, 45:52] = 1
    >>> image = np.where(labels[..., None] > 0, 200, 10).astype(np.uint8).repeat(3, axis=-1)
    >>> windows = explanation_windows([Sample("a", image, labels)], ["fluorescence"], ModelConfig(), 16)
    >>> windows.x.shape, int(windows.truth.sum())
    ((1, 16, 16, 3), 35)
    """
    from ...preprocess import preprocess

    samples = list(samples)
    if len(samples) != len(modality):
        raise ValueError(f"{len(samples)} samples but {len(modality)} modalities")
    if not samples:
        raise ValueError("no samples to cut windows from")
    multiple_of(size, 16, "size")
    centres = [ndimage.center_of_mass(s.labels > 0) if s.labels.any() else None for s in samples]
    x = np.stack(
        [
            centre_crop(
                preprocess(
                    s.image, sigma=config.sigma, invert_bright=config.invert_bright, grey=config.in_channels == 1
                ),
                size,
                c,
            )
            for s, c in zip(samples, centres)
        ]
    )
    raw = np.stack([centre_crop(s.image, size, c) for s, c in zip(samples, centres)])
    truth_labels = np.stack([centre_crop(s.labels, size, c) for s, c in zip(samples, centres)])
    return Windows([s.image_id for s in samples], list(modality), x, raw, truth_labels)


def centre_crop(array: np.ndarray, size: int, centre: tuple[float, float] | None = None) -> np.ndarray:
    """A ``size`` x ``size`` window of an image or label array, centred where asked.

    Axes shorter than ``size`` are first padded symmetrically (mirror images of
    the edge, on both sides), so the result always has the requested size.

    Parameters
    ----------
    array : ndarray, shape (H, W) or (H, W, C)
    size : int
    centre : (float, float), optional
        Row and column (in ``array``'s coordinates) to centre the window on;
        default the middle of the image. The window is shifted as needed to
        stay inside the (padded) image.

    Returns
    -------
    ndarray, shape (size, size) or (size, size, C)
        Same dtype as ``array``.

    Examples
    --------
    >>> import numpy as np
    >>> centre_crop(np.arange(36).reshape(6, 6), 2).tolist()
    [[14, 15], [20, 21]]
    >>> centre_crop(np.arange(36).reshape(6, 6), 2, centre=(0, 5)).tolist()
    [[4, 5], [10, 11]]
    >>> centre_crop(np.zeros((3, 5, 3)), 8).shape
    (8, 8, 3)
    """
    values = np.asarray(array)
    if values.ndim not in (2, 3) or 0 in values.shape[:2]:
        raise ValueError(f"expected a non-empty (H, W) or (H, W, C) array, got shape {values.shape}")
    positive_int(size, "size")
    height, width = values.shape[:2]
    if centre is None:
        centre = ((height - 1) / 2, (width - 1) / 2)
    if len(centre) != 2 or not all(np.isfinite(c) for c in centre):
        raise ValueError(f"centre must be a (row, column) pair of finite numbers, got {centre!r}")
    pads = []
    for length in (height, width):
        missing = max(size - length, 0)
        pads.append((missing // 2, missing - missing // 2))
    if any(before or after for before, after in pads):
        values = np.pad(values, pads + [(0, 0)] * (values.ndim - 2), mode="symmetric")
    starts = []
    for c, (before, _), length in zip(centre, pads, values.shape[:2]):
        start = int(np.floor(c + before - (size - 1) / 2))
        starts.append(min(max(start, 0), length - size))
    top, left = starts
    return np.ascontiguousarray(values[top : top + size, left : left + size])


def largest_nucleus_masks(labels: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray | None]:
    """The largest labelled nucleus of each window, as a mask, or None for a window without one.

    Parameters
    ----------
    labels : ndarray, shape (N, H, W), or sequence of (H, W) arrays
        Label images (0 = background), e.g. :attr:`Windows.truth_labels`.

    Returns
    -------
    list of (ndarray of bool, shape (H, W)) or None
        One entry per window. Of equally large nuclei, the lowest label wins.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.array([[[1, 2, 2], [0, 2, 3]], [[0, 0, 0], [0, 0, 0]]])
    >>> masks = largest_nucleus_masks(labels)
    >>> masks[0].astype(int).tolist(), masks[1]
    ([[0, 1, 1], [0, 1, 0]], None)
    """
    masks: list[np.ndarray | None] = []
    for k, window in enumerate(labels):
        window = np.asarray(window)
        if window.ndim != 2 or not np.issubdtype(window.dtype, np.integer):
            raise ValueError(
                f"labels[{k}]: expected a 2-D integer label image, got {window.dtype} of shape {window.shape}"
            )
        values, counts = np.unique(window[window > 0], return_counts=True)
        masks.append(window == values[np.argmax(counts)] if len(values) else None)
    return masks
