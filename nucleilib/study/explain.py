"""Explaining the U-Net: Grad-CAM (tf-explain), LRP (innvestigate) and measures of the maps.

Three parts, and two helpers to choose test images (:func:`pick_per_modality`)
and cut them to one size (:func:`centre_crop`):

* Grad-CAM, eager mode: :func:`score_model` turns the segmentation network into
  one score per image (tf-explain's :class:`~tf_explain.core.grad_cam.GradCAM`
  selects ``predictions[:, class_index]``, which for an ``(N, H, W, 1)`` output
  would pick an image *row*); :func:`grad_cam` computes raw maps with
  tf-explain's own gradient and weighting steps at any named layer;
  :func:`default_cam_layers` lists layers at several depths.
* Layer-wise relevance propagation, graph mode: :func:`lrp_model` rebuilds the
  network from a :class:`~nucleilib.models.ModelConfig` and its weights without
  the final sigmoid, folds batch normalisation into the convolutions before it
  and ends with the mean foreground logit (innvestigate 2.1.2 cannot explain an
  output of more than two dimensions); :func:`lrp_maps` runs one of
  :data:`LRP_RULES`. Both need ``tf.compat.v1.disable_eager_execution()``,
  called before any model is built, so they cannot share a process with the
  Grad-CAM half.
* Measures, pure NumPy: :func:`relevance_share`, :func:`pointing_game`,
  :func:`map_correlation`, :func:`map_similarity` (for the model-randomisation
  sanity check of Adebayo et al. 2018, with :func:`randomise_weights` and
  :func:`layer_blocks`), :func:`boundary_band` and :func:`explanation_metrics`,
  one table row per image, summarised by :func:`summarise_measures`.
* Figures shared by the two explanation chapters: :func:`explanation_grid`
  (image, truth, probability and one map per layer or rule) and
  :func:`placeholder_figure`.

TensorFlow, tf-explain, innvestigate, matplotlib and scikit-image are imported
inside the functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from ..models import ModelConfig, build_unet

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The LRP rules compared in the explainability chapter (innvestigate analyzer names).
LRP_RULES: tuple[str, ...] = ("lrp.epsilon", "lrp.z", "lrp.alpha_1_beta_0", "lrp.sequential_preset_a")
#: Candidate Grad-CAM layers, from the first encoder level to the last decoder level.
DEFAULT_CAM_LAYERS: tuple[str, ...] = ("enc1_relu2", "enc3_relu2", "bottleneck_relu2", "dec3_relu2", "dec1_relu2")
#: Output channels by name (the order of ``ModelConfig.outputs``).
TARGETS: dict[str, int] = {"foreground": 0, "border": 1}
#: Randomisation methods of :func:`randomise_weights`.
RANDOMISATIONS: tuple[str, ...] = ("initializer", "normal")
#: Map styles of :func:`explanation_grid`.
GRID_STYLES: tuple[str, ...] = ("heat", "signed")
#: Columns that :func:`summarise_measures` needs (``boundary_share`` and
#: ``boundary_area_share`` are used when present).
SUMMARY_COLUMNS: tuple[str, ...] = ("image_id", "relevance_share", "area_share", "pointing_game", "correlation")


# --------------------------------------------------------------------------- validation


def _model_output_channels(model: Any) -> int:
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        raise ValueError("model: expected a Keras model with exactly one output")
    shape = tuple(outputs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"model: expected an output of shape (N, H, W, K), got {shape}")
    return int(shape[-1])


def _channel_index(target: str | int, n_channels: int) -> int:
    if isinstance(target, str):
        if target not in TARGETS:
            raise ValueError(f"unknown target {target!r}; choose one of {', '.join(TARGETS)} or a channel index")
        channel = TARGETS[target]
    elif isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        channel = int(target)
    else:
        raise ValueError(f"target must be a name ({', '.join(TARGETS)}) or a channel index, got {target!r}")
    if not 0 <= channel < n_channels:
        raise ValueError(f"target {target!r} is channel {channel}, but the model has {n_channels} output channel(s)")
    return channel


def _as_mask(mask: Any, name: str = "mask") -> np.ndarray:
    """A 2-D boolean array from a boolean or 0/1 array."""
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: empty array of shape {array.shape}")
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{name}: expected a boolean or 0/1 array, got dtype {array.dtype}")
    if not np.isin(array, (0, 1)).all():
        raise ValueError(f"{name}: expected a boolean or 0/1 array, got other values")
    return array.astype(bool)


def _as_map(values: Any, name: str = "map") -> np.ndarray:
    """A finite 2-D float64 array."""
    array = np.asarray(values)
    if array.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) array, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: empty array of shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"{name}: expected a numeric array, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def _map_and_mask(values: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    array, region = _as_map(values), _as_mask(mask)
    if array.shape != region.shape:
        raise ValueError(f"map of shape {array.shape} and mask of shape {region.shape} differ")
    return array, region


def _as_batch(images: Any, model: Any) -> np.ndarray:
    """Validated float32 images (N, H, W, C) matching the model's input."""
    array = np.asarray(images)
    if array.ndim != 4:
        raise ValueError(f"image_batch: expected shape (N, H, W, C), got {array.shape}")
    if 0 in array.shape:
        raise ValueError(f"image_batch: empty batch of shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"image_batch: expected numbers, got dtype {array.dtype}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError("image_batch: contains NaN or infinite values")
    expected = tuple(model.inputs[0].shape)[1:]
    for axis, (want, got) in enumerate(zip(expected, array.shape[1:])):
        if want is not None and int(want) != got:
            raise ValueError(f"image_batch: the model expects inputs of shape (N, {expected}), got {array.shape} "
                             f"(axis {axis + 1} differs)")
    return array


def _short_name(variable: Any) -> str:
    """``"kernel"`` for a variable named ``"enc1_conv1/kernel:0"`` (or ``"enc1_conv1_3/kernel:0"``)."""
    return str(variable.name).split("/")[-1].split(":")[0]


def _normalised(values: np.ndarray) -> np.ndarray:
    """``values`` divided by their largest magnitude (zeros stay zeros)."""
    peak = float(np.abs(values).max())
    return values / peak if peak > 0 else np.zeros_like(values)


# --------------------------------------------------------------------------- choosing images


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
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
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


def pick_test_samples(artefacts: Any, split: str, n_per_modality: int, *, seed: int = 42,
                      max_images: int | None = None) -> tuple[list[Any], list[str]]:
    """Test samples of a split, up to ``n_per_modality`` per modality, and their modalities.

    Reads ``splits/split-<split>.csv`` and ``manifest.csv`` from a profile's
    artefact folder and loads only the picked images (see :func:`pick_per_modality`).
    """
    import warnings
    from pathlib import Path

    from ..data import data_root, load_dataset
    from .manifest import MODALITIES

    folder = Path(artefacts)
    split_table = pd.read_csv(folder / "splits" / f"split-{split}.csv")
    manifest = pd.read_csv(folder / "manifest.csv").set_index("image_id")
    test_table = split_table[split_table["subset"] == "test"][["image_id"]].assign(
        modality=lambda t: manifest.loc[t["image_id"], "modality"].to_numpy())
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
        return self.truth_labels > 0

    def table(self) -> pd.DataFrame:
        """Modality, nuclei and nucleus area share of each window."""
        return pd.DataFrame({
            "modality": self.modality,
            "nuclei in window": [len(np.unique(t)) - 1 for t in self.truth_labels],
            "nucleus area share": self.truth.mean(axis=(1, 2)),
        }, index=[i[:12] for i in self.ids])


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
    """
    from ..preprocess import preprocess

    samples = list(samples)
    if len(samples) != len(modality):
        raise ValueError(f"{len(samples)} samples but {len(modality)} modalities")
    if not samples:
        raise ValueError("no samples to cut windows from")
    if size < 16 or size % 16:
        raise ValueError(f"size must be a positive multiple of 16, got {size}")
    centres = [ndimage.center_of_mass(s.labels > 0) if s.labels.any() else None for s in samples]
    x = np.stack([
        centre_crop(preprocess(s.image, sigma=config.sigma, invert_bright=config.invert_bright,
                               grey=config.in_channels == 1), size, c)
        for s, c in zip(samples, centres)
    ])
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
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
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
    return np.ascontiguousarray(values[top:top + size, left:left + size])


# --------------------------------------------------------------------------- Grad-CAM


def score_model(model: Any, target: str | int = "foreground", region: np.ndarray | None = None) -> Any:
    """A model sharing ``model``'s layers whose output is one score per image.

    Parameters
    ----------
    model : tf.keras.Model
        A segmentation network with one output of shape ``(N, H, W, K)``
        (probabilities).
    target : str or int
        Output channel: ``"foreground"`` (0), ``"border"`` (1) or an index.
    region : ndarray of bool, shape (H, W), optional
        A region of the image (one nucleus, say). Without it the score is the
        mean probability of the channel over the image; with it, the
        probability mass (sum of the probabilities) inside the region. Images
        fed to the returned model must then be ``H`` x ``W``.

    Returns
    -------
    tf.keras.Model
        Output of shape ``(N, 1)``. Built on ``model``'s own tensors, so its
        layers (``"enc2_relu2"``...) are reachable with ``get_layer`` and share
        their weights with ``model``. The new layers are ``"score_channel"``
        and ``"score"``.

    Raises
    ------
    ValueError
        For a model with another output shape, an unknown target or a region
        that is not a non-empty 2-D boolean mask (or does not fit a model of
        fixed input size).

    Examples
    --------
    >>> scorer = score_model(model)  # doctest: +SKIP
    >>> scorer.predict(images).shape  # doctest: +SKIP
    (4, 1)
    """
    import tensorflow as tf
    from tensorflow.keras import layers

    channel = _channel_index(target, _model_output_channels(model))
    mask = None
    if region is not None:
        mask = _as_mask(region, "region")
        if not mask.any():
            raise ValueError("region: the mask is empty (no pixel is set)")
        fixed = tuple(model.inputs[0].shape)[1:3]
        if all(d is not None for d in fixed) and tuple(int(d) for d in fixed) != mask.shape:
            raise ValueError(f"region of shape {mask.shape} does not fit the model input {fixed}")
    selected = layers.Lambda(lambda t: tf.cast(t[..., channel:channel + 1], tf.float32),
                             name="score_channel", dtype="float32")(model.outputs[0])
    if mask is None:
        score = layers.GlobalAveragePooling2D(name="score", dtype="float32")(selected)
    else:
        weights = mask[None, :, :, None].astype(np.float32)
        score = layers.Lambda(lambda t: tf.reduce_sum(t * tf.constant(weights), axis=(1, 2)),
                              name="score", dtype="float32")(selected)
    return tf.keras.Model(model.inputs, score, name=f"{model.name}_score")


def default_cam_layers(model: Any) -> list[str]:
    """Grad-CAM layers at several depths of the encoder and decoder that ``model`` has.

    The candidates are :data:`DEFAULT_CAM_LAYERS` (the last ReLU of encoder
    levels 1 and 3, of the bottleneck, and of decoder levels 3 and 1), kept in
    that order when they exist: a depth-2 U-Net gives
    ``["enc1_relu2", "bottleneck_relu2", "dec1_relu2"]``. Other architectures
    may give an empty list.
    """
    names = {layer.name for layer in model.layers}
    return [name for name in DEFAULT_CAM_LAYERS if name in names]


def grad_cam(
    model: Any,
    image_batch: np.ndarray,
    layer_name: str,
    region: np.ndarray | None = None,
    *,
    target: str | int = "foreground",
    guided: bool = False,
    batch_size: int = 4,
) -> np.ndarray:
    """Raw Grad-CAM maps of a segmentation network at one layer.

    Computed with tf-explain's :class:`~tf_explain.core.grad_cam.GradCAM`
    (``get_gradients_and_filters`` on a :func:`score_model` and
    ``generate_ponderated_output``): each feature map of ``layer_name`` is
    weighted by the spatial mean of the gradient of the score with respect to
    it, and the weighted sum is kept where positive (Selvaraju et al. 2017),
    upsampled (bilinear) to the input size and divided by its maximum.

    Parameters
    ----------
    model : tf.keras.Model
        Segmentation network, output ``(N, H, W, K)`` probabilities.
    image_batch : ndarray, shape (N, H, W, C)
        Preprocessed images.
    layer_name : str
        The layer to explain (e.g. ``"enc2_relu2"``); always explicit, since
        tf-explain's guess (the last 4-D layer) would be the output itself.
    region : ndarray of bool, shape (H, W), optional
        Explain the probability mass inside this region instead of the mean
        probability of the image (see :func:`score_model`).
    target : str or int
        Output channel (see :func:`score_model`).
    guided : bool
        Use tf-explain's guided gradients (only positive gradients at positive
        activations) instead of the plain gradients of the Grad-CAM paper.
    batch_size : int
        Images per gradient computation.

    Returns
    -------
    ndarray of float32, shape (N, H, W)
        Values in [0, 1]; an image whose weighted sum is nowhere positive gets a
        map of zeros.

    Raises
    ------
    ValueError
        For a layer that does not exist or has no spatial output, or invalid
        images, region or target.
    RuntimeError
        Under graph mode (``disable_eager_execution``).

    Examples
    --------
    >>> maps = grad_cam(model, x, "dec1_relu2")  # doctest: +SKIP
    >>> maps.shape == x.shape[:3]  # doctest: +SKIP
    True
    """
    import tensorflow as tf
    from tf_explain.core.grad_cam import GradCAM

    if not tf.executing_eagerly():
        raise RuntimeError("grad_cam needs eager execution; it cannot run after disable_eager_execution()")
    if not isinstance(layer_name, str) or not layer_name:
        raise ValueError(f"layer_name must be a layer's name, got {layer_name!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        shown = ", ".join(default_cam_layers(model)) or ", ".join(names[-5:])
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r} (try one of: {shown})")
    if len(tuple(model.get_layer(layer_name).output.shape)) != 4:
        raise ValueError(f"layer {layer_name!r} has no spatial output (shape "
                         f"{tuple(model.get_layer(layer_name).output.shape)}); Grad-CAM needs (N, h, w, c)")
    images = _as_batch(image_batch, model)
    height, width = images.shape[1:3]
    if region is not None and _as_mask(region, "region").shape != (height, width):
        raise ValueError(f"region of shape {np.shape(region)} does not match the images ({height}, {width})")
    scorer = score_model(model, target, region)
    maps = []
    for start in range(0, len(images), batch_size):
        chunk = images[start:start + batch_size]
        outputs, grads = GradCAM.get_gradients_and_filters(scorer, chunk, layer_name, 0, guided)
        cams = tf.stack(GradCAM.generate_ponderated_output(outputs, grads))[..., None]
        cams = tf.image.resize(tf.nn.relu(tf.cast(cams, tf.float32)), (height, width), method="bilinear")
        maps.append(cams.numpy()[..., 0])
    result = np.concatenate(maps).astype(np.float32)
    peak = result.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, result / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


# --------------------------------------------------------------------------- measures


class RelevanceShare(NamedTuple):
    """How much of a map's positive relevance falls inside a mask.

    Attributes
    ----------
    share : float
        Positive relevance inside the mask over all positive relevance, in
        [0, 1]; NaN when the map has no positive value.
    area : float
        Fraction of the pixels inside the mask: the share a map spread evenly
        over the image would get.
    enrichment : float
        ``share / area``: 1 means no better than even spreading; NaN when
        either is undefined or the mask is empty.
    """

    share: float
    area: float
    enrichment: float


def relevance_share(relevance_map: np.ndarray, mask: np.ndarray) -> RelevanceShare:
    """Share of a map's positive relevance inside a mask, against the mask's area share.

    Parameters
    ----------
    relevance_map : ndarray, shape (H, W)
        Grad-CAM or LRP map; negative values are ignored.
    mask : ndarray of bool (or 0/1), shape (H, W)
        The region (e.g. the annotated nuclei).

    Returns
    -------
    RelevanceShare

    Raises
    ------
    ValueError
        For arrays of different or non-2-D shapes, a non-binary mask or
        non-finite map values.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((4, 4), bool); mask[:2] = True
    >>> relevance_share(mask.astype(float), mask)
    RelevanceShare(share=1.0, area=0.5, enrichment=2.0)
    >>> relevance_share(np.ones((4, 4)), mask).share
    0.5
    """
    values, region = _map_and_mask(relevance_map, mask)
    positive = np.clip(values, 0.0, None)
    total = float(positive.sum())
    share = float(positive[region].sum() / total) if total > 0 else float("nan")
    area = float(region.mean())
    enrichment = share / area if area > 0 and np.isfinite(share) else float("nan")
    return RelevanceShare(share, area, float(enrichment))


def pointing_game(relevance_map: np.ndarray, mask: np.ndarray, *, tolerance: float = 0.0) -> bool:
    """Whether the map's maximum lies inside the mask (Zhang et al. 2018).

    Parameters
    ----------
    relevance_map : ndarray, shape (H, W)
    mask : ndarray of bool (or 0/1), shape (H, W)
    tolerance : float
        Count a hit within this many pixels (Euclidean) of the mask; 0 (the
        default) asks for the maximum to be inside it.

    Returns
    -------
    bool
        With ties, the first maximal pixel in row-major order counts. A
        constant map points nowhere and always loses.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((5, 5), bool); mask[1, 1] = True
    >>> heat = np.zeros((5, 5)); heat[1, 1] = 1
    >>> pointing_game(heat, mask), pointing_game(1 - heat, mask)
    (True, False)
    """
    values, region = _map_and_mask(relevance_map, mask)
    if not np.isfinite(tolerance) or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if values.max() == values.min() or not region.any():
        return False
    if tolerance > 0:
        region = ndimage.distance_transform_edt(~region) <= tolerance
    return bool(region.flat[int(np.argmax(values))])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if norm == 0.0:
        return 0.0
    return float(np.clip((a * b).sum() / norm, -1.0, 1.0))


def map_correlation(relevance_map: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of a map with a binary mask (point-biserial correlation).

    Returns 0.0, without a warning, when the map or the mask is constant (a
    constant map carries no information about the mask).

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.eye(4, dtype=bool)
    >>> map_correlation(mask.astype(float), mask), map_correlation(np.ones((4, 4)), mask)
    (1.0, 0.0)
    """
    values, region = _map_and_mask(relevance_map, mask)
    return _pearson(values, region.astype(np.float64))


