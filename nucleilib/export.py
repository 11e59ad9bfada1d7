"""Exporting a trained network for deployment: TensorFlow Lite, float16 and int8.

* :func:`deployment_model` rewrites the Keras graph into an equivalent one that
  TensorFlow Lite's XNNPACK delegate accepts at any input size.
* :func:`to_tflite` converts a Keras model to a TensorFlow Lite flat buffer,
  ``"float32"``, ``"float16"`` (float16 weights, float32 arithmetic) or
  ``"int8"`` (post-training quantisation: int8 weights *and* activations, every
  operator integer, calibrated on a representative set of preprocessed crops;
  the model's input and output stay float32, converted by a quantise and a
  dequantise operator at the two ends).
* :func:`save_tflite` keeps such a model beside the float one, as
  ``model-<kind>.tflite`` in the model folder, where
  :func:`nucleilib.backends.load_predict_fn` finds it.

TensorFlow is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .backends import _check_kind, tflite_filename
from .validation import multiple_of, positive_int

# --------------------------------------------------------------------------- conversion


def _pixel_shuffle_layer() -> Any:
    """A Keras layer class: 1x1 convolution to ``4 * filters`` channels, then depth-to-space by 2."""
    import tensorflow as tf

    class PixelShuffleUp(tf.keras.layers.Layer):
        """Exact twin of ``Conv2DTranspose(filters, 2, strides=2)`` without dynamic shapes."""

        def __init__(self, filters: int, use_bias: bool = True, activation: Any = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.filters = int(filters)
            self.use_bias = bool(use_bias)
            self.activation = tf.keras.activations.get(activation)

        def build(self, input_shape: Any) -> None:
            channels = int(input_shape[-1])
            self.kernel = self.add_weight(name="kernel", shape=(1, 1, channels, 4 * self.filters))
            self.bias = self.add_weight(name="bias", shape=(4 * self.filters,)) if self.use_bias else None
            super().build(input_shape)

        def call(self, inputs: Any) -> Any:
            y = tf.nn.conv2d(inputs, self.kernel, strides=1, padding="VALID")
            if self.bias is not None:
                y = y + self.bias
            return self.activation(tf.nn.depth_to_space(y, 2))

    return PixelShuffleUp


def _is_shuffle_twin(layer: Any) -> bool:
    import tensorflow as tf

    return (
        isinstance(layer, tf.keras.layers.Conv2DTranspose)
        and tuple(layer.kernel_size) == (2, 2)
        and tuple(layer.strides) == (2, 2)
        and tuple(layer.dilation_rate) == (1, 1)
        and layer.output_padding is None
        and layer.data_format == "channels_last"
        and layer.padding in ("same", "valid")
    )


def deployment_model(model: Any) -> Any:
    """A copy of a Keras model whose 2x2, stride-2 transposed convolutions are
    replaced by an exactly equivalent 1x1 convolution plus depth-to-space.

    A ``Conv2DTranspose`` with kernel 2 and stride 2 writes every input pixel to
    its own 2x2 output block: ``out[2i + a, 2j + b, f] = sum_c x[i, j, c] W[a, b, f, c] + bias[f]``.
    That is a 1x1 convolution to ``4 F`` channels followed by
    ``tf.nn.depth_to_space(., 2)``, the same arithmetic. Keras computes the
    output shape of a transposed convolution from the input's shape at run
    time, which leaves ``SHAPE``/``PACK`` operators and dynamic tensors in a
    TensorFlow Lite model with a free input size, and TensorFlow Lite 2.14's
    XNNPACK delegate (its fast CPU kernels) refuses such a graph altogether;
    the rewritten graph has no shape arithmetic, so XNNPACK takes it at every
    input size. Other layers are cloned with their weights; a model with no such
    layer comes back as an identical copy.

    Parameters
    ----------
    model : tf.keras.Model
        A functional Keras model (as :func:`nucleilib.models.build_model` makes).

    Returns
    -------
    tf.keras.Model
        Same inputs, outputs and (to float rounding) predictions.
    """
    import tensorflow as tf

    shuffle = _pixel_shuffle_layer()

    def clone(layer: Any) -> Any:
        if _is_shuffle_twin(layer):
            return shuffle(
                layer.filters,
                use_bias=layer.use_bias,
                activation=layer.activation,
                name=layer.name,
                dtype=layer.dtype_policy,
            )
        return layer.__class__.from_config(layer.get_config())

    twin = tf.keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        new = twin.get_layer(layer.name)
        weights = layer.get_weights()
        if _is_shuffle_twin(layer):
            kernel = weights[0]  # (2, 2, F, C)
            filters, channels = kernel.shape[2], kernel.shape[3]
            weights = [kernel.transpose(3, 0, 1, 2).reshape(1, 1, channels, 4 * filters)]
            if layer.use_bias:
                weights.append(np.tile(layer.get_weights()[1], 4))
        new.set_weights(weights)
    return twin


def _check_crop(crop: Any, channels: int | None, index: int) -> np.ndarray:
    array = np.asarray(crop, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"representative crop {index}: expected shape (H, W, C), got {array.shape}")
    height, width, c = array.shape
    if channels is not None and c != channels:
        raise ValueError(f"representative crop {index}: {c} channel(s), the model takes {channels}")
    if height < 16 or width < 16 or height % 16 or width % 16:
        raise ValueError(f"representative crop {index}: sides must be positive multiples of 16, got {height}x{width}")
    if not np.isfinite(array).all():
        raise ValueError(f"representative crop {index}: contains NaN or infinite values")
    return array


def to_tflite(model: Any, kind: str = "float32", representative: Sequence[np.ndarray] | None = None) -> bytes:
    """Convert a Keras segmentation model to a TensorFlow Lite flat buffer.

    The converted model keeps the free input size of the Keras model (shape
    signature ``(-1, -1, -1, C)``): :func:`tflite_predict_fn` runs it at any
    size the network accepts (multiples of 16 for the U-Net). The model is first
    rewritten by :func:`deployment_model`, which changes no arithmetic.

    Parameters
    ----------
    model : tf.keras.Model
        The float32 model (any input size).
    kind : {"float32", "float16", "int8"}
        ``"float32"``: plain conversion. ``"float16"``: weights stored as
        float16 (half the file), dequantised to float32 when the interpreter
        loads the model; arithmetic stays float32. ``"int8"``: full-integer
        post-training quantisation, int8 weights (per channel) and int8
        activations (per tensor, ranges calibrated on ``representative``);
        every operator runs in integer arithmetic, with float32 input and
        output converted at the two ends.
    representative : sequence of ndarray, shape (H, W, C), float32
        Needed for ``"int8"``: preprocessed crops like those the model sees
        (e.g. :func:`representative_crops` of training images); sides
        multiples of 16. A few dozen suffice; each costs one slow forward pass
        of the calibrating converter.

    Returns
    -------
    bytes
        The flat buffer (write it with :func:`save_tflite`).

    Raises
    ------
    ValueError
        For an unknown ``kind``, or a missing or malformed ``representative``.
    """
    import tensorflow as tf

    _check_kind(kind)
    channels = model.input_shape[-1]
    crops: list[np.ndarray] = []
    if kind == "int8":
        if representative is None or len(representative) == 0:
            raise ValueError("int8 quantisation needs a representative set of preprocessed crops (representative=...)")
        crops = [_check_crop(crop, channels, i) for i, crop in enumerate(representative)]
    elif representative is not None:
        raise ValueError(f"representative crops are only used for int8, not {kind!r}")
    converter = tf.lite.TFLiteConverter.from_keras_model(deployment_model(model))
    if kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif kind == "int8":

        def calibration() -> Iterator[list[np.ndarray]]:
            for crop in crops:
                yield [crop[np.newaxis]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32
        converter.inference_output_type = tf.float32
    import warnings

    with warnings.catch_warnings():
        # "Statistics for quantized inputs were expected": the float input needs none.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        return bytes(converter.convert())


def representative_crops(images: Sequence[np.ndarray], n: int = 32, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """``n`` random ``size`` x ``size`` crops of preprocessed images, for int8 calibration.

    Drawn by :func:`nucleilib.pipeline.random_windows` (images weighted by the
    square root of their area, positions uniform, reflect padding where an
    image is smaller than ``size``), without augmentation.

    Examples
    --------
    >>> crops = representative_crops([np.zeros((40, 300, 3), np.float32)], n=2, size=64)
    >>> len(crops), crops[0].shape
    (2, (64, 64, 3))
    """
    from .pipeline import random_windows

    positive_int(n, "n")
    multiple_of(size, 16, "size")
    images = [np.asarray(image, dtype=np.float32) for image in images]
    dummy = [np.zeros(image.shape[:2] + (1,), np.float32) for image in images]
    windows = random_windows(images, dummy, size, seed)
    return [next(windows)[0] for _ in range(n)]


def save_tflite(model_bytes: bytes, folder: str | os.PathLike[str], kind: str) -> Path:
    """Write a flat buffer of :func:`to_tflite` as ``<folder>/model-<kind>.tflite``.

    The folder must hold the model's ``config.json`` already (the backends read
    preprocessing and thresholds from it).
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: not a model folder (no config.json); save the model there first")
    if not isinstance(model_bytes, (bytes, bytearray)) or not model_bytes:
        raise ValueError("model_bytes must be the non-empty bytes of a TensorFlow Lite model")
    path = folder / tflite_filename(kind)
    path.write_bytes(bytes(model_bytes))
    return path
