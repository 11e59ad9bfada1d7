"""Segmentation networks, their loss and metrics, and shipped pretrained models.

A model travels as a folder: its configuration (architecture, preprocessing,
post-processing thresholds) as JSON beside its weights, so that
``load_model("unet-dsb2018")`` rebuilds exactly the network that was trained. The
models shipped with the package live in ``nucleilib/pretrained/<name>/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelNotFoundError
from .validation import multiple_of

#: Folder of the models shipped inside the package, one sub-folder per model name.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def _without_later_defaults(values: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """``values`` without the fields added after the first trained models while they keep
    their defaults, so that the configuration (and the digest naming a cached model) of
    every earlier model stays what it was."""
    return {k: v for k, v in values.items() if not (k in later and v == later[k])}


#: ModelConfig fields added after models were first trained and cached, with their defaults.
_LATER_MODEL_FIELDS: dict[str, Any] = {"diameter": None, "colour_input": "rgb"}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a network and feed it correctly.

    Attributes
    ----------
    architecture : str
        ``"unet"`` (the seed paper's network), ``"resunet"`` (a deep residual
        U-Net of pre-activation residual units) or ``"deeplabv3plus"``
        (DeepLabV3+ with a residual backbone trained from scratch); see
        :data:`ARCHITECTURES`.
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
    extra : dict
        Architecture-specific options: ``units_per_level`` (resunet, default 2);
        ``atrous_rates`` (deeplabv3plus, default ``[2, 4, 6]``) and
        ``aspp_filters`` (default 128).
    diameter : float or None
        Typical nucleus diameter (pixels) of the images as the network was trained on
        them. A scale-aware model is trained on images rescaled to this diameter, and
        :class:`nucleilib.segmenter.Segmenter` rescales an image whose nuclei are of
        another size (given or estimated) to it. ``None``: unknown, images are segmented
        at their own scale.
    colour_input : str
        What the preprocessing makes of a colour image, one of
        :data:`nucleilib.preprocess.COLOUR_INPUTS` (``"rgb"``: its three channels).
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
    diameter: float | None = None
    colour_input: str = "rgb"

    def to_json(self) -> str:
        return json.dumps(_without_later_defaults(asdict(self), _LATER_MODEL_FIELDS), indent=2, sort_keys=True)

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
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=not batch_norm, kernel_initializer="he_normal", name=f"{name}_conv{i}"
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        if i == 2 and residual:
            shortcut = layers.Conv2D(filters, 1, padding="same", name=f"{name}_shortcut")(shortcut)
            x = layers.Add(name=f"{name}_add")([x, shortcut])
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def build_unet(
    config: ModelConfig | None = None, *, input_size: int | None = None, final_activation: bool = True
) -> Any:
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
    input_size : int, optional
        Fix the input to ``input_size`` x ``input_size`` pixels (for counting
        operations); by default any size that is a multiple of ``2**depth``.
    final_activation : bool
        End with the sigmoid layer ``"probabilities"`` (default). ``False``
        ends at the ``"logits"`` layer instead, as relevance propagation needs;
        the weights and their order are the same either way.

    Returns
    -------
    tf.keras.Model

    Examples
    --------
    >>> plain = ModelConfig(residual=False, batch_norm=False, outputs=("foreground",))
    >>> build_unet(plain).count_params()
    1941105
    """
    from tensorflow.keras import Model, layers

    config = config or ModelConfig()
    if config.architecture != "unet":
        raise ValueError(f"build_unet cannot build architecture {config.architecture!r}")
    if config.depth < 1 or config.base_filters < 1:
        raise ValueError("depth and base_filters must be positive")
    inputs = layers.Input((input_size, input_size, config.in_channels), name="image")
    x = inputs
    skips = []
    for level in range(config.depth):
        x = _conv_block(
            x,
            config.base_filters * 2**level,
            residual=config.residual,
            batch_norm=config.batch_norm,
            name=f"enc{level + 1}",
        )
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level + 1}")(x)
    x = _conv_block(
        x,
        config.base_filters * 2**config.depth,
        residual=config.residual,
        batch_norm=config.batch_norm,
        name="bottleneck",
    )
    for level in reversed(range(config.depth)):
        filters = config.base_filters * 2**level
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"up{level + 1}")(x)
        x = layers.Concatenate(name=f"skip{level + 1}")([x, skips[level]])
        x = _conv_block(x, filters, residual=config.residual, batch_norm=config.batch_norm, name=f"dec{level + 1}")
    logits = layers.Conv2D(len(config.outputs), 1, name="logits")(x)
    if not final_activation:
        return Model(inputs, logits, name=f"unet_f{config.base_filters}_d{config.depth}_logits")
    # float32 output keeps the loss stable under mixed precision.
    probs = layers.Activation("sigmoid", dtype="float32", name="probabilities")(logits)
    return Model(inputs, probs, name=f"unet_f{config.base_filters}_d{config.depth}")


