"""Fast and small inference, and training throughput: XLA, TensorFlow Lite, quantisation.

Everything here produces or measures a ``predict_fn``: a function mapping a float32
batch ``(N, H, W, C)`` (``H`` and ``W`` multiples of 16) to probabilities
``(N, H, W, K)``, as :func:`nucleilib.segmentation.predict_probabilities` and
:func:`nucleilib.inference.predict_tiled` expect.

* :func:`xla_predict_fn`: the Keras model under ``tf.function(jit_compile=True)``.
* :func:`to_tflite` converts a Keras model to a TensorFlow Lite flat buffer,
  ``"float32"``, ``"float16"`` (float16 weights, float32 arithmetic) or
  ``"int8"`` (post-training quantisation: int8 weights *and* activations, every
  operator integer, calibrated on a representative set of preprocessed crops;
  the model's input and output stay float32, converted by a quantise and a
  dequantise operator at the two ends).
* :func:`tflite_predict_fn` runs such a flat buffer, at any input size.
* :func:`save_tflite` / :func:`load_predict_fn` keep quantised models beside the
  float one, as ``model-<kind>.tflite`` in the model folder, and load a model
  with one of :data:`BACKENDS`.
* :func:`time_inference` and :func:`training_throughput` measure.

TensorFlow is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .models import MODELS_DIR, ModelConfig, available_models

PredictFn = Callable[[np.ndarray], np.ndarray]

#: TensorFlow Lite conversions made by :func:`to_tflite`.
TFLITE_KINDS: tuple[str, ...] = ("float32", "float16", "int8")
#: Inference backends of :func:`load_predict_fn` and ``nuclei predict --backend``.
BACKENDS: tuple[str, ...] = ("keras", "xla", "tflite-float16", "tflite-int8")
#: Variants of :func:`training_throughput`.
THROUGHPUT_VARIANTS: tuple[str, ...] = ("plain", "tuned", "bfloat16", "xla")


class BackendUnavailableError(FileNotFoundError, ValueError):
    """A backend's model file is not in the model folder.

    Both a :class:`FileNotFoundError` and a :class:`ValueError`, so that the
    command line reports it as a one-line error like an unknown model.
    """


# --------------------------------------------------------------------------- file names


def tflite_filename(kind: str) -> str:
    """File name of a TensorFlow Lite model of ``kind`` in a model folder.

    Examples
    --------
    >>> tflite_filename("int8")
    'model-int8.tflite'
    """
    _check_kind(kind)
    return f"model-{kind}.tflite"


def _check_kind(kind: str) -> None:
    if kind not in TFLITE_KINDS:
        raise ValueError(f"unknown TensorFlow Lite kind {kind!r}; choose one of {', '.join(TFLITE_KINDS)}")


def model_folder(name_or_path: str | os.PathLike[str]) -> Path:
    """The folder of a shipped model (by name) or of a model folder (by path).

    Raises
    ------
    ValueError
        When ``name_or_path`` is neither (the message lists the shipped models).
    """
    candidate = Path(name_or_path)
    if candidate.is_dir():
        return candidate
    shipped = MODELS_DIR / str(name_or_path)
    if shipped.is_dir():
        return shipped
    known = ", ".join(available_models()) or "none"
    raise ValueError(f"unknown model {str(name_or_path)!r}: not a folder, and not a shipped model (shipped: {known})")


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
            return shuffle(layer.filters, use_bias=layer.use_bias, activation=layer.activation,
                           name=layer.name, dtype=layer.dtype_policy)
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

    Drawn by :func:`nucleilib.transforms.random_windows` (images weighted by the
    square root of their area, positions uniform, reflect padding where an
    image is smaller than ``size``), without augmentation.

    Examples
    --------
    >>> crops = representative_crops([np.zeros((40, 300, 3), np.float32)], n=2, size=64)
    >>> len(crops), crops[0].shape
    (2, (64, 64, 3))
    """
    from .transforms import random_windows

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16 or size % 16:
        raise ValueError(f"size must be a positive multiple of 16, got {size!r}")
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


# --------------------------------------------------------------------------- prediction functions


