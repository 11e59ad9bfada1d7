"""Segmentation networks, their loss and metrics, and shipped pretrained models.

A model travels as a folder or a pair of files: its configuration (architecture,
preprocessing, post-processing thresholds) as JSON beside its weights, so that
``load_model("unet-dsb2018")`` rebuilds exactly the network that was trained.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network and feed it correctly.

    Attributes
    ----------
    architecture : str
        ``"unet"`` (the seed paper's network).
    base_filters, depth : int
        Filters of the first level and number of poolings (16 and 4 give the
        paper's 1.94 M-parameter U-Net).
    residual : bool
        Add a 1x1-convolution shortcut around each double convolution.
    batch_norm : bool
        Batch normalisation after each convolution.
    in_channels : int
        3 for colour input, 1 for grey.
    outputs : tuple of str
        Output channels: ``"foreground"`` and optionally ``"border"`` (pixels of a
        nucleus that touch another one).
    sigma : float
        Gaussian pre-filter (0 for none).
    invert_bright : bool
        Invert images with a bright background before the network sees them.
    threshold, border_threshold : float
        Probability thresholds of the post-processing.
    separation : str
        Instance separation method (see :func:`nucleilib.inference.separate`).
    min_size : int
        Smallest nucleus kept, in pixels.
    """

    architecture: str = "unet"
    base_filters: int = 16
    depth: int = 4
    residual: bool = True
    batch_norm: bool = True
    in_channels: int = 3
    outputs: tuple[str, ...] = ("foreground", "border")
    sigma: float = 0.0
    invert_bright: bool = True
    threshold: float = 0.5
    border_threshold: float = 0.5
    separation: str = "borders"
    min_size: int = 8
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        if "outputs" in known:
            known["outputs"] = tuple(known["outputs"])
        return cls(**known)


def _conv_block(x: Any, filters: int, *, residual: bool, batch_norm: bool, name: str) -> Any:
    from tensorflow.keras import layers

    shortcut = x
    for i in (1, 2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                          kernel_initializer="he_normal", name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        if i == 2 and residual:
            shortcut = layers.Conv2D(filters, 1, padding="same", name=f"{name}_shortcut")(shortcut)
            x = layers.Add(name=f"{name}_add")([x, shortcut])
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(config: ModelConfig | None = None) -> Any:
    """Build the U-Net of the seed paper as a Keras model.

    Contracting blocks of two 3x3 convolutions (each followed by batch
    normalisation and ReLU, with an optional 1x1 residual shortcut) and 2x2 max
    pooling; an expanding path of 2x2 transposed convolutions whose outputs are
    concatenated with the matching encoder features; a 1x1 convolution with a
    sigmoid per output channel. Any input size that is a multiple of
    ``2**depth`` works.

    Parameters
    ----------
    config : ModelConfig, optional
        Defaults to :class:`ModelConfig` ().

    Returns
    -------
    tf.keras.Model

    Examples
    --------
    >>> plain = ModelConfig(residual=False, batch_norm=False, outputs=("foreground",))
    >>> build_unet(plain).count_params()  # doctest: +SKIP
    1941105
    """
    from tensorflow.keras import Model, layers

    config = config or ModelConfig()
    if config.architecture != "unet":
        raise ValueError(f"build_unet cannot build architecture {config.architecture!r}")
    if config.depth < 1 or config.base_filters < 1:
        raise ValueError("depth and base_filters must be positive")
    inputs = layers.Input((None, None, config.in_channels), name="image")
    x = inputs
    skips = []
    for level in range(config.depth):
        x = _conv_block(x, config.base_filters * 2**level, residual=config.residual,
                        batch_norm=config.batch_norm, name=f"enc{level + 1}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
    x = _conv_block(x, config.base_filters * 2**config.depth, residual=config.residual,
                    batch_norm=config.batch_norm, name="bottleneck")
    for level in reversed(range(config.depth)):
        filters = config.base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level + 1}")(x)
        x = layers.Concatenate(name=f"skip{level + 1}")([x, skips[level]])
        x = _conv_block(x, filters, residual=config.residual, batch_norm=config.batch_norm,
                        name=f"dec{level + 1}")
    logits = layers.Conv2D(len(config.outputs), 1, name="logits")(x)
    # float32 output keeps the loss stable under mixed precision.
    probs = layers.Activation("sigmoid", dtype="float32", name="probabilities")(logits)
    return Model(inputs, probs, name=f"unet_f{config.base_filters}_d{config.depth}")


# --------------------------------------------------------------------------- loss and metrics


def bce_dice_loss(border_weight: float = 1.0) -> Any:
    """Binary cross-entropy plus soft Dice loss, summed over output channels.

    The foreground channel (0) gets weight 1, any further channel (the touching
    border) ``border_weight``.
    """
    import tensorflow as tf

    def loss(y_true: Any, y_pred: Any) -> Any:
        y_true = tf.cast(y_true, tf.float32)
        y_pred = tf.clip_by_value(tf.cast(y_pred, tf.float32), 1e-6, 1 - 1e-6)
        bce = -(y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred))
        bce = tf.reduce_mean(bce, axis=[0, 1, 2])
        intersection = tf.reduce_sum(y_true * y_pred, axis=[0, 1, 2])
        total = tf.reduce_sum(y_true + y_pred, axis=[0, 1, 2])
        dice = 1.0 - (2.0 * intersection + 1.0) / (total + 1.0)
        per_channel = bce + dice
        n = tf.shape(per_channel)[0]
        weights = tf.concat([tf.ones([1]), tf.fill([n - 1], float(border_weight))], axis=0)
        return tf.reduce_sum(per_channel * weights)

    loss.__name__ = "bce_dice"
    return loss


