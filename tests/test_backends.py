"""nucleilib.deploy: TensorFlow Lite conversion and quantisation, XLA, backends, timing, throughput.

Tiny untrained networks (base width 4, depth 2) keep this fast; no speed is asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nucleilib import deploy, models
from nucleilib.inference import predict_tiled
from nucleilib.segmentation import keras_predict_fn, labels_from_probabilities, predict_probabilities

CONFIG = models.ModelConfig(base_filters=4, depth=2, outputs=("foreground", "border"), min_size=1)


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


@pytest.fixture(scope="module")
def tiny() -> object:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    return models.build_unet(CONFIG)


@pytest.fixture(scope="module")
def crops() -> list[np.ndarray]:
    return deploy.representative_crops(smooth_images(3, (120, 150), seed=1), n=6, size=64, seed=0)


@pytest.fixture(scope="module")
def flat_buffers(tiny, crops) -> dict[str, bytes]:
    return {kind: deploy.to_tflite(tiny, kind, crops if kind == "int8" else None) for kind in deploy.TFLITE_KINDS}


@pytest.fixture(scope="module")
def model_dir(tiny, flat_buffers, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    models.save_model(tiny, CONFIG, folder, float16=False)
    deploy.save_tflite(flat_buffers["float16"], folder, "float16")
    return folder


def keras_out(model, batch: np.ndarray) -> np.ndarray:
    return np.asarray(model(batch, training=False))


# --------------------------------------------------------------------------- conversion


def test_deployment_model_is_an_exact_rewrite_without_transposed_convolutions(tiny) -> None:
    import tensorflow as tf

    twin = deploy.deployment_model(tiny)
    assert not any(isinstance(layer, tf.keras.layers.Conv2DTranspose) for layer in twin.layers)
    assert twin.count_params() == tiny.count_params() + sum(
        3 * layer.filters for layer in tiny.layers if isinstance(layer, tf.keras.layers.Conv2DTranspose))
    x = smooth_images(2, (48, 80), seed=2)
    batch = np.stack(x)
    np.testing.assert_allclose(keras_out(twin, batch), keras_out(tiny, batch), atol=1e-6)


@pytest.mark.parametrize("size", [256, 512])
def test_float32_tflite_matches_keras(tiny, flat_buffers, size: int) -> None:
    batch = np.stack(smooth_images(2, (size, size), seed=size))
    out = deploy.tflite_predict_fn(flat_buffers["float32"])(batch)
    assert out.shape == (2, size, size, 2) and out.dtype == np.float32
    np.testing.assert_allclose(out, keras_out(tiny, batch), atol=1e-4)


@pytest.mark.parametrize("size", [256, 512])
def test_float16_and_int8_stay_close_to_keras(tiny, flat_buffers, size: int) -> None:
    batch = np.stack(smooth_images(1, (size, size), seed=size + 1))
    reference = keras_out(tiny, batch)
    half = deploy.tflite_predict_fn(flat_buffers["float16"])(batch)
    assert np.abs(half - reference).max() < 1e-2
    quantised = deploy.tflite_predict_fn(flat_buffers["int8"])(batch)
    error = np.abs(quantised - reference)
    assert error.mean() < 0.03 and error.max() < 0.25
    assert not np.array_equal(quantised, reference)  # it really is quantised


def test_quantised_files_are_smaller(flat_buffers) -> None:
    sizes = {kind: len(data) for kind, data in flat_buffers.items()}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


def test_int8_model_is_integer_inside_with_float_ends(flat_buffers) -> None:
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(model_content=flat_buffers["int8"])
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert interpreter.get_output_details()[0]["dtype"] == np.float32
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert {"QUANTIZE", "DEQUANTIZE"} <= ops
    assert "TRANSPOSE_CONV" not in ops and "SHAPE" not in ops
    kernels = [t for t in interpreter.get_tensor_details() if t["dtype"] == np.int8]
    assert kernels, "no int8 tensors in the int8 model"


def test_one_predictor_serves_many_input_sizes(tiny, flat_buffers) -> None:
    fn = deploy.tflite_predict_fn(flat_buffers["float32"], num_threads=1)
    for shape in [(1, 64, 64), (3, 48, 80), (1, 256, 128), (1, 64, 64)]:
        batch = np.random.default_rng(sum(shape)).random(shape + (3,), dtype=np.float32)
        out = fn(batch)
        assert out.shape == shape + (2,)
        np.testing.assert_allclose(out, keras_out(tiny, batch), atol=1e-4)
    assert len(fn._interpreters) == 3  # one interpreter per distinct shape


def test_tflite_is_a_predict_fn_for_tiling_and_segmentation(tiny, flat_buffers) -> None:
    image = smooth_images(1, (300, 410), seed=5)[0]
    fn = deploy.tflite_predict_fn(flat_buffers["float32"])
    tiled = predict_tiled(fn, image, tile=128)
    np.testing.assert_allclose(tiled, predict_tiled(keras_predict_fn(tiny), image, tile=128), atol=1e-4)
    rgb = (image * 255).astype(np.uint8)
    probs = predict_probabilities(None, CONFIG, rgb, tile=128, predict_fn=fn)
    assert probs.shape == (300, 410, 2)
    assert labels_from_probabilities(probs, CONFIG).shape == (300, 410)


def test_xla_predict_fn_matches_keras(tiny) -> None:
    batch = np.stack(smooth_images(2, (64, 96), seed=7))
    np.testing.assert_allclose(deploy.xla_predict_fn(tiny)(batch), keras_out(tiny, batch), atol=1e-4)


def test_representative_crops_shapes_and_determinism() -> None:
    images = smooth_images(2, (40, 70), seed=3)
    one = deploy.representative_crops(images, n=3, size=64, seed=4)
    two = deploy.representative_crops(images, n=3, size=64, seed=4)
    assert [c.shape for c in one] == [(64, 64, 3)] * 3
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    with pytest.raises(ValueError, match="multiple of 16"):
        deploy.representative_crops(images, size=60)
    with pytest.raises(ValueError, match="positive integer"):
        deploy.representative_crops(images, n=0)


# --------------------------------------------------------------------------- errors


def test_conversion_errors(tiny, crops) -> None:
    with pytest.raises(ValueError, match="unknown TensorFlow Lite kind"):
        deploy.to_tflite(tiny, "int4")
    with pytest.raises(ValueError, match="representative"):
        deploy.to_tflite(tiny, "int8")
    with pytest.raises(ValueError, match="only used for int8"):
        deploy.to_tflite(tiny, "float16", crops)
    with pytest.raises(ValueError, match="multiples of 16"):
        deploy.to_tflite(tiny, "int8", [np.zeros((40, 40, 3), np.float32)])
    with pytest.raises(ValueError, match="channel"):
        deploy.to_tflite(tiny, "int8", [np.zeros((32, 32, 1), np.float32)])


def test_predictor_errors(flat_buffers, tmp_path: Path) -> None:
    fn = deploy.tflite_predict_fn(flat_buffers["float32"])
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        fn(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="channel"):
        fn(np.zeros((1, 32, 32, 1), np.float32))
    with pytest.raises(ValueError, match="multiples of 16"):
        fn(np.zeros((1, 30, 30, 3), np.float32))
    with pytest.raises(FileNotFoundError, match="nothing.tflite"):
        deploy.tflite_predict_fn(tmp_path / "nothing.tflite")
    (tmp_path / "junk.tflite").write_bytes(b"not a flat buffer at all")
    with pytest.raises(ValueError, match="junk.tflite"):
        deploy.tflite_predict_fn(tmp_path / "junk.tflite")
    with pytest.raises(ValueError, match="num_threads"):
        deploy.tflite_predict_fn(flat_buffers["float32"], num_threads=0)


# --------------------------------------------------------------------------- files and backends


def test_backends_load_from_a_model_folder(tiny, model_dir: Path) -> None:
    assert (model_dir / "model-float16.tflite").is_file()
    batch = np.stack(smooth_images(1, (64, 64), seed=9))
    reference = keras_out(tiny, batch)
    for backend, tolerance in [("keras", 1e-5), ("xla", 1e-4), ("tflite-float16", 1e-2)]:
        fn, config = deploy.load_predict_fn(model_dir, backend)
        assert config == CONFIG
        assert np.abs(fn(batch) - reference).max() < tolerance, backend


def test_a_missing_backend_file_is_named_in_the_error(model_dir: Path) -> None:
    with pytest.raises(deploy.BackendUnavailableError) as caught:
        deploy.load_predict_fn(model_dir, "tflite-int8")
    message = str(caught.value)
    assert str(model_dir / "model-int8.tflite") in message and "\n" not in message
    assert "model-float16.tflite" in message  # what is there instead
    assert isinstance(caught.value, FileNotFoundError) and isinstance(caught.value, ValueError)


def test_backend_and_folder_errors(model_dir: Path, flat_buffers, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        deploy.load_predict_fn(model_dir, "onnx")
    with pytest.raises(ValueError, match="unknown model"):
        deploy.load_predict_fn("no-such-model", "keras")
    with pytest.raises(ValueError, match="config.json"):
        deploy.save_tflite(flat_buffers["int8"], tmp_path, "int8")
    with pytest.raises(ValueError, match="unknown TensorFlow Lite kind"):
        deploy.tflite_filename("bfloat16")
    assert deploy.tflite_filename("int8") == "model-int8.tflite"


# --------------------------------------------------------------------------- measuring


def test_time_inference_returns_positive_numbers(flat_buffers) -> None:
    timing = deploy.time_inference(deploy.tflite_predict_fn(flat_buffers["int8"]), size=64, batch=2, repeats=2,
                                   warmup=1)
    assert timing.ms_per_image > 0 and timing.min_ms_per_image > 0
    assert timing.min_ms_per_image <= timing.ms_per_image
    assert timing.ms_per_batch == pytest.approx(2 * timing.ms_per_image)
    assert (timing.size, timing.batch, timing.repeats) == (64, 2, 2)
    with pytest.raises(ValueError, match="repeats"):
        deploy.time_inference(lambda x: x, repeats=0)
    with pytest.raises(ValueError, match="callable"):
        deploy.time_inference("model")  # type: ignore[arg-type]


def test_training_throughput_of_every_variant_restores_the_policy() -> None:
    import tensorflow as tf

    from nucleilib.training import TrainConfig

    config = TrainConfig(model=CONFIG, crop=32, batch_size=2, seed=0)
    images = smooth_images(2, (70, 90), seed=11)
    targets = [(image[..., :2] > 0.5).astype(np.float32) for image in images]
    before = tf.keras.mixed_precision.global_policy().name
    for variant in deploy.THROUGHPUT_VARIANTS:
        rate = deploy.training_throughput(config, images, targets, variant, steps=2, warmup=1)
        assert np.isfinite(rate) and rate > 0, variant
        assert tf.keras.mixed_precision.global_policy().name == before
    with pytest.raises(ValueError, match="unknown variant"):
        deploy.training_throughput(config, images, targets, "fp8")
    with pytest.raises(ValueError, match="steps"):
        deploy.training_throughput(config, images, targets, "plain", steps=0)


def test_bfloat16_support_reports_flags() -> None:
    support = deploy.bfloat16_support()
    assert set(support) == {"avx512_bf16", "amx_bf16", "gpu"}
    assert all(isinstance(v, bool) for v in support.values())


def test_plain_pipeline_gives_the_same_batches_as_the_tuned_one() -> None:
    from nucleilib.transforms import training_dataset

    images = smooth_images(2, (70, 90), seed=12)
    targets = [(image[..., :1] > 0.5).astype(np.float32) for image in images]
    tuned = training_dataset(images, targets, crop=32, batch_size=2, seed=5, steps_per_epoch=2)
    plain = training_dataset(images, targets, crop=32, batch_size=2, seed=5, steps_per_epoch=2,
                             parallel=False, prefetch=False)
    for (x1, y1), (x2, y2) in zip(tuned, plain):
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())


def test_grid_timing_table_and_backend_evaluation(tiny, flat_buffers) -> None:
    from nucleilib.data import Sample

    assert deploy.timing_grid([64, 32], [4, 1], 2 * 64 * 64) == [(32, 1), (32, 4), (64, 1)]
    with pytest.raises(ValueError, match="max_batch_pixels"):
        deploy.timing_grid([64], [1], 100)
    fns = deploy.benchmark_predict_fns(tiny, {"float32": flat_buffers["float32"], "int8": flat_buffers["int8"]})
    assert list(fns) == ["keras-predict", "keras", "xla", "tflite-float32", "tflite-int8"]
    table = deploy.time_backends(fns, [(32, 1), (32, 2)], repeats=1, warmup=1)
    assert len(table) == 2 * len(fns) and (table["ms_per_image"] > 0).all()
    assert set(table["label"]) == {deploy.BENCHMARK_BACKENDS[name] for name in fns}

    rng = np.random.default_rng(0)
    labels = np.zeros((40, 56), np.uint16)
    labels[5:15, 5:20] = 1
    labels[22:35, 30:50] = 2
    samples = [Sample(f"s{i}", (rng.random((40, 56, 3)) * 255).astype(np.uint8), labels) for i in range(2)]
    scores = deploy.evaluate_backends({k: fns[k] for k in ("keras", "tflite-float32", "tflite-int8")}, CONFIG, samples)
    assert len(scores) == 6 and {"iou", "dsb_score", "predict_s", "foreground_flips"} <= set(scores.columns)
    reference = scores[scores["backend"] == "keras"]
    assert (reference["prob_max_abs_diff"] == 0).all()
    assert (scores.loc[scores["backend"] == "tflite-float32", "prob_max_abs_diff"] < 1e-4).all()
    with pytest.raises(ValueError, match="reference backend"):
        deploy.evaluate_backends({"xla": fns["xla"]}, CONFIG, samples)
