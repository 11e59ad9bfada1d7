"""Inference backends: one ``predict_fn`` per engine, for the same trained network.

A ``predict_fn`` (:data:`nucleilib.inference.PredictFn`) maps a float32 batch
``(N, H, W, C)`` (``H`` and ``W`` multiples of 16) to probabilities ``(N, H, W, K)``,
as :func:`nucleilib.inference.predict_tiled` expects.

* :func:`keras_predict_fn`: the Keras model under ``tf.function``, optionally compiled by XLA.
* :class:`TFLitePredictor`: a TensorFlow Lite flat buffer (float16 or int8, see
  :mod:`nucleilib.export`), at any input size.
* :func:`load_predict_fn`: a shipped model or model folder with one of :data:`BACKENDS`.

TensorFlow is imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BackendUnavailableError, ModelNotFoundError
from .inference import PredictFn
from .models import ModelConfig, load_config, load_model_folder, model_folder
from .validation import one_of, positive_int

#: TensorFlow Lite conversions made by :func:`nucleilib.export.to_tflite`.
TFLITE_KINDS: tuple[str, ...] = ("float32", "float16", "int8")
#: Inference backends of :func:`load_predict_fn` and ``nuclei predict --backend``.
BACKENDS: tuple[str, ...] = ("keras", "xla", "tflite-float16", "tflite-int8")


#: CPU flags (``/proc/cpuinfo``) of int8 dot-product instructions. XNNPACK's int8 kernels beat its
#: float ones only with them: on a 2-core Intel Xeon with AVX-512 VNNI and AMX the int8 U-Net took
#: 38 ms per 256x256 image against 47 ms in float16; on a 2-core AMD EPYC with AVX2 alone, 41 ms
#: against 37 ms (``benchmarks/predict.py``, the speed chapter).
INT8_DOT_PRODUCT_FLAGS: tuple[str, ...] = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


def default_backend(
    name_or_path: str | os.PathLike[str] = "unet-dsb2018", cpu_flags: Iterable[str] | None = None
) -> str:
    """The engine ``nuclei predict`` uses unless told: the faster of the shipped TensorFlow Lite
    models on this CPU, else Keras.

    The speed chapter writes ``model-int8.tflite`` and ``model-float16.tflite`` beside the shipped
    weights only when their test IoU is within its shipping rule's allowance of the float
    model's. Where the CPU has int8 dot-product instructions (:data:`INT8_DOT_PRODUCT_FLAGS`)
    the int8 model is the faster, elsewhere the float16 one (which is also the closer to the
    float model). The choice depends on the CPU alone, never on a timing, so the same machine
    always makes the same choice (a resumed run keeps its settings).

    Parameters
    ----------
    name_or_path : str or path-like
        A shipped model's name or a model folder.
    cpu_flags : iterable of str, optional
        The CPU's flags; default this machine's (:func:`nucleilib.machine.cpu_flags`).

    Examples
    --------
    >>> default_backend("unet-dsb2018", cpu_flags=["avx2", "avx512_vnni"])
    'tflite-int8'
    >>> default_backend("unet-dsb2018", cpu_flags=["avx2"])
    'tflite-float16'
    """
    from .machine import cpu_flags as machine_flags

    folder = model_folder(name_or_path)
    flags = set(machine_flags() if cpu_flags is None else cpu_flags)
    preference = ("int8", "float16") if flags.intersection(INT8_DOT_PRODUCT_FLAGS) else ("float16", "int8")
    for kind in preference:
        if (folder / tflite_filename(kind)).is_file():
            return f"tflite-{kind}"
    return "keras"


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


def keras_predict_fn(model: Any, *, jit_compile: bool = False) -> PredictFn:
    """Wrap a Keras model as a numpy batch -> numpy batch function.

    ``model(x, training=False)`` inside a ``tf.function`` avoids the per-call
    overhead of ``model.predict``. With ``jit_compile`` XLA fuses the network into
    one compiled program per input shape; the first batch of every new shape pays
    the compilation (a second or two for the U-Net on a CPU).
    """
    import tensorflow as tf

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def forward(batch: Any) -> Any:
        return model(batch, training=False)

    def predict(batch: np.ndarray) -> np.ndarray:
        return np.asarray(forward(tf.convert_to_tensor(batch, dtype=tf.float32)))

    return predict


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

    def __init__(
        self, model: bytes | str | os.PathLike[str], num_threads: int | None = None, cache_size: int = 8
    ) -> None:
        import tensorflow as tf

        if isinstance(model, (bytes, bytearray)):
            content = bytes(model)
            self.source = f"<{len(content)} bytes>"
        else:
            path = Path(model)
            if not path.is_file():
                raise ModelNotFoundError(f"{path}: TensorFlow Lite model file not found")
            content = path.read_bytes()
            self.source = str(path)
        if num_threads is None:
            num_threads = os.cpu_count() or 1
        positive_int(num_threads, "num_threads")
        positive_int(cache_size, "cache_size")
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
            raise ValueError(
                f"{self.source}: cannot run on a batch of shape {shape} "
                f"(the model's input is {self.input_signature}; sides must be multiples of 16): "
                f"{str(err).splitlines()[0]}"
            ) from err
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
        for fixed, got in zip(self.input_signature[:3], batch.shape[:3]):
            if fixed != -1 and fixed != got:
                raise ValueError(
                    f"{self.source}: the model's input is fixed to {self.input_signature}, got {batch.shape}"
                )
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


def tflite_predict_fn(
    model_bytes_or_path: bytes | str | os.PathLike[str], num_threads: int | None = None
) -> TFLitePredictor:
    """A TensorFlow Lite model as a ``predict_fn`` (see :class:`TFLitePredictor`).

    Parameters
    ----------
    model_bytes_or_path : bytes or path-like
        A flat buffer of :func:`nucleilib.export.to_tflite` or a ``.tflite`` file.
    num_threads : int, optional
        Interpreter threads; default ``os.cpu_count()``.

    Returns
    -------
    callable
        Maps a float32 batch ``(N, H, W, C)`` to ``(N, H, W, K)``.
    """
    return TFLitePredictor(model_bytes_or_path, num_threads=num_threads)


def load_predict_fn(
    name_or_path: str | os.PathLike[str] = "unet-dsb2018", backend: str = "keras", *, num_threads: int | None = None
) -> tuple[PredictFn, ModelConfig]:
    """Load a shipped model (by name) or a model folder (by path) for one backend.

    Parameters
    ----------
    name_or_path : str or path-like
        As for :func:`nucleilib.models.load_model`.
    backend : {"keras", "xla", "tflite-float16", "tflite-int8"}
        ``"keras"`` and ``"xla"`` rebuild the Keras model from its weights
        (:func:`keras_predict_fn`);
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
        For an unknown backend.
    ModelNotFoundError
        For an unknown model.
    BackendUnavailableError
        When the backend's model file is not in the folder (the message names it).
    """
    one_of(backend, BACKENDS, "backend")
    folder = model_folder(name_or_path)
    if backend in ("keras", "xla"):
        model, config = load_model_folder(folder)
        return keras_predict_fn(model, jit_compile=backend == "xla"), config
    kind = backend.removeprefix("tflite-")
    path = folder / tflite_filename(kind)
    if not path.is_file():
        present = sorted(p.name for p in folder.glob("model-*.tflite"))
        raise BackendUnavailableError(
            f"{path}: model file missing, so backend {backend!r} is not available for this model "
            f"(TensorFlow Lite files here: {', '.join(present) or 'none'}; "
            f"write one with nucleilib.export.save_tflite(to_tflite(model, {kind!r}, ...), folder, {kind!r}))"
        )
    config = load_config(folder)
    predictor = tflite_predict_fn(path, num_threads=num_threads)
    if predictor.channels not in (-1, config.in_channels):
        raise ValueError(f"{path}: takes {predictor.channels} channel(s) but config.json says {config.in_channels}")
    return predictor, config