def foreground_iou(y_true: Any, y_pred: Any) -> Any:
    """Foreground IoU of channel 0 at threshold 0.5, pooled over the batch."""
    import tensorflow as tf

    t = tf.cast(y_true[..., 0] > 0.5, tf.float32)
    p = tf.cast(y_pred[..., 0] > 0.5, tf.float32)
    intersection = tf.reduce_sum(t * p)
    union = tf.reduce_sum(tf.maximum(t, p))
    return tf.math.divide_no_nan(intersection, union)


def foreground_accuracy(y_true: Any, y_pred: Any) -> Any:
    """Pixel accuracy of channel 0 at threshold 0.5."""
    import tensorflow as tf

    t = y_true[..., 0] > 0.5
    p = y_pred[..., 0] > 0.5
    return tf.reduce_mean(tf.cast(tf.equal(t, p), tf.float32))


foreground_iou.__name__ = "iou"
foreground_accuracy.__name__ = "accuracy"


# --------------------------------------------------------------------------- saving and loading


def save_model(model: Any, config: ModelConfig, folder: str | os.PathLike[str], *,
               card: dict[str, Any] | None = None, float16: bool = True) -> Path:
    """Save weights (``weights.npz``, float16 by default), ``config.json`` and an
    optional model card (``card.json``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = model.get_weights()
    dtype = np.float16 if float16 else np.float32
    np.savez_compressed(folder / "weights.npz", *[w.astype(dtype) for w in weights])
    (folder / "config.json").write_text(config.to_json() + "\n")
    if card is not None:
        (folder / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
    return folder


def load_model_folder(folder: str | os.PathLike[str]) -> tuple[Any, ModelConfig]:
    """Rebuild a model saved by :func:`save_model`; returns ``(model, config)``."""
    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "weights.npz"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: model file is missing")
    config = ModelConfig.from_dict(json.loads(config_path.read_text()))
    model = build_unet(config)
    with np.load(weights_path) as stored:
        weights = [stored[f"arr_{i}"].astype(np.float32) for i in range(len(stored.files))]
    if len(weights) != len(model.get_weights()):
        raise ValueError(f"{weights_path}: {len(weights)} weight arrays, the architecture needs {len(model.get_weights())}")
    model.set_weights(weights)
    return model, config


def available_models() -> list[str]:
    """Names of the pretrained models shipped inside the package."""
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir() if (p / "config.json").is_file())


def load_model(name_or_path: str | os.PathLike[str] = "unet-dsb2018") -> tuple[Any, ModelConfig]:
    """Load a shipped model by name (e.g. ``"unet-dsb2018"``) or a model folder by path.

    Returns
    -------
    (tf.keras.Model, ModelConfig)
    """
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return load_model_folder(candidate)
    shipped = MODELS_DIR / str(name_or_path)
    if shipped.is_dir():
        return load_model_folder(shipped)
    known = ", ".join(available_models()) or "none"
    raise ValueError(f"unknown model {str(name_or_path)!r}: not a folder, and not a shipped model (shipped: {known})")


def model_card(name: str) -> dict[str, Any]:
    """The model card (data, split, profile, epochs, metrics, commit, date) of a shipped model."""
    path = MODELS_DIR / name / "card.json"
    if not path.is_file():
        raise ValueError(f"no model card for {name!r} ({path})")
    return dict(json.loads(path.read_text()))