def map_similarity(a: np.ndarray, b: np.ndarray, *, absolute: bool = False) -> float:
    """Spearman rank correlation of two maps (the randomisation sanity check).

    Parameters
    ----------
    a, b : ndarray, shape (H, W)
        Two explanations of the same image, e.g. before and after randomising
        the weights (Adebayo et al. 2018).
    absolute : bool
        Compare the magnitudes ``|a|`` and ``|b|`` (useful for signed LRP maps).

    Returns
    -------
    float
        In [-1, 1]; 0.0 when either map is constant. Ties get average ranks.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(4, 4)
    >>> map_similarity(x, x ** 3), map_similarity(x, -x)
    (1.0, -1.0)
    """
    first, second = _as_map(a, "a"), _as_map(b, "b")
    if first.shape != second.shape:
        raise ValueError(f"maps of shapes {first.shape} and {second.shape} differ")
    if absolute:
        first, second = np.abs(first), np.abs(second)
    if first.max() == first.min() or second.max() == second.min():
        return 0.0
    return _pearson(stats.rankdata(first.ravel()), stats.rankdata(second.ravel()))


def _check_width(width: Any, name: str) -> None:
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"{name} must be a positive integer, got {width!r}")


def boundary_band(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The pixels within ``width`` pixels of a mask's outline, on both sides of it.

    The dilation of the mask minus its erosion, both by ``width`` steps of a
    3 x 3 square (so distances are chessboard distances): ``width`` rings of
    pixels just inside the outline and ``width`` rings just outside it. The
    image's own edge is not an outline: a mask that touches it is not eroded
    from there (a nucleus cut by a crop goes on beyond it).

    Parameters
    ----------
    mask : ndarray of bool (or 0/1), shape (H, W)
        The region, e.g. the annotated nuclei.
    width : int
        Half-width of the band in pixels, at least 1.

    Returns
    -------
    ndarray of bool, shape (H, W)
        Empty for an empty mask or a mask that covers the whole image.

    Raises
    ------
    ValueError
        For a mask that is not 2-D and binary, or a width that is not a
        positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((8, 8), bool); mask[2:6, 2:6] = True
    >>> band = boundary_band(mask, 1)
    >>> int(band.sum()), bool(band[3, 3]), bool(band[2, 2]), bool(band[1, 1])
    (32, False, True, True)
    """
    region = _as_mask(mask)
    _check_width(width, "width")
    if not region.any():
        return np.zeros_like(region)
    square = np.ones((3, 3), bool)
    grown = ndimage.binary_dilation(region, structure=square, iterations=int(width))
    shrunk = ndimage.binary_erosion(region, structure=square, iterations=int(width), border_value=1)
    return grown & ~shrunk


def explanation_metrics(
    maps: Sequence[np.ndarray] | np.ndarray,
    masks: Sequence[np.ndarray] | np.ndarray,
    ids: Sequence[str],
    *,
    tolerance: float = 0.0,
    boundary_width: int = 2,
) -> pd.DataFrame:
    """The measures of each map against its mask, one row per image.

    Parameters
    ----------
    maps : sequence of ndarray, shape (H, W)
        Explanations (any scale, any sign).
    masks : sequence of ndarray of bool, shape (H, W)
        Matching masks (e.g. annotated nuclei).
    ids : sequence of str
        Image ids.
    tolerance : float
        Tolerance of the pointing game, in pixels.
    boundary_width : int
        Half-width, in pixels, of the band around the mask's outline (see
        :func:`boundary_band`).

    Returns
    -------
    DataFrame
        Columns ``image_id``; ``relevance_share``, ``area_share``,
        ``enrichment`` (:func:`relevance_share`); ``pointing_game`` (1.0 for
        a hit, 0.0 for a miss) and ``correlation`` (:func:`map_correlation`),
        both NaN for an empty mask; ``mean_inside`` and
        ``mean_outside``, the mean of the map divided by its largest magnitude
        inside and outside the mask (NaN where there is no such pixel);
        ``positive_pixels``, the number of pixels with positive relevance;
        ``positive_regions``, the number of 8-connected regions they form;
        ``boundary_share``, the share of the positive relevance that lies in
        the band of ``boundary_width`` pixels on both sides of the mask's
        outline (:func:`boundary_band`; NaN when the map has no positive
        value), and ``boundary_area_share``, the share of the pixels in that
        band (what a map spread evenly would get), both NaN for an empty mask.

    Raises
    ------
    ValueError
        For sequences of different lengths, no maps, one string as ``ids``,
        an invalid ``boundary_width`` or invalid maps and masks.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((4, 4), bool); mask[0, 0] = True
    >>> explanation_metrics([mask * 2.0], [mask], ["a"])[["relevance_share", "pointing_game"]].values.tolist()
    [[1.0, 1.0]]
    """
    if isinstance(ids, str):
        raise ValueError("ids must be a sequence of image ids, not one string")
    n_maps, n_masks, n_ids = len(maps), len(masks), len(ids)
    if not n_maps == n_masks == n_ids:
        raise ValueError(f"got {n_maps} maps, {n_masks} masks and {n_ids} ids; they must match")
    if n_maps == 0:
        raise ValueError("no maps given")
    _check_width(boundary_width, "boundary_width")  # up front: a batch of empty masks never reaches boundary_band
    rows = []
    nan = float("nan")
    for image_id, values, mask in zip(ids, maps, masks):
        values, region = _map_and_mask(values, mask)
        share = relevance_share(values, region)
        scaled = _normalised(values)
        positive = values > 0
        _, n_regions = ndimage.label(positive, structure=np.ones((3, 3), bool))
        if region.any():
            band = relevance_share(values, boundary_band(region, boundary_width))
            boundary_share, boundary_area = band.share, band.area
        else:
            boundary_share = boundary_area = nan
        rows.append({
            "image_id": str(image_id),
            "relevance_share": share.share,
            "area_share": share.area,
            "enrichment": share.enrichment,
            "pointing_game": float(pointing_game(values, region, tolerance=tolerance)) if region.any() else nan,
            "correlation": map_correlation(values, region) if region.any() else nan,
            "mean_inside": float(scaled[region].mean()) if region.any() else float("nan"),
            "mean_outside": float(scaled[~region].mean()) if (~region).any() else float("nan"),
            "positive_pixels": int(positive.sum()),
            "positive_regions": int(n_regions),
            "boundary_share": boundary_share,
            "boundary_area_share": boundary_area,
        })
    return pd.DataFrame(rows)


def summarise_measures(table: pd.DataFrame, by: str | Sequence[str]) -> pd.DataFrame:
    """Means of the measures of :func:`explanation_metrics` per group.

    Parameters
    ----------
    table : DataFrame
        Rows of :func:`explanation_metrics` with the grouping column(s) added
        (``layer``, ``rule``, ``modality``...); it needs the columns of
        :data:`SUMMARY_COLUMNS`.
    by : str or sequence of str
        Column(s) to group by; groups keep their order of first appearance.

    Returns
    -------
    DataFrame
        One row per group, indexed by ``by``: ``images`` (rows in the group),
        the means of ``relevance_share`` and ``area_share``, ``enrichment``
        (4th column), ``pointing_game`` and ``correlation``; when the table
        has ``boundary_share`` and ``boundary_area_share``, their means and
        ``boundary_enrichment`` follow. Both enrichments are ratios of the
        means (mean share over mean area share), not means of per-image
        ratios, which crops with few mask pixels would dominate; NaN where the
        mean area share is 0. Means skip NaN values.

    Raises
    ------
    ValueError
        For an empty table, missing columns or an empty ``by``.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"image_id": ["a", "b"], "layer": ["x", "x"], "relevance_share": [0.2, 0.4],
    ...                       "area_share": [0.1, 0.1], "pointing_game": [1.0, 0.0], "correlation": [0.5, 0.3]})
    >>> summarise_measures(table, "layer").round(2).values.tolist()
    [[2.0, 0.3, 0.1, 3.0, 0.5, 0.4]]
    """
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a DataFrame, got {type(table).__name__}")
    keys = [by] if isinstance(by, str) else list(by)
    if not keys:
        raise ValueError("by: name at least one column to group by")
    missing = [name for name in (*SUMMARY_COLUMNS, *keys) if name not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {', '.join(map(repr, dict.fromkeys(missing)))}")
    if table.empty:
        raise ValueError("table: no rows to summarise")
    columns = {
        "images": ("image_id", "count"),
        "relevance_share": ("relevance_share", "mean"),
        "area_share": ("area_share", "mean"),
        "pointing_game": ("pointing_game", "mean"),
        "correlation": ("correlation", "mean"),
    }
    boundary = {"boundary_share", "boundary_area_share"} <= set(table.columns)
    if boundary:
        columns |= {"boundary_share": ("boundary_share", "mean"),
                    "boundary_area_share": ("boundary_area_share", "mean")}
    summary = table.groupby(by, sort=False).agg(**columns)

    def ratio(share: pd.Series, area: pd.Series) -> pd.Series:
        return share / area.where(area > 0)

    summary.insert(3, "enrichment", ratio(summary["relevance_share"], summary["area_share"]))
    if boundary:
        summary["boundary_enrichment"] = ratio(summary["boundary_share"], summary["boundary_area_share"])
    return summary


def confidence_readings(probabilities: np.ndarray, predicted: np.ndarray, annotated: np.ndarray) -> dict[str, float]:
    """Candidate readings of an undefined "confidence score": the mean foreground
    probability over the pixels the model calls nucleus, and over the annotated nuclei.

    Parameters
    ----------
    probabilities : ndarray, shape (N, H, W)
        Foreground probability of each window.
    predicted, annotated : ndarray of bool, shape (N, H, W)
        Predicted and annotated nucleus pixels of the same windows.

    Returns
    -------
    dict
        ``over_predicted_nuclei`` and ``over_annotated_nuclei``, pooled over all
        windows' pixels; NaN where the mask has no pixel.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[[0.9, 0.2], [0.6, 0.1]]]); truth = np.array([[[True, True], [False, False]]])
    >>> {k: round(v, 2) for k, v in confidence_readings(p, p > 0.5, truth).items()}
    {'over_predicted_nuclei': 0.75, 'over_annotated_nuclei': 0.55}
    """
    values = np.asarray(probabilities, dtype=float)
    readings = {}
    for key, mask in (("over_predicted_nuclei", predicted), ("over_annotated_nuclei", annotated)):
        region = np.asarray(mask)
        if region.shape != values.shape or region.dtype != bool:
            raise ValueError(f"{key.removeprefix('over_')}: expected a boolean mask of shape {values.shape}, "
                             f"got {region.dtype} of shape {region.shape}")
        readings[key] = float(values[region].mean()) if region.any() else float("nan")
    return readings


# --------------------------------------------------------------------------- randomisation


def layer_blocks(model: Any) -> list[tuple[str, list[str]]]:
    """The layers with trainable weights, grouped by block, from the output to the input.

    A block is the part of a layer's name before its first underscore
    (``"dec1_conv2"`` -> ``"dec1"``; ``"up1"``, ``"logits"``), so a U-Net gives
    ``logits, dec1, up1, dec2, ..., bottleneck, enc4, ..., enc1``: the order of
    the cascading randomisation of Adebayo et al. (2018).

    Returns
    -------
    list of (str, list of str)
        Block name and its layers' names, in the model's order within a block.
    """
    blocks: dict[str, list[str]] = {}
    for layer in reversed(model.layers):
        if layer.trainable_weights:
            blocks.setdefault(layer.name.split("_")[0], []).insert(0, layer.name)
    return list(blocks.items())


def _initializer_draw(layer: Any, variable: Any, seed: int) -> Any:
    """A tensor of fresh values of one variable from its layer's initialiser (seeded), or None."""
    initializer = getattr(layer, f"{_short_name(variable)}_initializer", None)
    if initializer is None:
        return None
    config = initializer.get_config()
    if "seed" in config:
        config["seed"] = seed
    fresh = initializer.__class__.from_config(config)
    return fresh(tuple(int(d) for d in variable.shape), dtype=variable.dtype)