ARCHITECTURES: tuple[str, ...] = ("unet", "resunet", "deeplabv3plus")


def _check_common(config: ModelConfig, architecture: str) -> None:
    if config.architecture != architecture:
        raise ValueError(f"build_{architecture} cannot build architecture {config.architecture!r}")
    if config.depth < 1 or config.base_filters < 1:
        raise ValueError("depth and base_filters must be positive")
    if not config.outputs:
        raise ValueError("a model needs at least one output channel")


def _residual_unit(x: Any, filters: int, *, stride: int, first: bool, name: str) -> Any:
    """Pre-activation residual unit (BN-ReLU-conv twice) with a projected shortcut."""
    from tensorflow.keras import layers

    shortcut = x
    if not first:
        x = layers.BatchNormalization(name=f"{name}_bn1")(x)
        x = layers.Activation("relu", name=f"{name}_relu1")(x)
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", kernel_initializer="he_normal", name=f"{name}_conv1")(
        x
    )
    x = layers.BatchNormalization(name=f"{name}_bn2")(x)
    x = layers.Activation("relu", name=f"{name}_relu2")(x)
    x = layers.Conv2D(filters, 3, padding="same", kernel_initializer="he_normal", name=f"{name}_conv2")(x)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, padding="same", name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    return layers.Add(name=f"{name}_add")([x, shortcut])


def build_resunet(config: ModelConfig, *, input_size: int | None = None) -> Any:
    """Build a deep residual U-Net (ResUNet, Zhang et al. 2018) as a Keras model.

    Every level of the encoder and decoder is made of ``extra["units_per_level"]``
    (default 2) pre-activation residual units; the encoder halves the resolution
    with a strided convolution instead of pooling; the decoder upsamples
    (bilinear), concatenates the encoder features of the same level and applies
    its residual units. Same outputs, names and input rules as :func:`build_unet`.

    Examples
    --------
    >>> build_resunet(ModelConfig(architecture="resunet")).count_params()
    4052386
    """
    from tensorflow.keras import Model, layers

    _check_common(config, "resunet")
    units = int(config.extra.get("units_per_level", 2))
    if units < 1:
        raise ValueError(f"units_per_level must be at least 1, got {units}")
    inputs = layers.Input((input_size, input_size, config.in_channels), name="image")
    x = inputs
    skips = []
    for level in range(config.depth + 1):
        filters = config.base_filters * 2**level
        for unit in range(units):
            stride = 2 if (level > 0 and unit == 0) else 1
            x = _residual_unit(
                x,
                filters,
                stride=stride,
                first=(level == 0 and unit == 0),
                name=f"enc{level + 1}_u{unit + 1}" if level < config.depth else f"bridge_u{unit + 1}",
            )
        skips.append(x)
    for level in reversed(range(config.depth)):
        filters = config.base_filters * 2**level
        x = layers.UpSampling2D(2, interpolation="bilinear", name=f"up{level + 1}")(x)
        x = layers.Concatenate(name=f"skip{level + 1}")([x, skips[level]])
        for unit in range(units):
            x = _residual_unit(x, filters, stride=1, first=False, name=f"dec{level + 1}_u{unit + 1}")
    x = layers.BatchNormalization(name="head_bn")(x)
    x = layers.Activation("relu", name="head_relu")(x)
    logits = layers.Conv2D(len(config.outputs), 1, name="logits")(x)
    probs = layers.Activation("sigmoid", dtype="float32", name="probabilities")(logits)
    return Model(inputs, probs, name=f"resunet_f{config.base_filters}_d{config.depth}_u{units}")


def _dilated_conv2d() -> Any:
    """Conv2D computing dilated convolutions with one ``tf.nn.conv2d`` call.

    Keras' Conv2D implements dilation by space-to-batch with paddings that are
    wrong when a ``tf.function`` is traced for unknown image sizes (it fails on
    the next size); the direct kernel has no such problem and the same weights.
    """
    import tensorflow as tf

    class DilatedConv2D(tf.keras.layers.Conv2D):
        def convolution_op(self, inputs: Any, kernel: Any) -> Any:
            return tf.nn.conv2d(
                inputs,
                kernel,
                strides=list(self.strides),
                padding=self.padding.upper(),
                dilations=list(self.dilation_rate),
            )

    return DilatedConv2D