class TFLitePredictor:
    """A TensorFlow Lite model as a ``predict_fn`` (numpy batch -> numpy batch).

    One interpreter per input shape: the first batch of a new shape creates an
    interpreter, resizes its input to that shape and allocates it (a few
    milliseconds), so that every tensor is static and XNNPACK takes the graph;
    the ``cache_size`` most recently used shapes are kept. Not thread-safe (use
    one predictor per thread).

    Parameters
    ----------
    model : bytes or path-like
        A flat buffer (:func:`to_tflite`) or a ``.tflite`` file.
    num_threads : int, optional
        Interpreter threads; default ``os.cpu_count()``.
    cache_size : int
        Interpreters kept, one per input shape.
    """

    def __init__(self, model: bytes | str | os.PathLike[str], num_threads: int | None = None,
                 cache_size: int = 8) -> None:
        import tensorflow as tf

        if isinstance(model, (bytes, bytearray)):
            content = bytes(model)
            self.source = f"<{len(content)} bytes>"
        else:
            path = Path(model)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: TensorFlow Lite model file not found")
            content = path.read_bytes()
            self.source = str(path)
        if num_threads is None:
            num_threads = os.cpu_count() or 1
        if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        self.content = content
        self.num_threads = int(num_threads)
        self.cache_size = int(cache_size)
        self._interpreters: OrderedDict[tuple[int, ...], tuple[Any, dict[str, Any], dict[str, Any]]] = OrderedDict()
        try:
            probe = tf.lite.Interpreter(model_content=content, num_threads=1)
        except ValueError as err:
            raise ValueError(f"{self.source}: not a TensorFlow Lite model ({err})") from err
        inputs, outputs = probe.get_input_details(), probe.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"{self.source}: expected one input and one output, got {len(inputs)} and {len(outputs)}")
        self.input_signature = tuple(int(v) for v in inputs[0]["shape_signature"])
        self.input_dtype = np.dtype(inputs[0]["dtype"])
        self.output_dtype = np.dtype(outputs[0]["dtype"])
        if len(self.input_signature) != 4:
            raise ValueError(f"{self.source}: expected an image batch input (N, H, W, C), got {self.input_signature}")
        self.channels = self.input_signature[-1]

    def _interpreter(self, shape: tuple[int, ...]) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        import tensorflow as tf

        if shape in self._interpreters:
            self._interpreters.move_to_end(shape)
            return self._interpreters[shape]
        interpreter = tf.lite.Interpreter(model_content=self.content, num_threads=self.num_threads)
        index = interpreter.get_input_details()[0]["index"]
        try:
            interpreter.resize_tensor_input(index, list(shape), strict=True)
            interpreter.allocate_tensors()
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{self.source}: cannot run on a batch of shape {shape} "
                             f"(the model's input is {self.input_signature}; sides must be multiples of 16): "
                             f"{str(err).splitlines()[0]}") from err
        entry = (interpreter, interpreter.get_input_details()[0], interpreter.get_output_details()[0])
        self._interpreters[shape] = entry
        while len(self._interpreters) > self.cache_size:
            self._interpreters.popitem(last=False)
        return entry

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4:
            raise ValueError(f"expected a batch of shape (N, H, W, C), got shape {batch.shape}")
        if batch.shape[-1] != self.channels:
            raise ValueError(f"batch has {batch.shape[-1]} channel(s), the model takes {self.channels}")
        if 0 in batch.shape:
            raise ValueError(f"empty batch of shape {batch.shape}")
        for axis, (fixed, got) in enumerate(zip(self.input_signature[:3], batch.shape[:3])):
            if fixed != -1 and fixed != got:
                raise ValueError(f"{self.source}: the model's input is fixed to {self.input_signature}, got {batch.shape}")
        interpreter, input_details, output_details = self._interpreter(tuple(int(v) for v in batch.shape))
        if self.input_dtype != np.float32:  # a model with quantised input: quantise here
            scale, zero = input_details["quantization"]
            info = np.iinfo(self.input_dtype)
            batch = np.clip(np.round(batch / scale + zero), info.min, info.max).astype(self.input_dtype)
        interpreter.set_tensor(input_details["index"], np.ascontiguousarray(batch))
        interpreter.invoke()
        out = interpreter.get_tensor(output_details["index"])
        if self.output_dtype != np.float32:
            scale, zero = output_details["quantization"]
            out = (out.astype(np.float32) - zero) * scale
        return np.asarray(out, dtype=np.float32)


