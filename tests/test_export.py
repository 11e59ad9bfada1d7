"""nucleilib.export: the deployment rewrite, TensorFlow Lite conversion (float32, float16, int8),
calibration crops and saving beside the model.

A tiny untrained network (``tiny_unet`` of conftest.py) keeps this fast; no speed is asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_images, tiny_config

from nucleilib import export, models
from nucleilib.backends import TFLITE_KINDS, load_predict_fn, tflite_predict_fn


def keras_out(model, batch: np.ndarray) -> np.ndarray:
    return np.asarray(model(batch, training=False))


# --------------------------------------------------------------------------- conversion


def test_deployment_model_is_an_exact_rewrite_without_transposed_convolutions(tiny_unet) -> None:
    import tensorflow as tf

    twin = export.deployment_model(tiny_unet)
    assert not any(isinstance(layer, tf.keras.layers.Conv2DTranspose) for layer in twin.layers)
    assert twin.count_params() == tiny_unet.count_params() + sum(
        3 * layer.filters for layer in tiny_unet.layers if isinstance(layer, tf.keras.layers.Conv2DTranspose)
    )
    batch = np.stack(smooth_images(2, (48, 80), seed=2))
    np.testing.assert_allclose(keras_out(twin, batch), keras_out(tiny_unet, batch), atol=1e-6)


@pytest.mark.parametrize("size", [256, 512])
def test_float32_tflite_matches_keras(tiny_unet, tflite_buffers, size: int) -> None:
    batch = np.stack(smooth_images(2, (size, size), seed=size))
    out = tflite_predict_fn(tflite_buffers["float32"])(batch)
    assert out.shape == (2, size, size, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, keras_out(tiny_unet, batch), atol=1e-4)


@pytest.mark.parametrize("size", [256, 512])
def test_float16_and_int8_stay_close_to_keras(tiny_unet, tflite_buffers, size: int) -> None:
    batch = np.stack(smooth_images(1, (size, size), seed=size + 1))
    reference = keras_out(tiny_unet, batch)
    half = tflite_predict_fn(tflite_buffers["float16"])(batch)
    assert np.abs(half - reference).max() < 1e-2
    quantised = tflite_predict_fn(tflite_buffers["int8"])(batch)
    error = np.abs(quantised - reference)
    assert error.mean() < 0.03 and error.max() < 0.25
    assert not np.array_equal(quantised, reference)  # it really is quantised


def test_quantised_files_are_smaller(tflite_buffers) -> None:
    assert set(tflite_buffers) == set(TFLITE_KINDS)
    sizes = {kind: len(data) for kind, data in tflite_buffers.items()}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


def test_int8_model_is_integer_inside_with_float_ends(tflite_buffers) -> None:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=tflite_buffers["int8"])
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"QUANTIZE", "DEQUANTIZE"} <= ops
    assert "TRANSPOSE_CONV" not in ops and "SHAPE" not in ops
    kernels = [t for t in interpreter.get_tensor_details() if t["dtype"] == np.int8]
    assert kernels, "no int8 tensors in the int8 model"


def test_representative_crops_shapes_and_determinism() -> None:
    images = smooth_images(2, (40, 70), seed=3)
    one = export.representative_crops(images, n=3, size=64, seed=4)
    two = export.representative_crops(images, n=3, size=64, seed=4)
    assert [c.shape for c in one] == [(64, 64, 3)] * 3
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    with pytest.raises(ValueError, match="multiple of 16"):
        export.representative_crops(images, size=60)
    with pytest.raises(ValueError, match="positive integer"):
        export.representative_crops(images, n=0)


# --------------------------------------------------------------------------- errors


def test_conversion_errors(tiny_unet) -> None:
    crops = export.representative_crops(smooth_images(1, (64, 64), seed=6), n=2, size=32)
    with pytest.raises(ValueError, match="unknown TensorFlow Lite kind"):
        export.to_tflite(tiny_unet, "int4")
    with pytest.raises(ValueError, match="representative"):
        export.to_tflite(tiny_unet, "int8")
    with pytest.raises(ValueError, match="only used for int8"):
        export.to_tflite(tiny_unet, "float16", crops)
    with pytest.raises(ValueError, match="multiples of 16"):
        export.to_tflite(tiny_unet, "int8", [np.zeros((40, 40, 3), np.float32)])
    with pytest.raises(ValueError, match="channel"):
        export.to_tflite(tiny_unet, "int8", [np.zeros((32, 32, 1), np.float32)])
    with pytest.raises(ValueError, match="NaN"):
        export.to_tflite(tiny_unet, "int8", [np.full((32, 32, 3), np.nan, np.float32)])


# --------------------------------------------------------------------------- saving


def test_save_tflite_writes_beside_the_model_where_the_backend_finds_it(
    tiny_unet, tflite_buffers, tmp_path: Path
) -> None:
    config = tiny_config()
    models.save_model(tiny_unet, config, tmp_path, float16=False)
    path = export.save_tflite(tflite_buffers["int8"], tmp_path, "int8")
    assert path == tmp_path / "model-int8.tflite" and path.read_bytes() == tflite_buffers["int8"]
    fn, loaded = load_predict_fn(tmp_path, "tflite-int8")
    assert loaded == config
    batch = np.stack(smooth_images(1, (64, 64), seed=8))
    np.testing.assert_array_equal(fn(batch), tflite_predict_fn(tflite_buffers["int8"])(batch))


def test_save_tflite_errors(tflite_buffers, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="config.json"):
        export.save_tflite(tflite_buffers["int8"], tmp_path, "int8")
    (tmp_path / "config.json").write_text(tiny_config().to_json())
    with pytest.raises(ValueError, match="non-empty bytes"):
        export.save_tflite(b"", tmp_path, "int8")
    with pytest.raises(ValueError, match="unknown TensorFlow Lite kind"):
        export.save_tflite(tflite_buffers["int8"], tmp_path, "int4")
    assert not list(tmp_path.glob("*.tflite"))