def randomise_weights(
    model: Any,
    layers: Sequence[str] | None = None,
    seed: int = 0,
    *,
    method: str = "initializer",
) -> Any:
    """A copy of ``model`` with the trainable weights of some layers re-drawn at random.

    The model-randomisation sanity check of Adebayo et al. (2018): an
    explanation that hardly changes when the weights are destroyed does not
    explain the model. The copy is made with ``tf.keras.models.clone_model``
    (same layer names) and the original's weights; ``model`` is not touched.

    Parameters
    ----------
    model : tf.keras.Model
    layers : sequence of str, optional
        Names of the layers to randomise; default all layers with trainable
        weights (so a frozen channel selector stays as it is). Non-trainable
        weights (batch-normalisation statistics) are always kept.
    seed : int
        Seed of the new weights (the same seed gives the same copy).
    method : str
        ``"initializer"``: draw each weight from its layer's own initialiser
        (``he_normal`` kernels, zero biases, unit BN scales...);
        ``"normal"``: from a normal distribution with the mean and standard
        deviation of the trained array.

    Returns
    -------
    tf.keras.Model

    Raises
    ------
    ValueError
        For unknown layers, layers without trainable weights, or an unknown
        method or seed.

    Examples
    --------
    >>> scrambled = randomise_weights(model, ["logits", "dec1_conv2"], seed=1)  # doctest: +SKIP
    """
    import tensorflow as tf

    if method not in RANDOMISATIONS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(RANDOMISATIONS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    weighted = [layer.name for layer in model.layers if layer.trainable_weights]
    if layers is None:
        names = weighted
    else:
        if isinstance(layers, str):
            raise ValueError("layers must be a sequence of layer names, not one string")
        names = list(layers)
        existing = {layer.name for layer in model.layers}
        unknown = [name for name in names if name not in existing]
        if unknown:
            raise ValueError(f"model {model.name!r} has no layer(s) {', '.join(map(repr, unknown))}")
        frozen = [name for name in names if name not in weighted]
        if frozen:
            raise ValueError(f"layer(s) {', '.join(map(repr, frozen))} have no trainable weights to randomise")
    clone = tf.keras.models.clone_model(model)
    originals = model.get_weights()
    clone.set_weights(originals)
    current = {id(variable): value for variable, value in zip(clone.weights, originals)}
    rng = np.random.default_rng(seed)
    drawn: list[tuple[Any, Any]] = []  # (variable, initialiser tensor): evaluated together below
    updates: list[tuple[Any, np.ndarray]] = []
    for k, name in enumerate(names):
        layer = clone.get_layer(name)
        for j, variable in enumerate(layer.trainable_weights):
            tensor = None
            if method == "initializer":
                tensor = _initializer_draw(layer, variable, seed * 100_003 + 1_000 * k + j)
            if tensor is not None:
                drawn.append((variable, tensor))
                continue
            value = current[id(variable)]
            fresh = rng.normal(float(value.mean()), float(value.std()) or 1.0, size=value.shape)
            updates.append((variable, fresh.astype(value.dtype)))
    if drawn:
        # One session run in graph mode, instead of one per variable.
        values = tf.keras.backend.batch_get_value([tensor for _, tensor in drawn])
        updates += [(variable, np.asarray(value, dtype=current[id(variable)].dtype))
                    for (variable, _), value in zip(drawn, values)]
    tf.keras.backend.batch_set_value(updates)
    return clone


# --------------------------------------------------------------------------- LRP


def _fold_batch_norm(params: dict[str, dict[str, np.ndarray]], epsilons: dict[str, float]) -> dict[str, dict[str, np.ndarray]]:
    """Fold each ``<block>_bn<i>`` into the convolution ``<block>_conv<i>`` before it."""
    folded = {name: dict(values) for name, values in params.items() if name not in epsilons}
    for bn, eps in epsilons.items():
        conv = bn.replace("_bn", "_conv")
        if conv not in folded:
            raise ValueError(f"cannot fold {bn!r}: no convolution {conv!r} before it")
        values = params[bn]
        scale = values["gamma"] / np.sqrt(values["moving_variance"] + eps)
        kernel = folded[conv]["kernel"]
        bias = folded[conv].get("bias", np.zeros(kernel.shape[-1], np.float32))
        folded[conv] = {
            "kernel": (kernel * scale).astype(np.float32),
            "bias": (values["beta"] + (bias - values["moving_mean"]) * scale).astype(np.float32),
        }
    return folded


def lrp_model(
    config: ModelConfig,
    weights: Sequence[np.ndarray],
    *,
    target: str | int = "foreground",
    fold_batch_norm: bool = True,
    input_size: int | None = None,
) -> Any:
    """Rebuild a U-Net for innvestigate: no sigmoid, one mean logit per image.

    The network of ``config`` is built without its final sigmoid (the
    sequential LRP presets refuse a sigmoid output), with ``weights`` (in the
    order of ``build_unet(config).get_weights()``, as ``weights.npz`` stores
    them). With ``fold_batch_norm`` each batch normalisation is folded into the
    convolution before it (the usual LRP canonisation; it gives the same
    logits in inference and makes innvestigate's graph several times smaller
    and faster to build). A fixed, non-trainable 1x1 convolution with a one-hot
    kernel and no bias then selects the ``target`` channel of the logits, and
    ``GlobalAveragePooling2D`` reduces it to one value per image (innvestigate
    2.1.2 under Keras 2.14 cannot explain outputs of more than two
    dimensions).

    Parameters
    ----------
    config : ModelConfig
        A ``"unet"`` configuration.
    weights : sequence of ndarray
        The trained weights.
    target : str or int
        Output channel to explain (``"foreground"`` = 0).
    fold_batch_norm : bool
        Fold batch normalisation into the convolutions.
    input_size : int, optional
        Fix the input size (default: any multiple of ``2**depth``).

    Returns
    -------
    tf.keras.Model
        Output ``(N, 1)``: the mean logit of the target channel. Layers
        ``"select_channel"`` and ``"mean_logit"`` follow ``"logits"``.

    Raises
    ------
    ValueError
        For another architecture, weights of the wrong number or shapes, or an
        unknown target.

    Examples
    --------
    >>> import tensorflow as tf; tf.compat.v1.disable_eager_execution()  # doctest: +SKIP
    >>> net, config = models.load_model("unet-dsb2018")  # doctest: +SKIP
    >>> analyzed = lrp_model(config, net.get_weights())  # doctest: +SKIP
    """
    import tensorflow as tf
    from tensorflow.keras import layers

    if not isinstance(config, ModelConfig):
        raise ValueError(f"config must be a ModelConfig, got {type(config).__name__}")
    if config.architecture != "unet":
        raise ValueError(f"lrp_model rebuilds U-Nets only, not architecture {config.architecture!r}")
    channel = _channel_index(target, len(config.outputs))
    # The network exactly as trained (without its sigmoid): the layout of ``weights``.
    base = build_unet(config, input_size=input_size, final_activation=False)
    layout = [(layer.name, _short_name(v), tuple(int(d) for d in v.shape))
              for layer in base.layers for v in layer.weights]
    arrays = [np.asarray(w, dtype=np.float32) for w in weights]
    if len(arrays) != len(layout):
        raise ValueError(f"got {len(arrays)} weight arrays, the network of this config needs {len(layout)}")
    params: dict[str, dict[str, np.ndarray]] = {}
    for (layer_name, variable, shape), array in zip(layout, arrays):
        if array.shape != shape:
            raise ValueError(f"weight {layer_name}/{variable}: expected shape {shape}, got {array.shape}")
        params.setdefault(layer_name, {})[variable] = array
    if fold_batch_norm and config.batch_norm:
        epsilons = {layer.name: float(layer.epsilon) for layer in base.layers
                    if isinstance(layer, tf.keras.layers.BatchNormalization)}
        params = _fold_batch_norm(params, epsilons)
        base = build_unet(dataclasses.replace(config, batch_norm=False), input_size=input_size,
                          final_activation=False)
    for layer in base.layers:
        if layer.weights:
            layer.set_weights([params[layer.name][_short_name(v)] for v in layer.weights])
    select = layers.Conv2D(1, 1, use_bias=False, trainable=False, name="select_channel")
    pooled = layers.GlobalAveragePooling2D(name="mean_logit")(select(base.outputs[0]))
    one_hot = np.zeros((1, 1, len(config.outputs), 1), np.float32)
    one_hot[0, 0, channel, 0] = 1.0
    select.set_weights([one_hot])
    return tf.keras.Model(base.inputs, pooled, name=f"{base.name}_lrp")


def lrp_maps(analyzer_model: Any, images: np.ndarray, rule: str, **kwargs: Any) -> np.ndarray:
    """LRP relevance maps of a :func:`lrp_model` with one innvestigate rule.

    Runs ``analyzer_model.predict`` once (so the weights are in the session),
    then ``innvestigate.create_analyzer(rule, analyzer_model, **kwargs)`` and
    ``analyze``. Needs graph mode: call ``tf.compat.v1.disable_eager_execution()``
    before any model is built. Building the analyzer dominates the time (it
    grows with the network, not much with the images), so pass all images of a
    rule in one call.

    Parameters
    ----------
    analyzer_model : tf.keras.Model
        Output ``(N, 1)`` (see :func:`lrp_model`).
    images : ndarray, shape (N, H, W, C)
        Preprocessed images.
    rule : str
        An innvestigate LRP analyzer name, e.g. one of :data:`LRP_RULES`.
    **kwargs
        Passed to the analyzer (e.g. ``epsilon=``).

    Returns
    -------
    ndarray of float32, shape (N, H, W)
        Relevance summed over the input channels (signed).

    Raises
    ------
    ValueError
        For an unknown rule, a model whose output is not ``(N, 1)`` or invalid
        images.
    RuntimeError
        In eager mode.
    """
    import tensorflow as tf

    if tf.executing_eagerly():
        raise RuntimeError("lrp_maps needs graph mode: call tf.compat.v1.disable_eager_execution() "
                           "before building any model (in a fresh process)")
    import innvestigate
    from innvestigate.analyzer import analyzers

    known = sorted(name for name in analyzers if name.startswith("lrp"))
    if not isinstance(rule, str) or rule not in known:
        raise ValueError(f"unknown LRP rule {rule!r}; choose one of {', '.join(LRP_RULES)} (or {', '.join(known)})")
    outputs = getattr(analyzer_model, "outputs", None)
    if not outputs or len(outputs) != 1 or len(tuple(outputs[0].shape)) != 2:
        raise ValueError("analyzer_model: expected one output of shape (N, 1); build it with lrp_model")
    batch = _as_batch(images, analyzer_model)
    analyzer_model.predict(batch[:1], verbose=0)
    analyzer = innvestigate.create_analyzer(rule, analyzer_model, **kwargs)
    relevance = np.asarray(analyzer.analyze(batch))
    return relevance.sum(axis=-1).astype(np.float32)


# --------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Figure:
    """A matplotlib figure outside pyplot (so a notebook shows it once, as the cell's value)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def explanation_grid(
    windows: Windows,
    probabilities: np.ndarray,
    heat_by_name: Mapping[str, np.ndarray],
    rows: Sequence[int],
    outline_masks: Sequence[np.ndarray | None] | np.ndarray,
    *,
    style: str = "heat",
    title: str = "",
) -> Figure:
    """A grid of explanation maps: one row per window, one map column per layer or rule.

    Each row shows the window's image (titled with its modality and id), the
    outlines of its annotated nuclei ("truth"), the foreground probability
    (magma, 0 to 1) and then one column per entry of ``heat_by_name``, titled
    with its key, with the outline of ``outline_masks`` drawn on it.

    Parameters
    ----------
    windows : Windows
        The explained windows (:func:`explanation_windows`): ``raw`` is shown,
        ``x`` is the grey background of ``"heat"`` maps.
    probabilities : ndarray, shape (N, H, W)
        Foreground probability of each window.
    heat_by_name : mapping of str to ndarray, shape (N, H, W)
        The maps, e.g. one per Grad-CAM layer or LRP rule, in column order.
    rows : sequence of int
        Indices of the windows to show, one figure row each.
    outline_masks : sequence of (ndarray of bool, shape (H, W)) or None
        One mask per window (indexed like ``windows``, so ``N`` entries),
        outlined on the maps; a window whose entry is None gets no outline.
    style : {"heat", "signed"}
        ``"heat"``: maps in [0, 1] (Grad-CAM), an ``inferno`` overlay on the
        grey network input with cyan outlines. ``"signed"``: signed maps
        (LRP), ``bwr`` (red positive, blue negative) from ``-L`` to ``L``,
        ``L`` the 99.5th percentile of ``|map|`` of the window, with black
        outlines.
    title : str
        Figure title (none when empty).

    Returns
    -------
    matplotlib.figure.Figure
        Not registered with pyplot: a notebook shows it once, as the value of
        a cell's last expression, and it is freed with its last reference.

    Raises
    ------
    ValueError
        For an unknown style, no maps or rows, row indices out of range, or
        maps, probabilities or masks whose number or shape does not match the
        windows.

    Examples
    --------
    >>> fig = explanation_grid(windows, probs[..., 0], {"dec1_relu2": maps}, [0, 1], windows.truth)  # doctest: +SKIP
    >>> len(fig.axes)  # doctest: +SKIP
    8
    """
    if style not in GRID_STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {', '.join(GRID_STYLES)}")
    if not isinstance(windows, Windows):
        raise ValueError(f"windows must be a Windows (see explanation_windows), got {type(windows).__name__}")
    n_windows = len(windows.ids)
    shape = tuple(windows.x.shape[1:3])
    for name, array in (("windows.raw", windows.raw), ("windows.truth_labels", windows.truth_labels)):
        if len(array) != n_windows or tuple(np.shape(array)[1:3]) != shape:
            raise ValueError(f"{name}: expected {n_windows} windows of {shape}, got shape {np.shape(array)}")
    expected = (n_windows, *shape)
    probability = np.asarray(probabilities)
    if probability.shape != expected:
        raise ValueError(f"probabilities: expected shape {expected} (one map per window), got {probability.shape}")
    if not isinstance(heat_by_name, Mapping) or not heat_by_name:
        raise ValueError("heat_by_name: expected a non-empty mapping of column titles to maps")
    heats = {str(name): np.asarray(heat) for name, heat in heat_by_name.items()}
    for name, heat in heats.items():
        if heat.shape != expected:
            raise ValueError(f"heat_by_name[{name!r}]: expected shape {expected} (one map per window), got {heat.shape}")
    if isinstance(rows, (str, bytes)):
        raise ValueError("rows must be a sequence of window indices")
    picked = list(rows)
    if not picked:
        raise ValueError("rows: no window to show")
    for k in picked:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < n_windows:
            raise ValueError(f"rows: {k!r} is not the index of one of the {n_windows} windows")
    if len(outline_masks) != n_windows:
        raise ValueError(f"outline_masks: expected one mask (or None) per window, {n_windows}, "
                         f"got {len(outline_masks)}")
    outlines = {}
    for k in picked:
        mask = outline_masks[k]
        outlines[k] = None if mask is None else _as_mask(mask, f"outline_masks[{k}]")
        if outlines[k] is not None and outlines[k].shape != shape:
            raise ValueError(f"outline_masks[{k}]: expected shape {shape}, got {outlines[k].shape}")

    from skimage.segmentation import find_boundaries

    columns = 3 + len(heats)
    figure = _new_figure(2.2 * columns, 2.3 * len(picked))
    axes = figure.subplots(len(picked), columns, squeeze=False)
    for r, k in enumerate(picked):
        axes[r, 0].imshow(windows.raw[k])
        axes[r, 0].set_title(f"{windows.modality[k]}\n{windows.ids[k][:10]}", fontsize=8)
        axes[r, 1].imshow(find_boundaries(windows.truth_labels[k]), cmap="gray")
        axes[r, 1].set_title("truth", fontsize=8)
        axes[r, 2].imshow(probability[k], cmap="magma", vmin=0, vmax=1)
        axes[r, 2].set_title("foreground probability", fontsize=8)
        for c, (name, heat) in enumerate(heats.items(), start=3):
            ax = axes[r, c]
            if style == "heat":
                ax.imshow(np.asarray(windows.x[k]).mean(axis=-1), cmap="gray", vmin=0, vmax=1)  # the input, in grey
                ax.imshow(heat[k], cmap="inferno", alpha=0.55, vmin=0, vmax=1)
                colour, line_width = "cyan", 0.6
            else:
                limit = float(np.percentile(np.abs(heat[k]), 99.5)) or 1.0
                ax.imshow(heat[k], cmap="bwr", vmin=-limit, vmax=limit)
                colour, line_width = "black", 0.4
            if outlines[k] is not None and outlines[k].any():
                ax.contour(outlines[k], levels=[0.5], colors=colour, linewidths=line_width)
            ax.set_title(name, fontsize=8)
        for ax in axes[r]:
            ax.axis("off")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def placeholder_figure(message: str, *, width: float = 6.0, height: float = 1.2) -> Figure:
    """A figure that only says ``message``, for a figure a profile does not draw.

    Keeps a chapter's figure numbers and cross-references the same whatever
    the profile (e.g. "not run in this profile").

    Returns
    -------
    matplotlib.figure.Figure
        Not registered with pyplot (see :func:`explanation_grid`).
    """
    if not isinstance(message, str) or not message.strip():
        raise ValueError("message: expected a non-empty string")
    figure = _new_figure(width, height)
    ax = figure.subplots()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    ax.axis("off")
    return figure
