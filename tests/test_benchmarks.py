"""nucleilib.study.benchmarks: timing, the timing grid, backend comparison and training throughput.

Tiny untrained networks (``tiny_unet`` of conftest.py) keep this fast; no speed is asserted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import smooth_images, tiny_config

from nucleilib import models
from nucleilib.data import Sample
from nucleilib.io import write_image
from nucleilib.study import benchmarks
from nucleilib.study.benchmarks import (
    BENCHMARK_BACKENDS,
    THROUGHPUT_VARIANTS,
    benchmark_predict_fns,
    evaluate_backends,
    time_backends,
    time_inference,
    timing_grid,
    training_throughput,
)


def test_time_inference_returns_positive_numbers(tflite_buffers) -> None:
    from nucleilib.backends import tflite_predict_fn

    timing = time_inference(tflite_predict_fn(tflite_buffers["int8"]), size=64, batch=2, repeats=2, warmup=1)
    assert timing.ms_per_image > 0 and timing.min_ms_per_image > 0
    assert timing.min_ms_per_image <= timing.ms_per_image
    assert timing.ms_per_batch == pytest.approx(2 * timing.ms_per_image)
    assert (timing.size, timing.batch, timing.repeats) == (64, 2, 2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"repeats": 0}, "repeats"),
        ({"size": 0}, "size"),
        ({"batch": True}, "batch"),
        ({"warmup": -1}, "warmup"),
        ({"channels": 0}, "channels"),
    ],
)
def test_time_inference_refuses_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        time_inference(lambda x: x, **kwargs)


def test_time_inference_needs_a_callable() -> None:
    with pytest.raises(ValueError, match="callable"):
        time_inference("model")  # type: ignore[arg-type]


def test_training_throughput_of_every_variant_restores_the_policy() -> None:
    import tensorflow as tf

    from nucleilib.training import TrainConfig

    config = TrainConfig(model=tiny_config(), crop=32, batch_size=2, seed=0)
    images = smooth_images(2, (70, 90), seed=11)
    targets = [(image[..., :2] > 0.5).astype(np.float32) for image in images]
    before = tf.keras.mixed_precision.global_policy().name
    for variant in THROUGHPUT_VARIANTS:
        rate = training_throughput(config, images, targets, variant, steps=2, warmup=1)
        assert np.isfinite(rate) and rate > 0, variant
        assert tf.keras.mixed_precision.global_policy().name == before
    with pytest.raises(ValueError, match="unknown variant"):
        training_throughput(config, images, targets, "fp8")
    with pytest.raises(ValueError, match="steps"):
        training_throughput(config, images, targets, "plain", steps=0)


def test_bfloat16_support_reports_flags() -> None:
    support = benchmarks.bfloat16_support()
    assert set(support) == {"avx512_bf16", "amx_bf16", "gpu"}
    assert all(isinstance(v, bool) for v in support.values())
    flags = benchmarks.cpu_flags()
    assert isinstance(flags, set) and all(isinstance(f, str) for f in flags)
    assert support["avx512_bf16"] == ("avx512_bf16" in flags)


def test_plain_pipeline_gives_the_same_batches_as_the_tuned_one() -> None:
    from nucleilib.pipeline import training_dataset

    images = smooth_images(2, (70, 90), seed=12)
    targets = [(image[..., :1] > 0.5).astype(np.float32) for image in images]
    tuned = training_dataset(images, targets, crop=32, batch_size=2, seed=5, steps_per_epoch=2)
    plain = training_dataset(
        images, targets, crop=32, batch_size=2, seed=5, steps_per_epoch=2, parallel=False, prefetch=False
    )
    for (x1, y1), (x2, y2) in zip(tuned, plain):
        np.testing.assert_array_equal(x1.numpy(), x2.numpy())
        np.testing.assert_array_equal(y1.numpy(), y2.numpy())


def test_timing_grid_orders_and_filters() -> None:
    assert timing_grid([64, 32], [4, 1], 2 * 64 * 64) == [(32, 1), (32, 4), (64, 1)]
    with pytest.raises(ValueError, match="max_batch_pixels"):
        timing_grid([64], [1], 100)


def test_grid_timing_table_and_backend_evaluation(tiny_unet, tflite_buffers) -> None:
    config = tiny_config()
    fns = benchmark_predict_fns(tiny_unet, {"float32": tflite_buffers["float32"], "int8": tflite_buffers["int8"]})
    assert list(fns) == ["keras-predict", "keras", "xla", "tflite-float32", "tflite-int8"]
    with pytest.raises(ValueError, match="unknown TensorFlow Lite kind"):
        benchmark_predict_fns(tiny_unet, {"int4": b"x"})
    table = time_backends(fns, [(32, 1), (32, 2)], repeats=1, warmup=1)
    assert len(table) == 2 * len(fns) and (table["ms_per_image"] > 0).all()
    assert set(table["label"]) == {BENCHMARK_BACKENDS[name] for name in fns}
    np.testing.assert_allclose(table["images_per_s"], 1000 / table["ms_per_image"])

    rng = np.random.default_rng(0)
    labels = np.zeros((40, 56), np.uint16)
    labels[5:15, 5:20] = 1
    labels[22:35, 30:50] = 2
    samples = [Sample(f"s{i}", (rng.random((40, 56, 3)) * 255).astype(np.uint8), labels) for i in range(2)]
    scores = evaluate_backends({k: fns[k] for k in ("keras", "tflite-float32", "tflite-int8")}, config, samples)
    assert len(scores) == 6 and {"iou", "dsb_score", "predict_s", "foreground_flips"} <= set(scores.columns)
    assert list(scores["backend"].unique()) == ["keras", "tflite-float32", "tflite-int8"]
    reference = scores[scores["backend"] == "keras"]
    assert (reference["prob_max_abs_diff"] == 0).all() and (reference["foreground_flips"] == 0).all()
    assert (scores.loc[scores["backend"] == "tflite-float32", "prob_max_abs_diff"] < 1e-4).all()
    with pytest.raises(ValueError, match="reference backend"):
        evaluate_backends({"xla": fns["xla"]}, config, samples)
    with pytest.raises(ValueError, match="no samples"):
        evaluate_backends({"keras": fns["keras"]}, config, [])


def test_file_sizes_of_a_model_folder(tiny_unet, tflite_buffers, tmp_path: Path) -> None:
    from nucleilib.export import save_tflite

    models.save_model(tiny_unet, tiny_config(), tmp_path)
    save_tflite(tflite_buffers["int8"], tmp_path, "int8")
    sizes = benchmarks.file_sizes(tmp_path)
    assert list(sizes["file"]) == ["weights.npz", "model-int8.tflite"]
    assert sizes.loc[1, "bytes"] == len(tflite_buffers["int8"])
    np.testing.assert_allclose(sizes["MB"], sizes["bytes"] / 1e6)
    assert benchmarks.file_sizes(tmp_path / "absent").empty


@pytest.mark.slow
def test_end_to_end_table_times_the_whole_command_beside_the_network(tmp_path: Path) -> None:
    from nucleilib.study.benchmarks import END_TO_END_COLUMNS, end_to_end_table

    config = models.ModelConfig(base_filters=2, depth=2, outputs=("foreground", "border"), min_size=1)
    models.save_model(models.build_unet(config), config, tmp_path / "model")
    images = []
    (tmp_path / "images").mkdir()
    for index in range(3):
        image = np.full((64, 64, 3), 20, np.uint8)
        image[10 + index : 30 + index, 10:30] = 220
        images.append(write_image(image, tmp_path / "images" / f"i{index}.png"))
    runs = [("keras", 1, 0), ("keras", None, 1)]
    table = end_to_end_table(images, tmp_path / "work", runs, small=1, model=str(tmp_path / "model"), repeats=2)
    assert list(table.columns) == END_TO_END_COLUMNS and len(table) == 2
    idle, busy = table.iloc[0], table.iloc[1]
    assert idle["threads"] == 1 and busy["busy_cores"] == 1
    assert np.isfinite(idle["network_ms"]) and idle["network_ms"] > 0 and np.isnan(busy["network_ms"])
    assert (table["first_label_s"] > 0).all() and (table["first_label_s"] < table["total_s"]).all()
    # Label files of tiny images can share a file-system timestamp (its clock ticks every few ms).
    assert (table["e2e_ms"] >= 0).all() and (table["e2e_ms"] < 1000 * table["total_s"]).all()
    assert sorted(p.name for p in (tmp_path / "work" / "run0").glob("*_labels.png")) == [
        "i0_labels.png",
        "i1_labels.png",
        "i2_labels.png",
    ]


def test_end_to_end_table_needs_a_short_run_shorter_than_the_long_one(tmp_path: Path) -> None:
    from nucleilib.study.benchmarks import end_to_end_table

    with pytest.raises(ValueError, match="small must be between 1 and 1"):
        end_to_end_table([tmp_path / "a.png", tmp_path / "b.png"], tmp_path, [("keras", None, 0)], small=2)


def test_end_to_end_facts_compare_the_fastest_command_with_the_fastest_network_alone() -> None:
    import pandas as pd

    from nucleilib.study.benchmarks import END_TO_END_COLUMNS, end_to_end_facts

    rows = [
        ("keras", 2, 0, 70.0, 60.0, 70 / 60, 4.3, 10.0),
        ("tflite-int8", 2, 0, 50.0, 40.0, 1.25, 2.7, 8.0),
        ("tflite-int8", 1, 1, 90.0, float("nan"), float("nan"), 3.0, 12.0),
        ("tflite-int8", 2, 1, 400.0, float("nan"), float("nan"), 6.0, 40.0),
    ]
    facts = end_to_end_facts(pd.DataFrame(rows, columns=END_TO_END_COLUMNS), target_ms=30.0)
    assert facts["e2e_best_backend"] == "tflite-int8" and facts["e2e_best_ms"] == 50.0
    assert facts["e2e_fastest_network_ms"] == 40.0 and facts["e2e_best_ratio"] == pytest.approx(1.25)
    assert facts["e2e_default_backend"] == "tflite-int8"  # none named: the fastest command
    assert facts["e2e_ratio_verdict"] == "misses" and facts["e2e_ms_verdict"] == "misses"
    assert facts["e2e_first_s"] == 2.7 and facts["e2e_first_verdict"] == "meets"
    # The targets are judged on the backend the command takes by default, here keras.
    named = end_to_end_facts(pd.DataFrame(rows, columns=END_TO_END_COLUMNS), target_ms=30.0, default_backend="keras")
    assert named["e2e_default_backend"] == "keras" and named["e2e_default_ms"] == 70.0
    assert named["e2e_default_ratio"] == pytest.approx(70 / 40) and named["e2e_first_s"] == 4.3
    assert named["e2e_first_verdict"] == "misses" and named["e2e_best_backend"] == "tflite-int8"
    assert facts["e2e_keras_ratio"] == pytest.approx(70 / 60)
    assert (facts["e2e_busy_one_thread_ms"], facts["e2e_busy_all_threads_ms"]) == (90.0, 400.0)
    assert facts["e2e_busy_threads_verdict"] == "fewer threads are faster"
