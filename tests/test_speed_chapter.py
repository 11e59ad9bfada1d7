"""The speed chapter's sections (nucleilib.study.benchmarks): selection, tables, facts and the shipping rule.

Known answers on small synthetic tables; the engines themselves are replaced by
fakes, so these tests need neither a trained model nor TensorFlow Lite.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from nucleilib import export
from nucleilib.study import benchmarks

LABELS = benchmarks.BENCHMARK_BACKENDS


# --------------------------------------------------------------------------- data


def test_speed_ids_limits_the_test_set_and_draws_sorted_training_ids() -> None:
    split = {"train": [f"t{i:02d}" for i in range(10)][::-1], "val": ["v"], "test": ["x", "y", "z"]}
    test, train = benchmarks.speed_ids(split, test_limit=2, train_images=4, seed=7)
    assert test == ["x", "y"]
    assert len(train) == len(set(train)) == 4 and train == sorted(train) and set(train) <= set(split["train"])
    assert all(type(i) is str for i in train)
    expected = sorted(np.random.default_rng(7).choice(split["train"], 4, replace=False))
    assert train == [str(i) for i in expected]
    assert benchmarks.speed_ids(split, test_limit=2, train_images=4, seed=7) == (test, train)
    all_test, all_train = benchmarks.speed_ids(split, test_limit=None, train_images=99, seed=7)
    assert all_test == ["x", "y", "z"] and all_train == sorted(split["train"])


def test_load_speed_samples_reads_the_split(dsb, tmp_path) -> None:
    root = dsb.dataset(6)
    split_file = tmp_path / "split-original.csv"
    subsets = ["train", "train", "train", "val", "test", "test"]
    pd.DataFrame({"image_id": [f"img{i:02d}" for i in range(6)], "subset": subsets}).to_csv(split_file, index=False)
    test, train = benchmarks.load_speed_samples(split_file, root, test_limit=1, train_images=2, seed=0)
    assert [s.image_id for s in test] == ["img04"]
    assert len(train) == 2 and {s.image_id for s in train} <= {"img00", "img01", "img02"}
    assert [s.image_id for s in train] == sorted(s.image_id for s in train)


# --------------------------------------------------------------------------- conversion and sizes


def test_convert_tflite_gives_the_calibration_to_int8_only(monkeypatch) -> None:
    calls = []

    def fake_to_tflite(model, kind, calibration):
        calls.append((kind, calibration))
        return kind.encode()

    monkeypatch.setattr(export, "to_tflite", fake_to_tflite)
    crops = [np.zeros((4, 4, 3))]
    flat, seconds = benchmarks.convert_tflite("model", crops)
    assert flat == {"float32": b"float32", "float16": b"float16", "int8": b"int8"}
    assert [k for k, _ in calls] == ["float32", "float16", "int8"]
    assert [c is crops for _, c in calls] == [False, False, True] and calls[0][1] is None
    assert list(seconds) == list(flat) and all(s >= 0 for s in seconds.values())
    assert list(benchmarks.convert_tflite("model", None, ["int8"])[0]) == ["int8"]


def test_model_sizes_and_size_facts(tmp_path) -> None:
    weights = tmp_path / "weights.npz"
    weights.write_bytes(b"w" * 500_000)
    flat = {"float32": b"a" * 4_000_000, "float16": b"b" * 2_000_000, "int8": b"c" * 1_000_000}
    sizes = benchmarks.model_sizes(1_000_000, weights, flat, {"float32": 1.5, "float16": 2.5, "int8": 9.0})
    assert sizes.index.name == "model" and list(sizes.columns) == ["MB", "conversion s"]
    assert sizes.index.tolist() == [
        "Keras weights, float32 (in memory)",
        "shipped weights.npz (float16, compressed)",
        "TFLite float32",
        "TFLite float16",
        "TFLite int8",
    ]
    assert sizes["MB"].tolist() == [4.0, 0.5, 4.0, 2.0, 1.0]
    assert sizes["conversion s"].isna().tolist() == [True, True, False, False, False]
    assert sizes["conversion s"].iloc[2:].tolist() == [1.5, 2.5, 9.0]
    facts = benchmarks.size_facts(flat, sizes)
    assert facts == {"mb_float32": 4.0, "mb_float16": 2.0, "mb_int8": 1.0, "mb_npz": 0.5, "int8_size_ratio": 4.0}


def test_threads_table_lists_the_settings() -> None:
    table = benchmarks.threads_table(2, 3, {"avx512_bf16": True, "amx_bf16": False, "gpu": False})
    assert list(table.columns) == ["value"]
    assert table.loc["CPU cores (os.cpu_count)", "value"] == 2
    assert table.loc["TensorFlow Lite interpreter threads", "value"] == 3
    assert table.loc["CPU has AVX512-BF16", "value"] == True  # noqa: E712 - an object column: compare by value
    assert len(table) == 7


# --------------------------------------------------------------------------- timing


def _timing(ms: dict[tuple[int, int, str], float]) -> pd.DataFrame:
    rows = [{"backend": b, "label": LABELS[b], "size": s, "batch": n, "ms_per_image": v} for (s, n, b), v in ms.items()]
    return pd.DataFrame(rows)


def _grid(
    single_small: dict[str, float], *, batched: float, large_keras: float = 400.0, large_int8: float = 200.0
) -> pd.DataFrame:
    ms = {(64, 1, b): v for b, v in single_small.items()}
    ms.update({(64, 4, b): 1.5 * v for b, v in single_small.items()})
    ms[(64, 4, "tflite-int8")] = batched
    ms.update({(128, 1, b): 300.0 for b in single_small})
    ms[(128, 1, "keras")], ms[(128, 1, "tflite-int8")] = large_keras, large_int8
    return _timing(ms)


SINGLE = {
    "keras-predict": 80.0,
    "keras": 50.0,
    "xla": 40.0,
    "tflite-float32": 45.0,
    "tflite-float16": 44.0,
    "tflite-int8": 25.0,
}


def test_timing_facts_known_answers() -> None:
    facts = benchmarks.timing_facts(_grid(SINGLE, batched=20.0), target_ms=30.0)
    assert facts["small_size"] == 64 and facts["large_size"] == 128
    assert (facts["keras_predict_ms"], facts["keras_ms"], facts["xla_ms"]) == (80.0, 50.0, 40.0)
    assert (facts["tflite_float32_ms"], facts["tflite_float16_ms"], facts["tflite_int8_ms"]) == (45.0, 44.0, 25.0)
    assert facts["int8_speedup"] == 2.0
    assert (facts["best_single_label"], facts["best_single_ms"]) == ("TFLite int8", 25.0)
    assert (facts["best_any_label"], facts["best_any_batch"], facts["best_any_ms"]) == ("TFLite int8", 4, 20.0)
    assert type(facts["best_any_batch"]) is int and type(facts["small_size"]) is int
    assert (facts["target_ms"], facts["target_verdict"]) == (30.0, "meets")
    assert facts["target_factor"] == pytest.approx(20 / 30)
    assert facts["paper_comparison"] == f"{99.37 / 25:.2f} times faster than"
    assert (facts["large_keras_ms"], facts["large_int8_ms"]) == (400.0, 200.0)


def test_timing_facts_slow_machine() -> None:
    slow = {name: 10 * v for name, v in SINGLE.items()}
    facts = benchmarks.timing_facts(_grid(slow, batched=400.0), target_ms=30.0, paper_ms=125.0)
    assert facts["best_single_label"] == "TFLite int8" and facts["best_any_batch"] == 1
    assert facts["target_verdict"] == "misses" and facts["target_factor"] == pytest.approx(250 / 30)
    assert facts["paper_comparison"] == "2.00 times slower than"
    on_target = benchmarks.timing_facts(_grid(SINGLE, batched=30.0), target_ms=25.0)
    assert on_target["target_verdict"] == "meets"  # 25 ms at batch 1 is exactly the target


def test_ms_table_orders_backends_like_the_chapter() -> None:
    table = benchmarks.ms_table(_grid(SINGLE, batched=20.0))
    assert list(table.columns) == list(LABELS.values())
    assert table.index.names == ["size", "batch"] and table.index.tolist() == [(64, 1), (64, 4), (128, 1)]
    assert table.loc[(64, 4), "TFLite int8"] == 20.0 and table.loc[(64, 4), "Keras, XLA"] == 60.0


def test_load_note() -> None:
    assert benchmarks.load_note(3.0, 2) == "otherwise quiet"
    assert benchmarks.load_note(3.01, 2) == "busy with other work, so all times are inflated"


def test_tflite_thread_timing_times_each_model_and_thread_count(monkeypatch) -> None:
    made = []

    def fake_predict_fn(content, num_threads=None):
        made.append((content, num_threads))
        return lambda x: x[..., :1]

    monkeypatch.setattr(benchmarks, "tflite_predict_fn", fake_predict_fn)
    table = benchmarks.tflite_thread_timing(
        {"float16": b"f", "int8": b"i"}, 16, (2, 1, 2), repeats=2, warmup=0, channels=3
    )
    assert made == [(b"f", 1), (b"f", 2), (b"i", 1), (b"i", 2)]
    assert table.index.names == ["model", "threads"]
    assert table.index.tolist() == [
        ("TFLite float16", 1),
        ("TFLite float16", 2),
        ("TFLite int8", 1),
        ("TFLite int8", 2),
    ]
    assert list(table.columns) == ["ms per image (median)", "ms per image (fastest)"]
    assert (table["ms per image (fastest)"] <= table["ms per image (median)"]).all()


# --------------------------------------------------------------------------- accuracy


def _scores() -> pd.DataFrame:
    rows = []
    for backend, ious, dsbs, flips in (
        ("keras", [0.8, 0.6], [0.5, 0.7], [0.0, 0.0]),
        ("xla", [0.8, 0.6], [0.5, 0.7], [0.0, 0.0]),
        ("tflite-float16", [0.8, 0.6], [0.5, 0.7], [0.001, 0.003]),
        ("tflite-int8", [0.78, 0.58], [0.45, 0.65], [0.01, 0.03]),
    ):
        for k in range(2):
            rows.append(
                {
                    "backend": backend,
                    "image_id": f"i{k}",
                    "iou": ious[k],
                    "dsb_score": dsbs[k],
                    "f1_50": 0.9,
                    "prob_max_abs_diff": 0.1 * (k + 1) if backend != "keras" else 0.0,
                    "prob_mean_abs_diff": 0.01,
                    "foreground_flips": flips[k],
                    "predict_s": [1.0, 3.0][k],
                }
            )
    return pd.DataFrame(rows)


def test_accuracy_summary_means_and_changes() -> None:
    accuracy = benchmarks.accuracy_summary(_scores())
    assert accuracy.index.tolist() == ["Keras, tf.function", "Keras, XLA", "TFLite float16", "TFLite int8"]
    assert list(accuracy.columns) == [
        "iou",
        "IoU change",
        "dsb_score",
        "DSB change",
        "f1_50",
        "prob_max_abs_diff",
        "prob_mean_abs_diff",
        "foreground_flips",
        "predict_s",
    ]
    int8 = accuracy.loc["TFLite int8"]
    assert int8["iou"] == pytest.approx(0.68) and int8["IoU change"] == pytest.approx(-0.02)
    assert int8["dsb_score"] == pytest.approx(0.55) and int8["DSB change"] == pytest.approx(-0.05)
    assert int8["prob_max_abs_diff"] == pytest.approx(0.2)  # the largest, not the mean
    assert int8["foreground_flips"] == pytest.approx(0.02)
    assert int8["predict_s"] == 2.0
    assert accuracy.loc["Keras, tf.function", "IoU change"] == 0.0


def test_accuracy_facts_and_iou_losses() -> None:
    accuracy = benchmarks.accuracy_summary(_scores())
    facts = benchmarks.accuracy_facts(accuracy)
    assert list(facts)[:2] == ["iou_keras", "dsb_keras"]
    assert len(facts) == 2 + 3 * 6
    assert facts["iou_keras"] == pytest.approx(0.7) and facts["dsb_keras"] == pytest.approx(0.6)
    assert facts["iou_change_int8"] == pytest.approx(-0.02) and facts["dsb_change_float16"] == 0.0
    assert facts["flips_int8"] == pytest.approx(2.0) and facts["flips_float16"] == pytest.approx(0.2)
    assert facts["maxdiff_xla"] == pytest.approx(0.2) and facts["iou_xla"] == pytest.approx(0.7)
    losses = benchmarks.iou_losses(accuracy)
    assert list(losses) == ["int8", "float16"]
    assert losses["int8"] == pytest.approx(0.02) and losses["float16"] == 0.0


# --------------------------------------------------------------------------- shipping


@pytest.mark.parametrize(
    ("loss", "ship_quantised", "profile", "action"),
    [
        (0.0, True, "cpu", "ship"),
        (0.01, True, "cpu", "ship"),  # within the allowance, bound included
        (-0.003, True, "gpu", "ship"),  # quantised better than float
        (0.0101, True, "cpu", "remove"),
        (float("nan"), True, "gpu", "remove"),
        (0.0, False, "cpu", "off"),
        (0.5, False, "gpu", "off"),
        (0.0, True, "smoke", "smoke"),
        (0.0, False, "smoke", "off"),
    ],
)
def test_shipping_decision(loss, ship_quantised, profile, action) -> None:
    assert benchmarks.shipping_decision(loss, 0.01, ship_quantised=ship_quantised, profile=profile) == action


def _model_folder(tmp_path):
    folder = tmp_path / "nucleilib" / "pretrained" / "unet-test"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


def test_ship_quantised_models_ships_within_the_allowance_and_removes_the_rest(tmp_path) -> None:
    folder = _model_folder(tmp_path)
    (folder / "model-float16.tflite").write_bytes(b"stale")
    flat = {"int8": b"int8 model", "float16": b"float16 model"}
    decisions = benchmarks.ship_quantised_models(
        flat,
        {"int8": 0.004, "float16": 0.02},
        folder,
        root=tmp_path,
        max_iou_loss=0.01,
        ship_quantised=True,
        profile="cpu",
    )
    assert decisions == [
        "int8: shipped to nucleilib/pretrained/unet-test/model-int8.tflite (IoU loss +0.0040 <= 0.01)",
        "float16: NOT shipped, IoU loss +0.0200 exceeds 0.01",
    ]
    assert (folder / "model-int8.tflite").read_bytes() == b"int8 model"
    assert not (folder / "model-float16.tflite").exists()


@pytest.mark.parametrize(
    ("ship_quantised", "profile", "why"),
    [
        (False, "cpu", "ship_quantised is off"),
        (True, "smoke", "the smoke profile never ships"),
        (False, "smoke", "ship_quantised is off"),
    ],
)
def test_ship_quantised_models_touches_nothing_when_off_or_smoke(tmp_path, ship_quantised, profile, why) -> None:
    folder = _model_folder(tmp_path)
    (folder / "model-int8.tflite").write_bytes(b"old int8")
    decisions = benchmarks.ship_quantised_models(
        {"int8": b"new", "float16": b"new"},
        {"int8": 0.5, "float16": -0.00004},
        folder,
        root=tmp_path,
        max_iou_loss=0.01,
        ship_quantised=ship_quantised,
        profile=profile,
    )
    assert decisions == [
        f"int8: not shipped ({why}); IoU loss +0.5000",
        f"float16: not shipped ({why}); IoU loss -0.0000",
    ]
    assert (folder / "model-int8.tflite").read_bytes() == b"old int8"
    assert not (folder / "model-float16.tflite").exists()


def test_ship_quantised_models_removal_of_a_missing_file_is_fine(tmp_path) -> None:
    folder = _model_folder(tmp_path)
    decisions = benchmarks.ship_quantised_models(
        {"int8": b"x"}, {"int8": math.nan}, folder, root=tmp_path, max_iou_loss=0.01, ship_quantised=True, profile="gpu"
    )
    assert decisions == ["int8: NOT shipped, IoU loss +nan exceeds 0.01"]
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]


# --------------------------------------------------------------------------- training throughput


def test_throughput_rates_runs_every_variant_in_turn(monkeypatch) -> None:
    calls = []

    def fake(config, images, targets, variant, steps, warmup):
        calls.append((variant, steps, warmup))
        return {"plain": 2.0, "tuned": 4.0, "bfloat16": 3.0, "xla": 6.0}[variant]

    monkeypatch.setattr(benchmarks, "training_throughput", fake)
    rates = benchmarks.throughput_rates(None, [], [], steps=5, warmup=1)
    assert calls == [(v, 5, 1) for v in benchmarks.THROUGHPUT_VARIANTS]
    assert rates == {"plain": 2.0, "tuned": 4.0, "bfloat16": 3.0, "xla": 6.0}


def test_throughput_table_and_facts() -> None:
    rates = {"plain": 2.0, "tuned": 4.0, "bfloat16": 3.0, "xla": 6.0}
    table = benchmarks.throughput_table(rates)
    assert table.index.tolist() == ["plain", "tuned", "bfloat16", "xla"]
    assert list(table.columns) == ["crops per s", "vs plain", "vs tuned"]
    assert table["vs plain"].tolist() == [1.0, 2.0, 1.5, 3.0]
    assert table["vs tuned"].tolist() == [0.5, 1.0, 0.75, 1.5]
    assert benchmarks.throughput_facts(rates) == {
        "rate_plain": 2.0,
        "rate_tuned": 4.0,
        "rate_bfloat16": 3.0,
        "rate_xla": 6.0,
        "tuned_vs_plain": 2.0,
        "bf16_vs_tuned": 0.75,
        "xla_vs_tuned": 1.5,
        "bf16_sentence": "bfloat16 mixed precision reaches 3.0 crops/s (0.75 times the tuned throughput)",
    }
    # A CPU that cannot train in bfloat16 gets a sentence saying so, not "nan crops/s".
    facts = benchmarks.throughput_facts({**rates, "bfloat16": float("nan")})
    assert "could not run" in facts["bf16_sentence"] and "nan" not in facts["bf16_sentence"]


def test_a_bfloat16_variant_this_machine_cannot_run_is_nan_and_others_still_raise(monkeypatch, capsys) -> None:
    import math

    import tensorflow as tf

    def fake(config, images, targets, variant, steps, warmup):
        if variant in ("bfloat16", "xla"):
            raise tf.errors.InvalidArgumentError(None, None, "Value for attr 'T' of bfloat16 is not in the list")
        return 2.0

    monkeypatch.setattr(benchmarks, "training_throughput", fake)
    rates = benchmarks.throughput_rates(None, [], [], variants=("plain", "bfloat16"))
    assert rates["plain"] == 2.0 and math.isnan(rates["bfloat16"])
    assert "bfloat16 training not measured" in capsys.readouterr().out
    with pytest.raises(tf.errors.InvalidArgumentError):
        benchmarks.throughput_rates(None, [], [], variants=("plain", "xla"))
