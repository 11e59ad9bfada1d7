"""Grad-CAM of the segmentation network, with tf-explain, in eager mode.

:func:`score_model` turns the segmentation network into one score per image
(tf-explain's :class:`~tf_explain.core.grad_cam.GradCAM` selects
``predictions[:, class_index]``, which for an ``(N, H, W, 1)`` output would pick
an image *row*); :func:`grad_cam` computes raw maps with tf-explain's own
gradient and weighting steps at any named layer; :func:`default_cam_layers`
lists layers at several depths. The chapter's computations on top of them:
:func:`grad_cam_layers` (one map per image and layer, timed),
:func:`nucleus_grad_cams` (one nucleus per image) and
:func:`grad_cam_cascade` (the cascading sanity check of Adebayo et al.
2018).

Everything here needs eager execution, TensorFlow's default: it cannot share a
process with :mod:`nucleilib.study.explain.lrp` once that has switched to graph
mode. TensorFlow and tf-explain are imported inside the functions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ...validation import positive_int
from ._checks import as_batch, as_mask, channel_index, model_output_channels, names_list
from .measures import mean_similarity
from .randomise import cascade_steps, randomise_weights

#: Candidate Grad-CAM layers, from the first encoder level to the last decoder level.
DEFAULT_CAM_LAYERS: tuple[str, ...] = ("enc1_relu2", "enc3_relu2", "bottleneck_relu2", "dec3_relu2", "dec1_relu2")


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
    >>> from nucleilib.models import ModelConfig, build_unet
    >>> model = build_unet(ModelConfig(base_filters=4, depth=2))
    >>> images = np.zeros((3, 32, 32, 3), np.float32)
    >>> score_model(model)(images).numpy().shape
    (3, 1)
    >>> scorer = score_model(model, region=np.eye(32, dtype=bool))
    >>> scorer.get_layer("enc1_relu2") is model.get_layer("enc1_relu2")
    True
    """
    import tensorflow as tf
    from tensorflow.keras import layers

    channel = channel_index(target, model_output_channels(model))
    mask = None
    if region is not None:
        mask = as_mask(region, "region")
        if not mask.any():
            raise ValueError("region: the mask is empty (no pixel is set)")
        fixed = tuple(model.inputs[0].shape)[1:3]
        if all(d is not None for d in fixed) and tuple(int(d) for d in fixed) != mask.shape:
            raise ValueError(f"region of shape {mask.shape} does not fit the model input {fixed}")
    selected = layers.Lambda(
        lambda t: tf.cast(t[..., channel : channel + 1], tf.float32), name="score_channel", dtype="float32"
    )(model.outputs[0])
    if mask is None:
        score = layers.GlobalAveragePooling2D(name="score", dtype="float32")(selected)
    else:
        weights = mask[None, :, :, None].astype(np.float32)
        score = layers.Lambda(
            lambda t: tf.reduce_sum(t * tf.constant(weights), axis=(1, 2)), name="score", dtype="float32"
        )(selected)
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
    >>> from nucleilib.models import ModelConfig, build_unet
    >>> model = build_unet(ModelConfig(base_filters=4, depth=2))
    >>> x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    >>> maps = grad_cam(model, x, "dec1_relu2")
    >>> maps.shape, bool(maps.min() >= 0 and maps.max() <= 1)
    ((2, 32, 32), True)
    """
    import tensorflow as tf
    from tf_explain.core.grad_cam import GradCAM

    if not tf.executing_eagerly():
        raise RuntimeError("grad_cam needs eager execution; it cannot run after disable_eager_execution()")
    if not isinstance(layer_name, str) or not layer_name:
        raise ValueError(f"layer_name must be a layer's name, got {layer_name!r}")
    positive_int(batch_size, "batch_size")
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        shown = ", ".join(default_cam_layers(model)) or ", ".join(names[-5:])
        raise ValueError(f"model {model.name!r} has no layer {layer_name!r} (try one of: {shown})")
    if len(tuple(model.get_layer(layer_name).output.shape)) != 4:
        raise ValueError(
            f"layer {layer_name!r} has no spatial output (shape "
            f"{tuple(model.get_layer(layer_name).output.shape)}); Grad-CAM needs (N, h, w, c)"
        )
    images = as_batch(image_batch, model)
    height, width = images.shape[1:3]
    if region is not None and as_mask(region, "region").shape != (height, width):
        raise ValueError(f"region of shape {np.shape(region)} does not match the images ({height}, {width})")
    scorer = score_model(model, target, region)
    maps = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        outputs, grads = GradCAM.get_gradients_and_filters(scorer, chunk, layer_name, 0, guided)
        cams = tf.stack(GradCAM.generate_ponderated_output(outputs, grads))[..., None]
        cams = tf.image.resize(tf.nn.relu(tf.cast(cams, tf.float32)), (height, width), method="bilinear")
        maps.append(cams.numpy()[..., 0])
    result = np.concatenate(maps).astype(np.float32)
    peak = result.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, result / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def grad_cam_layers(
    model: Any, images: np.ndarray, layers: Sequence[str], *, region: np.ndarray | None = None, **kwargs: Any
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """:func:`grad_cam` of the same images at several layers, and the seconds each layer took.

    Parameters
    ----------
    model, images, region, **kwargs
        As in :func:`grad_cam`.
    layers : sequence of str
        The layers to explain, in the order wanted.

    Returns
    -------
    maps : dict of str to ndarray of float32, shape (N, H, W)
        One stack of maps per layer.
    seconds : dict of str to float
        Wall-clock seconds of each layer's maps.

    Examples
    --------
    >>> from nucleilib.models import ModelConfig, build_unet
    >>> model = build_unet(ModelConfig(base_filters=4, depth=2))
    >>> maps, seconds = grad_cam_layers(model, np.ones((1, 32, 32, 3), np.float32), ["enc1_relu2", "dec1_relu2"])
    >>> list(maps), maps["dec1_relu2"].shape, sorted(seconds) == sorted(maps)
    (['enc1_relu2', 'dec1_relu2'], (1, 32, 32), True)
    """
    maps: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    for layer in names_list(layers, "layers"):
        start = time.perf_counter()
        maps[layer] = grad_cam(model, images, layer, region, **kwargs)
        seconds[layer] = time.perf_counter() - start
    return maps, seconds


def nucleus_grad_cams(
    model: Any, images: np.ndarray, layers: Sequence[str], masks: Sequence[np.ndarray | None], **kwargs: Any
) -> dict[str, np.ndarray]:
    """Grad-CAM of the probability mass inside one region of each image, at several layers.

    Each image ``k`` is explained on its own, with the score of ``masks[k]``
    (see :func:`score_model`): the maps of "one nucleus at a time".

    Parameters
    ----------
    model, **kwargs
        As in :func:`grad_cam`.
    images : ndarray, shape (N, H, W, C)
    layers : sequence of str
    masks : sequence of (ndarray of bool, shape (H, W)) or None
        One region per image (e.g. :func:`~nucleilib.study.explain.windows.largest_nucleus_masks`);
        an image whose entry is None is not explained and keeps a map of zeros.

    Returns
    -------
    dict of str to ndarray of float32, shape (N, H, W)
        One stack of maps per layer.

    Examples
    --------
    >>> from nucleilib.models import ModelConfig, build_unet
    >>> model = build_unet(ModelConfig(base_filters=4, depth=2))
    >>> region = np.zeros((32, 32), bool); region[4:9, 4:9] = True
    >>> maps = nucleus_grad_cams(model, np.ones((2, 32, 32, 3), np.float32), ["dec1_relu2"], [None, region])
    >>> maps["dec1_relu2"].shape, float(np.abs(maps["dec1_relu2"][0]).max())
    ((2, 32, 32), 0.0)
    """
    layers = names_list(layers, "layers")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images: expected shape (N, H, W, C), got {images.shape}")
    if len(masks) != len(images):
        raise ValueError(f"masks: expected one mask (or None) per image, {len(images)}, got {len(masks)}")
    maps = {layer: np.zeros(images.shape[:3], np.float32) for layer in layers}
    for k, mask in enumerate(masks):
        if mask is None:
            continue
        for layer in layers:
            maps[layer][k] = grad_cam(model, images[k : k + 1], layer, region=mask, **kwargs)[0]
    return maps


def grad_cam_cascade(
    model: Any,
    images: np.ndarray,
    layer: str,
    reference: np.ndarray,
    *,
    seed: int = 0,
    stops: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The cascading randomisation check of Adebayo et al. (2018) for Grad-CAM at one layer.

    The weights of ``model`` are re-drawn (:func:`randomise_weights`) block by
    block from the output down (:func:`~nucleilib.study.explain.randomise.cascade_steps`);
    after each block the images are explained again at ``layer`` and compared
    with ``reference`` by :func:`~nucleilib.study.explain.measures.mean_similarity`.

    Parameters
    ----------
    model : tf.keras.Model
        The trained network (not changed).
    images : ndarray, shape (N, H, W, C)
    layer : str
        The Grad-CAM layer.
    reference : ndarray, shape (N, H, W)
        The maps of the trained network at ``layer``.
    seed : int
        Seed of :func:`randomise_weights`.
    stops : sequence of str, optional
        Blocks to stop at (default every block, see ``cascade_steps``).

    Returns
    -------
    DataFrame
        Columns ``randomised down to`` (the last block re-drawn) and
        ``similarity`` (the mean Spearman similarity to ``reference``).

    Examples
    --------
    >>> from nucleilib.models import ModelConfig, build_unet
    >>> model = build_unet(ModelConfig(base_filters=4, depth=2))
    >>> x = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)
    >>> table = grad_cam_cascade(model, x, "dec1_relu2", grad_cam(model, x, "dec1_relu2"),
    ...                          stops=["logits", "dec2"])
    >>> table["randomised down to"].tolist(), bool(table["similarity"].between(-1, 1).all())
    (['logits', 'dec2'], True)
    """
    rows = []
    for block, names in cascade_steps(model, stops):
        scrambled = randomise_weights(model, names, seed=seed)
        rows.append(
            {"randomised down to": block, "similarity": mean_similarity(reference, grad_cam(scrambled, images, layer))}
        )
        del scrambled
    return pd.DataFrame(rows, columns=["randomised down to", "similarity"])