def tflite_predict_fn(model_bytes_or_path: bytes | str | os.PathLike[str], num_threads: int | None = None) -> TFLitePredictor:
    """A TensorFlow Lite model as a ``predict_fn`` (see :class:`TFLitePredictor`).

    Parameters
    ----------
    model_bytes_or_path : bytes or path-like
        A flat buffer of :func:`to_tflite` or a ``.tflite`` file.
    num_threads : int, optional
        Interpreter threads; default ``os.cpu_count()``.

    Returns
    -------
    callable
        Maps a float32 batch ``(N, H, W, C)`` to ``(N, H, W, K)``.
    """
    return TFLitePredictor(model_bytes_or_path, num_threads=num_threads)


def xla_predict_fn(model: Any) -> PredictFn:
    """Like :func:`nucleilib.segmentation.keras_predict_fn`, compiled by XLA.

    ``tf.function(jit_compile=True)`` fuses the network into one compiled
    program per input shape; the first batch of every new shape pays the
    compilation (about a second or two for the U-Net on a CPU).
    """
    import tensorflow as tf

    @tf.function(jit_compile=True, reduce_retracing=True)
    def forward(batch: Any) -> Any:
        return model(batch, training=False)

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(forward(tf.convert_to_tensor(batch, dtype=tf.float32)))

    return predict