def _conv(filters: int, kernel: int, *, dilation: int = 1, **kwargs: Any) -> Any:
    from tensorflow.keras import layers

    if dilation > 1:
        return _dilated_conv2d()(filters, kernel, dilation_rate=dilation, **kwargs)
    return layers.Conv2D(filters, kernel, **kwargs)


def _conv_bn_relu(x: Any, filters: int, kernel: int, *, name: str, dilation: int = 1, stride: int = 1) -> Any:
    from tensorflow.keras import layers

    x = _conv(
        filters,
        kernel,
        strides=stride,
        dilation=dilation,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _basic_block(x: Any, filters: int, *, stride: int, dilation: int, name: str) -> Any:
    """ResNet basic block (conv-BN-ReLU, conv-BN, add, ReLU)."""
    from tensorflow.keras import layers

    shortcut = x
    y = _conv_bn_relu(x, filters, 3, stride=stride, dilation=dilation, name=f"{name}_a")
    y = _conv(
        filters,
        3,
        padding="same",
        dilation=dilation,
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_b_conv",
    )(y)
    y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
    if stride != 1 or shortcut.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(shortcut)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def _resize_like() -> Any:
    """A layer resizing its first input to the spatial size of its second (any input size)."""
    import tensorflow as tf

    class ResizeLike(tf.keras.layers.Layer):
        def call(self, inputs: Any) -> Any:
            source, reference = inputs
            return tf.image.resize(source, tf.shape(reference)[1:3], method="bilinear")

    return ResizeLike


def build_deeplabv3plus(config: ModelConfig, *, input_size: int | None = None) -> Any:
    """Build DeepLabV3+ (Chen et al. 2018) with a residual backbone trained from scratch.

    Backbone: a 3x3 stem (stride 2) and four stages of two ResNet basic blocks,
    of ``2, 4, 8, 16`` times ``base_filters`` channels, reaching output stride 16;
    the last stage keeps stride 16 and dilates by 2 instead. ASPP: a 1x1
    convolution, three dilated 3x3 convolutions (``extra["atrous_rates"]``,
    default 2, 4, 6: the standard 6, 12, 18 are wider than the 8x8 feature map
    of a 128-pixel crop) and image pooling. Decoder: the ASPP output upsampled
    x4 and concatenated with 48 channels of the stride-4 features, two 3x3
    convolutions, logits upsampled x4 (bilinear) to the input. ``depth`` is not
    used; inputs must be multiples of 16.
    """
    from tensorflow.keras import Model, layers

    _check_common(config, "deeplabv3plus")
    rates = [int(r) for r in config.extra.get("atrous_rates", [2, 4, 6])]
    aspp_filters = int(config.extra.get("aspp_filters", 128))
    b = config.base_filters
    inputs = layers.Input((input_size, input_size, config.in_channels), name="image")
    x = _conv_bn_relu(inputs, 2 * b, 3, stride=2, name="stem1")
    x = _conv_bn_relu(x, 2 * b, 3, name="stem2")
    low_level = None
    for stage, (mult, stride, dilation) in enumerate([(4, 2, 1), (8, 2, 1), (16, 2, 1), (16, 1, 2)], start=1):
        for block in (1, 2):
            x = _basic_block(
                x, mult * b, stride=stride if block == 1 else 1, dilation=dilation, name=f"stage{stage}_b{block}"
            )
        if stage == 1:
            low_level = x  # stride 4
    branches = [_conv_bn_relu(x, aspp_filters, 1, name="aspp_1x1")]
    for rate in rates:
        branches.append(_conv_bn_relu(x, aspp_filters, 3, dilation=rate, name=f"aspp_rate{rate}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(x)
    pooled = _conv_bn_relu(pooled, aspp_filters, 1, name="aspp_pool")
    branches.append(_resize_like()(name="aspp_pool_resize")([pooled, x]))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, aspp_filters, 1, name="aspp_project")
    x = layers.UpSampling2D(4, interpolation="bilinear", name="decoder_up4")(x)
    low = _conv_bn_relu(low_level, 48, 1, name="decoder_low")
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = _conv_bn_relu(x, aspp_filters, 3, name="decoder_conv1")
    x = _conv_bn_relu(x, aspp_filters, 3, name="decoder_conv2")
    x = layers.Conv2D(len(config.outputs), 1, name="logits_s4")(x)
    logits = layers.UpSampling2D(4, interpolation="bilinear", name="logits")(x)
    probs = layers.Activation("sigmoid", dtype="float32", name="probabilities")(logits)
    return Model(inputs, probs, name=f"deeplabv3plus_f{b}")


def build_model(config: ModelConfig | None = None, *, input_size: int | None = None) -> Any:
    """Build the network a :class:`ModelConfig` describes (any of :data:`ARCHITECTURES`)."""
    config = config or ModelConfig()
    builders = {"unet": build_unet, "resunet": build_resunet, "deeplabv3plus": build_deeplabv3plus}
    if config.architecture not in builders:
        raise ValueError(f"unknown architecture {config.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    return builders[config.architecture](config, input_size=input_size)


def count_flops(config: ModelConfig, size: int = 256) -> int:
    """Floating-point operations of one forward pass on a ``size`` x ``size`` image.

    Counted as 2 x the multiply-accumulates of the convolution, transposed
    convolution and dense layers (which dominate); batch normalisation,
    activations, additions, pooling and resizing are left out.

    Examples
    --------
    >>> round(count_flops(ModelConfig(residual=False, batch_norm=False, outputs=("foreground",))) / 1e9, 2)
    6.06
    """
    from tensorflow.keras import layers

    multiple_of(size, 16, "size")
    model = build_model(config, input_size=size)
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            kh, kw = layer.kernel_size
            macs += h * w * kh * kw * c_in * layer.filters
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            macs += h * w * kh * kw * (c_in // layer.groups) * c_out
        elif isinstance(layer, layers.Dense):
            macs += int(layer.input.shape[-1]) * layer.units
    return int(2 * macs)


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


def compile_model(
    model: Any, *, learning_rate: float = 1e-3, border_weight: float = 1.0, jit_compile: bool | None = None
) -> Any:
    """Compile ``model`` for training as every training here does: Adam, BCE + Dice, IoU and accuracy.

    Returns the model, compiled in place.
    """
    import tensorflow as tf

    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=bce_dice_loss(border_weight),
        metrics=[foreground_accuracy, foreground_iou],
        jit_compile=jit_compile,
    )
    return model


# --------------------------------------------------------------------------- saving and loading


def save_model(
    model: Any,
    config: ModelConfig,
    folder: str | os.PathLike[str],
    *,
    card: dict[str, Any] | None = None,
    float16: bool = True,
) -> Path:
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
            raise ModelNotFoundError(f"{path}: model file is missing")
    config = load_config(folder)
    model = build_model(config)
    with np.load(weights_path) as stored:
        weights = [stored[f"arr_{i}"].astype(np.float32) for i in range(len(stored.files))]
    if len(weights) != len(model.get_weights()):
        raise ValueError(
            f"{weights_path}: {len(weights)} weight arrays, the architecture needs {len(model.get_weights())}"
        )
    model.set_weights(weights)
    return model, config


def load_config(folder: str | os.PathLike[str]) -> ModelConfig:
    """The :class:`ModelConfig` saved in a model folder's ``config.json``."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: model file is missing")
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise TypeError(f"a JSON object expected, got {type(values).__name__}")
        return ModelConfig.from_dict(values)
    except (json.JSONDecodeError, TypeError) as err:
        raise ModelNotFoundError(f"{path}: not a model configuration ({err})") from None


def available_models() -> list[str]:
    """Names of the pretrained models shipped inside the package.

    Examples
    --------
    >>> "unet-dsb2018" in available_models()
    True
    """
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def model_folder(name_or_path: str | os.PathLike[str]) -> Path:
    """The folder of a shipped model (by name) or of a model folder (by path).

    Raises
    ------
    ModelNotFoundError
        Naming the model and listing the shipped ones.

    Examples
    --------
    >>> model_folder("unet-dsb2018").name
    'unet-dsb2018'
    """
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return candidate
    shipped = PRETRAINED_DIR / str(name_or_path)
    if shipped.is_dir():
        return shipped
    known = ", ".join(available_models()) or "none"
    raise ModelNotFoundError(
        f"unknown model {str(name_or_path)!r}: not a folder, and not a shipped model (shipped: {known})"
    )


def load_model(name_or_path: str | os.PathLike[str] = "unet-dsb2018") -> tuple[Any, ModelConfig]:
    """Load a shipped model by name (e.g. ``"unet-dsb2018"``) or a model folder by path.

    Returns
    -------
    (tf.keras.Model, ModelConfig)
    """
    return load_model_folder(model_folder(name_or_path))


def model_card(name: str | os.PathLike[str]) -> dict[str, Any]:
    """The model card (data, split, profile, epochs, metrics, commit, date) of a shipped model
    (by name) or of a model folder (by path)."""
    path = model_folder(name) / "card.json"
    if not path.is_file():
        raise ModelNotFoundError(f"{path}: no model card for {name!r}")
    return dict(json.loads(path.read_text()))