def load_predict_fn(name_or_path: str | os.PathLike[str] = "unet-dsb2018", backend: str = "keras", *,
                    num_threads: int | None = None) -> tuple[PredictFn, ModelConfig]:
    """Load a shipped model (by name) or a model folder (by path) for one backend.

    Parameters
    ----------
    name_or_path : str or path-like
        As for :func:`nucleilib.models.load_model`.
    backend : {"keras", "xla", "tflite-float16", "tflite-int8"}
        ``"keras"`` and ``"xla"`` rebuild the Keras model from its weights
        (:func:`nucleilib.segmentation.keras_predict_fn`, :func:`xla_predict_fn`);
        the ``tflite-*`` backends read ``model-float16.tflite`` or
        ``model-int8.tflite`` from the model folder.
    num_threads : int, optional
        TensorFlow Lite interpreter threads (default ``os.cpu_count()``).

    Returns
    -------
    predict_fn : callable
        Float32 batch ``(N, H, W, C)`` -> probabilities ``(N, H, W, K)``.
    config : ModelConfig
        Preprocessing and post-processing settings of the model.

    Raises
    ------
    ValueError
        For an unknown backend or model.
    BackendUnavailableError
        When the backend's model file is not in the folder (the message names it).
    """
    import json

    from .models import load_model_folder

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    folder = model_folder(name_or_path)
    if backend in ("keras", "xla"):
        from .segmentation import keras_predict_fn

        model, config = load_model_folder(folder)
        return (keras_predict_fn(model) if backend == "keras" else xla_predict_fn(model)), config
    kind = backend.removeprefix("tflite-")
    path = folder / tflite_filename(kind)
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("model-*.tflite"))
        raise BackendUnavailableError(
            f"{path}: model file missing, so backend {backend!r} is not available for this model "
            f"(TensorFlow Lite files here: {', '.join(present) or 'none'}; "
            f"write one with nucleilib.deploy.save_tflite(to_tflite(model, {kind!r}, ...), folder, {kind!r}))"
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BackendUnavailableError(f"{config_path}: model file missing")
    config = ModelConfig.from_dict(json.loads(config_path.read_text()))
    predictor = tflite_predict_fn(path, num_threads=num_threads)
    if predictor.channels not in (-1, config.in_channels):
        raise ValueError(f"{path}: takes {predictor.channels} channel(s) but config.json says {config.in_channels}")
    return predictor, config


# --------------------------------------------------------------------------- timing


class InferenceTiming(NamedTuple):
    """Result of :func:`time_inference` (times in milliseconds)."""

    ms_per_image: float  #: median over repeats of (batch time / batch)
    min_ms_per_image: float  #: fastest repeat / batch
    ms_per_batch: float  #: median batch time
    size: int
    batch: int
    repeats: int


def time_inference(predict_fn: PredictFn, size: int = 256, batch: int = 1, repeats: int = 10, warmup: int = 2,
                   *, channels: int = 3, seed: int = 0) -> InferenceTiming:
    """Wall time of ``predict_fn`` on a random ``(batch, size, size, channels)`` batch.

    ``warmup`` untimed calls first (tracing, compilation, allocation), then
    ``repeats`` timed calls of the same batch (inputs uniform in [0, 1]); the
    result is computed from the median and the fastest call. Only the network
    is timed: no preprocessing, tiling or post-processing.

    Returns
    -------
    InferenceTiming
        ``ms_per_image`` (median), ``min_ms_per_image``, ``ms_per_batch``
        (median), and the settings.

    Examples
    --------
    >>> time_inference(lambda x: x[..., :1], size=32, repeats=3).ms_per_image > 0
    True
    """
    for name, value, low in (("size", size, 1), ("batch", batch, 1), ("repeats", repeats, 1),
                             ("warmup", warmup, 0), ("channels", channels, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not callable(predict_fn):
        raise ValueError(f"predict_fn must be callable, got {type(predict_fn).__name__}")
    x = np.random.default_rng(seed).random((batch, size, size, channels), dtype=np.float32)
    for _ in range(warmup):
        np.asarray(predict_fn(x))
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.asarray(predict_fn(x))
        seconds.append(time.perf_counter() - start)
    median = 1000 * float(np.median(seconds))
    return InferenceTiming(median / batch, 1000 * min(seconds) / batch, median, int(size), int(batch), int(repeats))


# --------------------------------------------------------------------------- training throughput


def cpu_flags() -> set[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bfloat16_support() -> dict[str, bool]:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16, AMX-BF16) and a GPU is visible."""
    import tensorflow as tf

    flags = cpu_flags()
    return {
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "gpu": bool(tf.config.list_physical_devices("GPU")),
    }


def training_throughput(config: Any, images: Sequence[np.ndarray], targets: Sequence[np.ndarray],
                        variant: str = "tuned", steps: int = 10, warmup: int = 2, *, seed: int | None = None) -> float:
    """Training crops per second of one training set-up, input pipeline included.

    A fresh network of ``config.model`` is compiled like
    :func:`nucleilib.training.train` does (Adam, BCE + Dice, the accuracy and
    IoU metrics) and fed by :func:`nucleilib.transforms.training_dataset`
    (``config.crop``, ``config.batch_size``, augmentation on); ``warmup``
    untimed steps (tracing, XLA compilation, filling the pipeline), then
    ``steps`` timed steps, each one call of Keras' own train function on the
    next batch of the same iterator.

    Parameters
    ----------
    config : TrainConfig
    images, targets : sequence of ndarray
        Preprocessed images and targets (:func:`nucleilib.training.prepare_arrays`).
    variant : {"plain", "tuned", "bfloat16", "xla"}
        ``"plain"``: sequential map and no prefetch, so the CPU alternates
        between making a batch and training on it. ``"tuned"``: the project's
        pipeline (parallel map, prefetch). ``"bfloat16"``: tuned plus the
        ``mixed_bfloat16`` Keras policy (restored afterwards). ``"xla"``: tuned
        plus ``compile(jit_compile=True)``.
    steps, warmup : int
        Timed and untimed training steps.
    seed : int, optional
        Default ``config.seed``.

    Returns
    -------
    float
        Crops per second over the timed steps.
    """
    import tensorflow as tf

    from .models import bce_dice_loss, build_model, foreground_accuracy, foreground_iou
    from .transforms import training_dataset

    if variant not in THROUGHPUT_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(THROUGHPUT_VARIANTS)}")
    for name, value, low in (("steps", steps, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    seed = config.seed if seed is None else seed
    plain = variant == "plain"
    dataset = training_dataset(images, targets, crop=config.crop, batch_size=config.batch_size, seed=seed,
                               parallel=not plain, prefetch=not plain)
    previous = tf.keras.mixed_precision.global_policy()
    try:
        tf.keras.mixed_precision.set_global_policy("mixed_bfloat16" if variant == "bfloat16" else "float32")
        tf.keras.utils.set_random_seed(seed)
        model = build_model(config.model)
        model.compile(
            optimizer=tf.keras.optimizers.Adam(config.learning_rate),
            loss=bce_dice_loss(config.border_weight),
            metrics=[foreground_accuracy, foreground_iou],
            jit_compile=variant == "xla",
        )
        train_step = model.make_train_function()
        iterator = iter(dataset)
        logs: Any = None
        for _ in range(warmup):
            logs = train_step(iterator)
        if logs is not None:
            float(logs["loss"])  # wait for the warm-up to finish
        start = time.perf_counter()
        for _ in range(steps):
            logs = train_step(iterator)
        float(logs["loss"])
        seconds = time.perf_counter() - start
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    return steps * config.batch_size / seconds


# --------------------------------------------------------------------------- the chapter's measurements

#: Labels of the backends compared by :func:`benchmark_predict_fns`, in order.
BENCHMARK_BACKENDS: dict[str, str] = {
    "keras-predict": "Keras model.predict",
    "keras": "Keras, tf.function",
    "xla": "Keras, XLA",
    "tflite-float32": "TFLite float32",
    "tflite-float16": "TFLite float16",
    "tflite-int8": "TFLite int8",
}


def benchmark_predict_fns(model: Any, tflite_models: dict[str, bytes] | None = None, *,
                          num_threads: int | None = None) -> dict[str, PredictFn]:
    """The ``predict_fn`` of every backend of :data:`BENCHMARK_BACKENDS` for one model.

    Parameters
    ----------
    model : tf.keras.Model
    tflite_models : dict, optional
        Kind (``"float32"``, ``"float16"``, ``"int8"``) -> flat buffer of
        :func:`to_tflite`; the kinds given add ``"tflite-<kind>"`` backends.
    num_threads : int, optional
        TensorFlow Lite threads (default ``os.cpu_count()``).
    """
    from .segmentation import keras_predict_fn

    def keras_predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(batch, batch_size=len(batch), verbose=0))

    fns: dict[str, PredictFn] = {"keras-predict": keras_predict, "keras": keras_predict_fn(model),
                                 "xla": xla_predict_fn(model)}
    for kind, content in (tflite_models or {}).items():
        _check_kind(kind)
        fns[f"tflite-{kind}"] = tflite_predict_fn(content, num_threads=num_threads)
    return {name: fns[name] for name in BENCHMARK_BACKENDS if name in fns}


def timing_grid(sizes: Sequence[int], batches: Sequence[int], max_batch_pixels: int) -> list[tuple[int, int]]:
    """The (size, batch) pairs with ``batch * size**2 <= max_batch_pixels``, by size then batch.

    Examples
    --------
    >>> timing_grid([256, 512, 1024], [1, 4, 16], 16 * 256 * 256)
    [(256, 1), (256, 4), (256, 16), (512, 1), (512, 4), (1024, 1)]
    """
    grid = [(int(s), int(b)) for s in sorted(sizes) for b in sorted(batches) if b * s * s <= max_batch_pixels]
    if not grid:
        raise ValueError(f"no (size, batch) pair fits max_batch_pixels={max_batch_pixels}")
    return grid


def time_backends(fns: dict[str, PredictFn], grid: Sequence[tuple[int, int]], *, repeats: int = 5, warmup: int = 1,
                  channels: int = 3, progress: bool = False) -> Any:
    """:func:`time_inference` of every backend at every (size, batch) of ``grid``.

    The backends are interleaved at each grid point, so that a change of the
    machine's load during the run shifts all of them alike.

    Returns
    -------
    DataFrame
        One row per backend and grid point: ``backend``, ``label``, ``size``,
        ``batch``, ``ms_per_image`` (median), ``min_ms_per_image``,
        ``ms_per_batch``, ``repeats``, ``images_per_s``.
    """
    import pandas as pd

    rows = []
    points = list(grid)
    if progress:
        from tqdm.auto import tqdm

        points = tqdm(points, desc="timing", unit="point")
    for size, batch in points:
        for name, fn in fns.items():
            timing = time_inference(fn, size, batch, repeats, warmup, channels=channels)
            rows.append({"backend": name, "label": BENCHMARK_BACKENDS.get(name, name), **timing._asdict(),
                         "images_per_s": 1000.0 / timing.ms_per_image})
    columns = ["backend", "label", "size", "batch", "ms_per_image", "min_ms_per_image", "ms_per_batch", "repeats",
               "images_per_s"]
    return pd.DataFrame(rows)[columns]


def evaluate_backends(fns: dict[str, PredictFn], config: ModelConfig, samples: Sequence[Any], *,
                      method: str | None = None, reference: str = "keras", tile: int = 512,
                      progress: bool = False) -> Any:
    """Per-image accuracy of every backend on annotated samples, and how far each
    backend's probabilities move from the ``reference`` backend's.

    Each image is predicted at full resolution (padded, or tiled above ``tile``)
    by :func:`nucleilib.segmentation.predict_probabilities`, separated with the
    model's thresholds and ``method`` (default the model's), and scored by
    :func:`nucleilib.evaluation.evaluate_pairs`.

    Returns
    -------
    DataFrame
        One row per image and backend: ``backend``, the metrics of
        ``evaluate_pairs`` (``iou``, ``dsb_score``, ...), ``predict_s`` (network
        and tiling, compilation for a new shape included), and, against the
        reference backend, ``prob_max_abs_diff``, ``prob_mean_abs_diff`` and
        ``foreground_flips`` (share of pixels on the other side of the
        threshold).
    """
    import pandas as pd

    from .evaluation import evaluate_pairs
    from .segmentation import labels_from_probabilities, predict_probabilities

    if reference not in fns:
        raise ValueError(f"reference backend {reference!r} is not among {', '.join(fns)}")
    if not samples:
        raise ValueError("no samples to evaluate")
    order = [reference] + [name for name in fns if name != reference]
    preds: dict[str, list[np.ndarray]] = {name: [] for name in order}
    extra: dict[str, list[dict[str, float]]] = {name: [] for name in order}
    items = list(samples)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="evaluating", unit="img")
    for sample in items:
        ref_probs: np.ndarray | None = None
        for name in order:
            start = time.perf_counter()
            probs = predict_probabilities(None, config, sample.image, tile=tile, predict_fn=fns[name])
            seconds = time.perf_counter() - start
            if ref_probs is None:
                ref_probs = probs
            diff = np.abs(probs - ref_probs)
            flips = float(np.mean((probs[..., 0] > config.threshold) != (ref_probs[..., 0] > config.threshold)))
            extra[name].append({"predict_s": seconds, "prob_max_abs_diff": float(diff.max()),
                                "prob_mean_abs_diff": float(diff.mean()), "foreground_flips": flips})
            preds[name].append(labels_from_probabilities(probs, config, method))
    truths = [s.labels for s in samples]
    ids = [s.image_id for s in samples]
    frames = []
    for name in order:
        frame = evaluate_pairs(truths, preds[name], ids=ids)
        frame.insert(0, "backend", name)
        frames.append(pd.concat([frame, pd.DataFrame(extra[name])], axis=1))
    return pd.concat(frames, ignore_index=True)


def file_sizes(folder: str | os.PathLike[str]) -> Any:
    """Sizes of a model folder's weight files (``weights.npz``, ``model-*.tflite``) in bytes and MB."""
    import pandas as pd

    folder = Path(folder)
    files = [folder / "weights.npz", *sorted(folder.glob("model-*.tflite"))]
    rows = [{"file": p.name, "bytes": p.stat().st_size, "MB": p.stat().st_size / 1e6} for p in files if p.is_file()]
    return pd.DataFrame(rows, columns=["file", "bytes", "MB"])
