"""The U-Net and comparison chapters' computations (nucleilib.study.comparison and .unet)
and the split-sample loader of nucleilib.study.manifest, on small hand-made inputs."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from nucleilib import training
from nucleilib.data import Sample
from nucleilib.evaluation import PixelMetrics
from nucleilib.models import ModelConfig
from nucleilib.segmenter import Segmenter
from nucleilib.study import comparison as cmp
from nucleilib.study import manifest as mf
from nucleilib.study import spread, unet

BASE = ModelConfig(residual=True, batch_norm=True, outputs=("foreground", "border"))
BUDGET = {"crop": 64, "batch_size": 4, "epochs": 2, "steps_per_epoch": 3, "patience": 2, "max_minutes": 2.0}


def _sample(image_id: str, labels: np.ndarray) -> Sample:
    labels = np.asarray(labels, np.uint16)
    return Sample(image_id, np.zeros(labels.shape + (3,), np.uint8), labels)


def _per_image(scores: dict[str, list[float]], ids=("a", "b", "c"), modalities=None) -> pd.DataFrame:
    rows = []
    for model, values in scores.items():
        for k, (image_id, value) in enumerate(zip(ids, values)):
            row = {"image_id": image_id, "model": model, "dsb_score": value}
            if modalities is not None:
                row["modality"] = modalities[k]
            rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- training configurations


def test_train_config_equals_the_chapters_explicit_config_and_digest() -> None:
    resunet = ModelConfig(architecture="resunet", extra={"units_per_level": 2})
    budget = training.TrainConfig(seed=42, **BUDGET)
    made = cmp.train_config(budget, resunet, 1)
    explicit = training.TrainConfig(model=resunet, seed=1, **BUDGET)
    assert made == explicit
    ids = (["t1", "t2"], ["v1"])
    assert training.training_digest(made, *ids) == training.training_digest(explicit, *ids)
    assert training.training_digest(cmp.train_config(budget, resunet, 2), *ids) != training.training_digest(made, *ids)


def test_ablation_config_equals_the_chapters_explicit_config() -> None:
    main = training.TrainConfig(
        model=BASE, crop=64, batch_size=4, epochs=2, steps_per_epoch=5, patience=2, max_minutes=2.0, seed=42
    )
    explicit = training.with_model(
        training.TrainConfig(
            model=BASE, crop=64, batch_size=4, epochs=2, steps_per_epoch=3, patience=2, max_minutes=0.5, seed=42
        ),
        sigma=1.5,
    )
    made = unet.ablation_config(main, 1.5, steps=3, minutes=0.5)
    assert made == explicit
    assert training.training_digest(made, ["a"], ["b"]) == training.training_digest(explicit, ["a"], ["b"])


def test_training_plan_order_matches_the_cached_labels() -> None:
    plan = cmp.training_plan(["U-Net", "ResUNet", "DeepLabV3+"], ["original", "80-10-10", "70-20-10"], 42, [1, 2])
    assert plan == [
        ("U-Net", "original", 42),
        ("ResUNet", "original", 42),
        ("DeepLabV3+", "original", 42),
        ("U-Net", "80-10-10", 42),
        ("U-Net", "70-20-10", 42),
        ("U-Net", "original", 1),
        ("ResUNet", "original", 1),
        ("DeepLabV3+", "original", 1),
        ("U-Net", "original", 2),
        ("ResUNet", "original", 2),
        ("DeepLabV3+", "original", 2),
    ]
    assert cmp.run_label(BASE, "original", 42) == "cmp-unet-original-s42"
    assert cmp.run_label(ModelConfig(architecture="deeplabv3plus"), "70-20-10", 2) == "cmp-deeplabv3plus-70-20-10-s2"


def test_train_contenders_calls_train_with_the_original_configs_and_names(tmp_path: Path, monkeypatch) -> None:
    calls = []

    def fake_train(config, train_samples, val_samples, cache_root, *, name, verbose):
        calls.append((config, [s.image_id for s in train_samples], [s.image_id for s in val_samples], name, verbose))
        folder = tmp_path / name
        folder.mkdir()
        (folder / "train-config.json").write_text(
            json.dumps(
                {"epochs_run": 2, "best_epoch": 1, "seconds": 90.0, "stopped_by_time": False, "train_crops_per_s": 5.0}
            )
        )
        return SimpleNamespace(folder=folder, reused=True, model=None)

    monkeypatch.setattr(training, "train", fake_train)
    contenders = {"U-Net": BASE, "ResUNet": ModelConfig(architecture="resunet")}
    splits = {
        "original": {"train": ["a", "b"], "val": ["c"], "test": ["d"]},
        "80-10-10": {"train": ["b"], "val": ["a"], "test": ["c"]},
    }
    samples = {i: _sample(i, np.zeros((4, 4))) for i in "abcd"}
    lines: list[str] = []
    runs = cmp.train_contenders(
        contenders,
        splits,
        samples,
        tmp_path,
        budget=training.TrainConfig(seed=42, **BUDGET),
        seed=42,
        extra_seeds=[1],
        log=lines.append,
    )
    assert list(runs) == [
        ("U-Net", "original", 42),
        ("ResUNet", "original", 42),
        ("U-Net", "80-10-10", 42),
        ("U-Net", "original", 1),
        ("ResUNet", "original", 1),
    ]
    names = [c[3] for c in calls]
    assert names == [
        "cmp-unet-original-s42",
        "cmp-resunet-original-s42",
        "cmp-unet-80-10-10-s42",
        "cmp-unet-original-s1",
        "cmp-resunet-original-s1",
    ]
    assert calls[0][0] == training.TrainConfig(model=BASE, seed=42, **BUDGET)
    assert calls[3][0] == training.TrainConfig(model=BASE, seed=1, **BUDGET)
    assert calls[2][1:3] == (["b"], ["a"]) and all(c[4] == 0 for c in calls)
    assert len(lines) == 5 and "reloaded, 2 epochs in 1.5 min, best epoch 1" in lines[0]

    log = cmp.training_log(runs)
    assert log.columns.tolist() == ["model", "split", "seed", "epochs", "best epoch", "minutes", "crops/s", "reloaded"]
    assert log["minutes"].tolist() == [1.5] * 5 and log["reloaded"].all()
    assert log["seed"].tolist() == [42, 42, 42, 1, 1]


def test_gaussian_ablation_trains_both_sigmas_and_scores_them(monkeypatch) -> None:
    import nucleilib.study.scores as scores_module

    trained = []

    def fake_train(config, train_samples, val_samples, cache_root, *, name):
        trained.append((config, name))
        return SimpleNamespace(model=config.model.sigma, history=pd.DataFrame({"epoch": [1, 2, 3]}))

    def fake_evaluate(model, config, samples, *, methods, count_pixels):
        assert methods == ["borders"] and config.sigma == model and not count_pixels
        return pd.DataFrame({"iou": [0.5 + model / 10, 0.5], "dsb_score": [0.25, 0.75]}), {}

    monkeypatch.setattr(training, "train", fake_train)
    monkeypatch.setattr(scores_module, "evaluate_scores", fake_evaluate)
    main = training.TrainConfig(model=BASE, seed=42, **BUDGET)
    table = unet.gaussian_ablation(main, [], [], [], "cache", "borders", steps=7, minutes=0.5)
    assert [name for _, name in trained] == ["ablation-sigma0.0", "ablation-sigma1.5"]
    assert trained[1][0] == unet.ablation_config(main, 1.5, steps=7, minutes=0.5)
    assert table.index.tolist() == [0.0, 1.5]
    assert table.columns.tolist() == ["epochs", "test IoU", "test DSB score"]
    assert table.loc[1.5, "test IoU"] == pytest.approx(0.575)
    assert table.loc[0.0, "test DSB score"] == 0.5 and table.loc[0.0, "epochs"] == 3


# --------------------------------------------------------------------------- Table 1


def test_micro_pixels_pools_over_images() -> None:
    truth_a = np.array([[1, 1], [0, 0]])
    truth_b = np.array([[0, 0], [0, 2]])
    samples = [_sample("a", truth_a), _sample("b", truth_b)]
    probs = {"a": np.array([[[0.9], [0.2]], [[0.7], [0.1]]]), "b": np.full((2, 2, 1), 0.8)}
    m = cmp.micro_pixels(probs, samples)
    # a: tp 1, fp 1, fn 1, tn 1; b: tp 1, fp 3 -> tp 2, fp 4, fn 1, tn 1
    assert (m.precision, m.recall, m.accuracy) == (pytest.approx(2 / 6), pytest.approx(2 / 3), pytest.approx(3 / 8))
    assert cmp.micro_pixels(probs, samples, threshold=0.85).precision == pytest.approx(1.0)


def test_table_row_and_assembled_table1() -> None:
    micro = PixelMetrics.from_counts(tp=3, fp=1, fn=1, tn=5)
    metrics = pd.DataFrame({"dsb_score": [0.5, 0.5, 0.5], "ap50": [0.0, 0.5, 1.0]})
    row = cmp.table_row("U-Net", metrics, micro, 1234, 2.5, 7.0, seed=0)
    assert list(row) == [
        "model",
        "accuracy",
        "precision",
        "recall",
        "IoU",
        "Dice",
        "DSB score",
        "DSB 95% CI",
        "AP@0.5",
        "parameters",
        "GFLOPs/256²",
        "ms/256²",
    ]
    assert row["accuracy"] == 0.8 and row["IoU"] == 0.6 and row["precision"] == 0.75
    assert row["DSB 95% CI"] == "0.500-0.500" and row["AP@0.5"] == 0.5
    classical = dict(row, model="Classical", parameters=0, **{"GFLOPs/256²": np.nan, "DSB score": 0.25})
    shipped = dict(row, model="U-Net, chapter 2 (27 min)", **{"DSB score": 0.9})
    resunet = dict(row, model="ResUNet", **{"DSB score": 0.6, "IoU": 0.7})
    table = cmp.assemble_table1([row, resunet, shipped, classical])
    assert table.index.tolist() == ["U-Net", "ResUNet", "U-Net, chapter 2 (27 min)", "Classical"]
    assert table.columns[-4:].tolist() == ["paper accuracy", "paper precision", "paper recall", "paper IoU"]
    assert table.loc["ResUNet", "paper recall"] == 0.817 and np.isnan(table.loc["Classical", "paper IoU"])

    glued = cmp.table1_glue(table, "U-Net, chapter 2 (27 min)")
    assert glued["t1_best"] == "ResUNet"  # the shipped model scores higher but is left out
    assert glued["t1_resunet_iou"] == 0.7 and glued["t1_shipped_dsb"] == 0.9 and glued["t1_classical_dsb"] == 0.25
    assert glued["t1_unet_ms"] == 7.0 and glued["t1_unet_acc"] == 0.8
    assert len(glued) == 4 * 4 + 1


def test_per_image_table_adds_modality_and_drops_unknown_images() -> None:
    frames = [_per_image({"U-Net": [0.1, 0.2]}, ids=("a", "b")), _per_image({"X": [0.3, 0.4]}, ids=("a", "z"))]
    manifest = pd.DataFrame({"image_id": ["a", "b"], "modality": ["m1", "m2"], "nuclei": [1, 2]}).set_index("image_id")
    table = cmp.per_image_table(frames, manifest)
    assert table[["image_id", "model", "modality"]].values.tolist() == [
        ["a", "U-Net", "m1"],
        ["b", "U-Net", "m2"],
        ["a", "X", "m1"],
    ]


def test_paired_differences_counts_and_constant_shift() -> None:
    per_image = _per_image({"U-Net": [0.5, 0.75, 0.25], "Worse": [0.25, 0.75, 0.5], "Shifted": [0.625, 0.875, 0.375]})
    table = cmp.paired_differences(per_image, seed=0)
    assert table.index.tolist() == ["Shifted", "Worse"]
    assert table.columns.tolist() == [
        "mean DSB difference vs U-Net",
        "95% CI low",
        "95% CI high",
        "images better",
        "images worse",
    ]
    assert table.loc["Shifted"].tolist() == [0.125, 0.125, 0.125, 3, 0]
    assert table.loc["Worse", "mean DSB difference vs U-Net"] == 0.0
    assert (table.loc["Worse", "images better"], table.loc["Worse", "images worse"]) == (1, 1)
    assert table.loc["Worse", "95% CI low"] < 0 < table.loc["Worse", "95% CI high"]


def test_by_modality_means_and_reference_counts() -> None:
    per_image = _per_image({"U-Net": [0.2, 0.4, 0.9], "X": [0.6, 0.8, 0.1]}, modalities=["f", "f", "b"])
    table = cmp.by_modality(per_image)
    assert table.columns.tolist() == ["b (1 images)", "f (2 images)"]
    assert table.loc["U-Net"].round(6).tolist() == [0.9, 0.3]
    assert table.loc["X"].round(6).tolist() == [0.1, 0.7]


def test_hard_cases_and_side_by_side_figure() -> None:
    touching = np.zeros((8, 8))
    touching[1:4, 1:3] = 1
    touching[1:4, 3:5] = 2
    touching[6:8, 6:8] = 3
    apart = np.zeros((8, 8))
    apart[0:2, 0:2] = 1
    apart[5:7, 5:7] = 2
    samples = {"t": _sample("t", touching), "s1": _sample("s1", apart), "s2": _sample("s2", apart)}
    test_samples = list(samples.values())
    per_image = _per_image(
        {"U-Net": [0.9, 0.6, 0.3], "X": [0.1, 0.2, 0.3], "Classical": [0.5, 0.5, 0.25]},
        ids=("t", "s1", "s2"),
        modalities=["fluorescence", "stained tissue", "stained tissue"],
    )
    picks, share = cmp.hard_cases(per_image, test_samples)
    assert share == {"t": pytest.approx(2 / 3), "s1": 0.0, "s2": 0.0}
    assert picks == ["t", "s2"]  # no brightfield image: two picks

    cfg = ModelConfig(outputs=("foreground",))
    probabilities = {"X": {i: (s.labels > 0)[..., None].astype(np.float32) for i, s in samples.items()}}
    predictions = cmp.pick_labels(picks, probabilities, {"X": cfg}, {i: s.labels for i, s in samples.items()})
    assert list(predictions) == ["X", "Classical"] and list(predictions["X"]) == picks
    assert predictions["Classical"]["t"] is samples["t"].labels
    modality = per_image.drop_duplicates("image_id").set_index("image_id")["modality"]
    fig = cmp.side_by_side_figure(picks, samples, predictions, per_image, modality, share)
    try:
        assert len(fig.axes) == len(picks) * 4
        assert fig.axes[0].get_title() == "fluorescence, 67% touching"
        assert fig.axes[3].get_title() == "Classical: 3 nuclei, DSB 0.50"
        assert fig.axes[4].get_title() == "stained tissue, 0% touching"
        assert fig.axes[6].get_title().startswith("X: ") and fig.axes[6].get_title().endswith("DSB 0.30")
        assert fig.axes[7].get_title() == "Classical: 2 nuclei, DSB 0.25"
    finally:
        plt.close(fig)


def test_score_classical_row_labels_and_timing(dsb) -> None:
    from nucleilib.data import read_sample

    big = dsb.sample("big", shape=(256, 256), discs=((60, 60, 20), (180, 170, 25)))
    small = dsb.sample("small", shape=(64, 64))
    samples = [read_sample(big.folder), read_sample(small.folder)]
    row, per_image, labels = cmp.score_classical(samples, seed=0, timing_repeats=2)
    assert row["model"] == "Classical" and row["parameters"] == 0 and np.isnan(row["GFLOPs/256²"])
    assert row["ms/256²"] > 0 and row["IoU"] > 0.8
    assert set(labels) == {"big", "small"} and int(labels["big"].max()) == 2
    assert per_image["model"].unique().tolist() == ["Classical"] and len(per_image) == 2
    with pytest.raises(ValueError, match="256x256"):
        cmp.score_classical(samples[1:], seed=0, timing_repeats=1)


# --------------------------------------------------------------------------- Table 2


def test_summary_row_and_table2_row() -> None:
    metrics = pd.DataFrame({"iou": [0.5, 0.75], "dsb_score": [0.25, 0.25]})
    row = spread.summary_row(metrics, seed=0)
    assert row["IoU"] == 0.625 and row["DSB score 95% CI"] == "0.250-0.250"
    ids = {"train": list("abc"), "val": ["d"], "test": ["e", "f"]}
    with_paper = spread.table2_row("original", 42, ids, metrics, 7, bootstrap_seed=0, paper=(670, 10, 60, 0.88))
    assert list(with_paper) == [
        "split",
        "seed",
        "train/val/test",
        "IoU",
        "IoU 95% CI",
        "DSB score",
        "DSB score 95% CI",
        "epochs",
        "paper train/val/test",
        "paper IoU",
    ]
    assert with_paper["train/val/test"] == "3/1/2" and with_paper["paper train/val/test"] == "670/10/60"
    without = spread.table2_row("original", 1, ids, metrics, 7, bootstrap_seed=0)
    assert without["paper train/val/test"] == "" and np.isnan(without["paper IoU"])


def _split_seed_inputs(extra_seeds: dict[int, int]) -> tuple[dict, dict, dict]:
    """Two splits, four samples and the U-Net's runs: seed 42 on each split (5 and 6 epochs),
    then ``{seed: epochs}`` on the original split, model ``m<seed>``."""
    splits = {
        "original": {"train": ["a"], "val": ["b"], "test": ["c", "d"]},
        "80-10-10": {"train": ["a", "b"], "val": ["c"], "test": ["d"]},
    }
    samples = {i: _sample(i, np.zeros((2, 2))) for i in "abcd"}
    runs = {
        ("U-Net", "original", 42): (SimpleNamespace(model="m42"), {"epochs_run": 5}),
        ("U-Net", "80-10-10", 42): (SimpleNamespace(model="m80"), {"epochs_run": 6}),
    }
    for seed, epochs in extra_seeds.items():
        runs[("U-Net", "original", seed)] = (SimpleNamespace(model=f"m{seed}"), {"epochs_run": epochs})
    return splits, samples, runs


def test_split_seed_table_reuses_the_reference_metrics_and_evaluates_the_rest() -> None:
    splits, samples, runs = _split_seed_inputs({1: 7})
    scores = {"m80": 0.5, "m1": 0.75}
    evaluated = []

    def fake_evaluate(model, config, test_samples):
        evaluated.append((model, [s.image_id for s in test_samples]))
        return pd.DataFrame(
            {"iou": [scores[model]] * len(test_samples), "dsb_score": [scores[model] / 2] * len(test_samples)}
        ), {}

    reference = pd.DataFrame({"iou": [0.25, 0.25], "dsb_score": [0.125, 0.125]})
    table = spread.split_seed_table(
        runs, splits, samples, BASE, reference, seed=42, extra_seeds=[1], evaluate=fake_evaluate
    )
    assert evaluated == [("m80", ["d"]), ("m1", ["c", "d"])]
    assert table[["split", "seed", "IoU", "epochs"]].values.tolist() == [
        ["original", 42, 0.25, 5],
        ["80-10-10", 42, 0.5, 6],
        ["original", 1, 0.75, 7],
    ]
    assert table["paper IoU"].tolist()[:2] == [0.88, 0.85] and np.isnan(table["paper IoU"].iloc[2])
    assert table["train/val/test"].tolist() == ["1/1/2", "2/1/1", "1/1/2"]

    summary = spread.spread_table(table, seed=42)
    assert summary.columns.tolist() == [
        "range over seeds (original split)",
        "SD over seeds",
        "range over splits (seed 42)",
        "paper's range over splits",
    ]
    assert summary.loc["IoU"].tolist()[:3] == [0.5, pytest.approx(np.sqrt(0.125)), 0.25]
    assert summary.loc["DSB score", "range over splits (seed 42)"] == 0.125
    glued = spread.spread_glue(summary, table, seed=42)
    assert glued == {
        "seed_iou_range": 0.5,
        "split_iou_range": 0.25,
        "seed_dsb_range": 0.25,
        "split_dsb_range": 0.125,
        "n_seeds": 2,
    }


def test_split_seed_table_takes_extra_seeds_from_the_seed_table_without_evaluating_them() -> None:
    splits, samples, runs = _split_seed_inputs({1: 7, 2: 8})
    evaluated = []

    def fake_evaluate(model, config, test_samples):
        evaluated.append(model)
        return pd.DataFrame({"iou": [0.5] * len(test_samples), "dsb_score": [0.25] * len(test_samples)}), {}

    reference = pd.DataFrame({"iou": [0.25, 0.25], "dsb_score": [0.125, 0.125]})
    # seed 1 of the U-Net was scored for the seed table (another model's seed 2 does not count)
    seed_metrics = pd.DataFrame(
        {
            "model": ["U-Net", "U-Net", "ResUNet", "ResUNet"],
            "seed": [1, 1, 2, 2],
            "iou": [0.75, 0.25, 0.0, 0.0],
            "dsb_score": [0.5, 0.5, 0.0, 0.0],
        }
    )
    table = spread.split_seed_table(
        runs,
        splits,
        samples,
        BASE,
        reference,
        seed=42,
        extra_seeds=[1, 2],
        seed_metrics=seed_metrics,
        evaluate=fake_evaluate,
    )
    assert evaluated == ["m80", "m2"]
    assert table[["seed", "IoU", "DSB score"]].values.tolist() == [
        [42, 0.25, 0.125],
        [42, 0.5, 0.25],
        [1, 0.5, 0.5],
        [2, 0.5, 0.25],
    ]


# --------------------------------------------------------------------------- the U-Net chapter


def _unet_metrics() -> pd.DataFrame:
    rows = []
    for method, shift in (("components", 0.0), ("borders", 0.25)):
        for k, image_id in enumerate("abc"):
            rows.append(
                {
                    "image_id": image_id,
                    "method": method,
                    "modality": "f" if k < 2 else "b",
                    "accuracy": 0.9,
                    "precision": 0.8,
                    "recall": 0.7,
                    "iou": 0.5,
                    "dice": 0.6,
                    "mean_iou": 0.7,
                    "dsb_score": 0.25 * k + shift,
                    "ap50": 0.5,
                    "f1_50": 0.5,
                    "count_error": [2, -4, 0][k],
                    "predict_s": [0.1, 0.3, 0.2][k],
                }
            )
    return pd.DataFrame(rows)


def test_method_table_picks_the_best_separation() -> None:
    table = unet.method_table(_unet_metrics())
    assert table.columns.tolist() == ["dsb_score", "ap50", "f1_50", "iou", "dice"]
    assert table.loc["borders", "dsb_score"] == 0.5 and table.loc["components", "dsb_score"] == 0.25
    assert unet.best_method(table) == "borders"


def test_summary_table_glue_and_paper_comparison() -> None:
    chosen = _unet_metrics().query("method == 'borders'")
    micro = PixelMetrics.from_counts(tp=3, fp=1, fn=1, tn=5)
    summary = unet.summary_table(chosen, micro, seed=0)
    assert summary.index.tolist() == list(unet.SUMMARY_METRICS)
    assert summary.columns.tolist() == ["micro (pixels pooled)", "per-image mean", "95% CI low", "95% CI high"]
    assert summary.loc["iou", "micro (pixels pooled)"] == 0.6 and np.isnan(
        summary.loc["dsb_score", "micro (pixels pooled)"]
    )
    assert summary.loc["dsb_score", "per-image mean"] == 0.5
    assert summary.loc["iou"].tolist()[1:] == [0.5, 0.5, 0.5]

    glued = unet.summary_glue(summary, chosen)
    assert len(glued) == 8 * 3 + 4 + 2 and "test_f1_50" not in glued
    assert glued["micro_accuracy"] == 0.8 and glued["test_dsb_score"] == 0.5
    assert glued["count_abs_error"] == 2.0 and glued["infer_ms"] == pytest.approx(200.0)

    paper = unet.paper_comparison(summary)
    assert paper.index.tolist() == ["accuracy", "precision", "recall", "iou", "DSB score"]
    assert paper.loc["iou"].tolist() == [0.882, 0.6, 0.5]
    assert np.isnan(paper.loc["DSB score", "seed paper"]) and paper.loc["DSB score", "ours, per-image mean"] == 0.5


def test_per_modality_and_example_picks() -> None:
    chosen = _unet_metrics().query("method == 'components'")
    table = unet.per_modality(chosen)
    assert table.columns.tolist() == ["images", "iou", "dice", "dsb_score", "count_error"]
    assert table.loc["f"].tolist() == [2, 0.5, 0.6, 0.125, -1.0]
    shuffled = chosen.assign(
        dsb_score=[
            0.5,
            0.1,
            0.9,
        ][::-1]
    )  # a: 0.9, b: 0.1, c: 0.5
    assert unet.example_picks(shuffled) == ["b", "c", "a"]


def test_training_glue_and_message() -> None:
    info = {
        "seconds": 120.0,
        "epochs_run": 4,
        "best_epoch": 3,
        "train_crops_per_s": 12.5,
        "stopped_by_time": True,
        "precision_policy": "float32",
    }
    assert unet.training_glue(info) == {"train_minutes": 2.0, "epochs_run": 4, "best_epoch": 3, "crops_per_s": 12.5}
    assert unet.training_message(False, info) == (
        "trained: 4 epochs in 2.0 min (12.5 crops/s), best epoch 3, "
        "stopped by the time budget: True, precision: float32"
    )


def test_error_map_and_example_figure() -> None:
    truth = np.zeros((16, 16), np.uint16)
    truth[2:6, 2:6] = 1
    truth[9:14, 9:14] = 2
    image = np.zeros((16, 16, 3), np.uint8)
    image[2:6, 2:6] = 255
    image[0:2, 12:16] = 255
    sample = Sample("a", image, truth)
    errors = unet.error_map(truth > 0, np.where(image[..., 0] > 0, 1, 0))
    assert errors[10, 10].tolist() == [0, 0.8, 0] and errors[0, 13].tolist() == [0.9, 0, 0.9]
    assert errors[3, 3].tolist() == [0, 0, 0]
    config = ModelConfig(outputs=("foreground",), invert_bright=False, separation="components", min_size=1)
    seg = Segmenter(lambda x: x[..., :1], config)
    fig = unet.example_figure(
        seg, [sample, sample], "components", {"a": "fluorescence"}, "examples", {"a": np.ones((16, 16, 1), np.float32)}
    )
    try:
        assert len(fig.axes) == 10 and fig.axes[0].get_ylabel() == "fluorescence"
        assert fig.axes[1].get_title() == "truth: 2 nuclei" and fig.axes[2].get_title() == "prediction: 1 nuclei"
    finally:
        plt.close(fig)


def test_shipping_card() -> None:
    summary = pd.DataFrame({"per-image mean": [0.123456, 0.5]}, index=["iou", "dsb_score"])
    config = training.TrainConfig(model=BASE, seed=42, **BUDGET)
    card = unet.shipping_card(
        split="original",
        split_ids={"train": ["a", "b"], "val": ["c"], "test": ["d"]},
        profile="cpu",
        info={"epochs_run": 4, "best_epoch": 3, "seconds": 1500.0},
        parameters=2000,
        separation="borders",
        summary=summary,
        training_config=config,
        run={"git commit": "abc", "date (UTC)": "2026-01-01 00:00"},
    )
    assert (card["train_images"], card["val_images"], card["test_images"]) == (2, 1, 1)
    assert card["training_minutes"] == 25.0 and card["commit"] == "abc"
    assert card["test_metrics_per_image_mean"] == {"iou": 0.1235, "dsb_score": 0.5}
    assert card["training_config"] == config.as_dict()

    assert card["inference"] == {
        "diameter": None,
        "reference_diameter": None,
        "colour_input": "rgb",
        "test_metrics_by_setting": None,
    }


def _disc_sample(image_id: str, radius: int, shape=(96, 96)) -> Sample:
    from skimage.draw import disk

    labels = np.zeros(shape, np.uint16)
    for k, centre in enumerate([(30, 30), (30, 66), (66, 48)], start=1):
        labels[disk(centre, radius, shape=shape)] = k
    image = np.repeat((labels > 0)[..., None] * 200 + 20, 3, axis=-1).astype(np.uint8)
    return Sample(image_id, image, labels)


@pytest.fixture(scope="module")
def tiny_unet():
    import tensorflow as tf

    from nucleilib import models

    tf.keras.utils.set_random_seed(0)
    config = ModelConfig(base_filters=2, depth=2, min_size=1)
    return models.build_unet(config), config


def test_rescaling_effect_scores_both_settings_on_the_same_images(tiny_unet) -> None:
    from nucleilib.segmenter import evaluate_model

    model, config = tiny_unet
    samples = [_disc_sample("a", 8), _disc_sample("b", 12)]
    own, _ = evaluate_model(model, config, samples, methods=["borders"])
    table = unet.rescaling_effect(model, config, samples, "borders", 24.0, own)
    assert list(table.columns) == ["own scale", "rescaled to 24 px"]
    assert list(table.index) == ["DSB", "AP@0.5", "IoU", "s per image", "DSB, stained tissue"]
    assert table.loc["DSB", "own scale"] == pytest.approx(own["dsb_score"].mean())
    assert table.loc["DSB, stained tissue"].isna().all()  # grey images only
    scores = table.drop(index=["s per image", "DSB, stained tissue"])
    assert ((scores >= 0) & (scores <= 1)).all().all()
    card = unet.shipping_card(
        split="original",
        split_ids={"train": ["a"], "val": ["b"], "test": ["c"]},
        profile="cpu",
        info={"epochs_run": 1, "best_epoch": 1, "seconds": 60.0},
        parameters=10,
        separation="borders",
        summary=pd.DataFrame({"per-image mean": [0.5]}, index=["iou"]),
        training_config=training.TrainConfig(model=config, **BUDGET),
        run={"git commit": "abc", "date (UTC)": "2026-01-01 00:00"},
        diameter=24.0,
        rescaled=table,
    )
    assert card["inference"]["diameter"] == "auto" and card["inference"]["reference_diameter"] == 24.0
    assert card["inference"]["colour_input"] == "rgb"
    assert card["inference"]["test_metrics_by_setting"]["rescaled to 24 px"]["DSB"] == round(
        float(table.loc["DSB", "rescaled to 24 px"]), 4
    )


def test_rescaling_effect_scores_a_colour_input_on_stained_images_apart(tiny_unet) -> None:
    from nucleilib.segmenter import evaluate_model

    model, config = tiny_unet
    grey = _disc_sample("a", 8)
    purple = np.where((grey.labels > 0)[..., None], (90, 40, 150), (235, 180, 215)).astype(np.uint8)
    samples = [grey, Sample("b", purple, grey.labels)]
    own, _ = evaluate_model(model, config, samples, methods=["borders"])
    table = unet.rescaling_effect(model, config, samples, "borders", 24.0, own, colour_input="hematoxylin")
    assert list(table.columns) == ["own scale", "rescaled to 24 px", "rescaled to 24 px, hematoxylin input"]
    stained_own = own.loc[(own["image_id"] == "b") & (own["method"] == "borders"), "dsb_score"]
    assert table.loc["DSB, stained tissue", "own scale"] == pytest.approx(float(stained_own.iloc[0]))
    assert table.loc["DSB, stained tissue"].notna().all()


def test_ship_model_writes_the_reference_diameter_and_keeps_the_training_config(tiny_unet, tmp_path: Path) -> None:
    from nucleilib.models import load_model_folder

    model, config = tiny_unet
    folder = tmp_path / "pretrained" / "unet-dsb2018"
    message = unet.ship_model(
        model, config, "components", {"name": "x"}, folder, [_disc_sample("a", 8)], diameter=24.0, root=tmp_path
    )
    assert message.startswith(f"shipped to {Path('pretrained/unet-dsb2018')}") and "float16 reload" in message
    _, shipped = load_model_folder(folder)
    assert (shipped.diameter, shipped.separation, shipped.colour_input) == (24.0, "components", "rgb")
    assert json.loads((folder / "card.json").read_text()) == {"name": "x"}
    unet.ship_model(model, config, "borders", {"name": "x"}, folder, [_disc_sample("a", 8)], colour_input="grey")
    assert load_model_folder(folder)[1].diameter is None
    assert load_model_folder(folder)[1].colour_input == "grey"
    assert config.diameter is None  # the training configuration is left as it was


def test_ship_model_leaves_the_same_model_alone_but_replaces_a_changed_one(tiny_unet, tmp_path: Path) -> None:
    model, config = tiny_unet
    folder = tmp_path / "unet-dsb2018"
    samples = [_disc_sample("a", 8)]
    card = {
        "name": "x",
        "commit": "abc",
        "date": "2026-12-01 10:00",
        "inference": {"test_metrics_by_setting": {"own scale": {"DSB": 0.5, "s per image": 0.2}}},
    }
    unet.ship_model(model, config, "borders", card, folder, samples)
    stored = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**stored, "grouped_estimate": {"dsb": 0.3}}))  # another chapter's
    files = {p.name: p.read_bytes() for p in folder.iterdir()}

    rerun = {**card, "commit": "def", "date": "2026-12-07 11:00"}
    rerun["inference"] = {"test_metrics_by_setting": {"own scale": {"DSB": 0.5, "s per image": 0.3}}}
    message = unet.ship_model(model, config, "borders", rerun, folder, samples)
    assert "left as it is" in message
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files

    changed = {**rerun, "inference": {"test_metrics_by_setting": {"own scale": {"DSB": 0.6}}}}
    assert "shipped to" in unet.ship_model(model, config, "borders", changed, folder, samples)
    assert json.loads((folder / "card.json").read_text())["commit"] == "def"

    import tensorflow as tf

    shipped_config = dataclasses.replace(config, separation="borders", diameter=None, colour_input="rgb")
    assert unet.already_shipped(model, shipped_config, changed, folder)
    retrained = tf.keras.models.clone_model(model)
    retrained.set_weights([w + 0.5 for w in model.get_weights()])
    assert not unet.already_shipped(retrained, shipped_config, changed, folder)
    other_method = dataclasses.replace(shipped_config, separation="components")
    assert not unet.already_shipped(model, other_method, changed, folder)


# --------------------------------------------------------------------------- loading a split's samples


def _write_split(out: Path, name: str, subsets: dict[str, list[str]]) -> None:
    rows = [{"image_id": i, "subset": part} for part, ids in subsets.items() for i in ids]
    path = mf.split_file(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, index=False)


def test_load_split_samples_on_a_tiny_dsb_folder(dsb, tmp_path: Path) -> None:
    root = dsb.dataset(5)
    # an extra sample whose two masks overlap: loading it warns, the loader stays quiet
    dsb.sample("img05", discs=((20, 20, 8), (24, 24, 8)))
    out = tmp_path / "artefacts"
    subsets = {"train": ["img00", "img01", "img05"], "val": ["img02"], "test": ["img03", "img04"]}
    _write_split(out, "original", subsets)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids, samples = mf.load_split_samples(out, "original", root=root)
    assert not [w for w in caught if issubclass(w.category, UserWarning)]
    assert ids == subsets
    assert sorted(samples) == sorted(i for part in subsets.values() for i in part)
    assert samples["img02"].n_nuclei == 3 and samples["img00"].n_nuclei == 1
    assert samples["img05"].overlapping_masks == 1

    limited, few = mf.load_split_samples(out, "original", root=root, test_limit=1)
    assert limited["test"] == ["img03"] and "img04" not in few


def test_load_splits_keeps_order_and_limits_tests(tmp_path: Path) -> None:
    _write_split(tmp_path, "80-10-10", {"train": ["a"], "val": ["b"], "test": ["c", "d", "e"]})
    _write_split(tmp_path, "original", {"train": ["a", "b"], "val": [], "test": ["c", "d"]})
    splits = mf.load_splits(tmp_path, ["original", "80-10-10"], test_limit=2)
    assert list(splits) == ["original", "80-10-10"]
    assert splits["80-10-10"]["test"] == ["c", "d"] and splits["original"]["val"] == []
    assert mf.load_splits(tmp_path, ["80-10-10"])["80-10-10"]["test"] == ["c", "d", "e"]
    with pytest.raises(FileNotFoundError):
        mf.load_splits(tmp_path, ["70-20-10"])


def test_load_samples_loads_repeats_once(dsb) -> None:
    root = dsb.dataset(3)
    samples = mf.load_samples(["img02", "img00", "img02"], root=root)
    assert list(samples) == ["img02", "img00"]


def test_load_manifest_is_indexed_by_image_id(tmp_path: Path) -> None:
    pd.DataFrame({"image_id": ["a", "b"], "modality": ["fluorescence", "brightfield"]}).to_csv(
        tmp_path / "manifest.csv", index=False
    )
    manifest = mf.load_manifest(tmp_path)
    assert manifest.loc["b", "modality"] == "brightfield"


def test_score_seeds_reuses_the_main_seed_and_evaluates_the_others() -> None:
    truth = np.array([[1, 1], [0, 0]])
    test = [_sample("a", truth), _sample("b", truth)]
    evaluated = []

    def fake_evaluate(model, config, samples):
        evaluated.append(model)
        value = {"U-Net s1": 0.4, "X s1": 0.2}[model]
        # everything predicted foreground: per image 2 true and 2 false positive pixels
        counts = {"fg_tp": [2, 2], "fg_fp": [2, 2], "fg_fn": [0, 0], "fg_tn": [0, 0]}
        frame = pd.DataFrame({"image_id": ["a", "b"], "dsb_score": [value, value], "ap50": [1.0, 0.0], **counts})
        return frame, {}

    runs = {(name, "original", 1): (SimpleNamespace(model=f"{name} s1"), {}) for name in ("U-Net", "X")}
    micro = PixelMetrics.from_counts(tp=4, fp=0, fn=0, tn=4)
    main_rows = [
        cmp.table_row(name, _per_image({name: [v, v]}, ids="ab").assign(ap50=1.0), micro, 1, 1.0, 5.0, seed=0)
        for name, v in (("U-Net", 0.5), ("X", 0.3))
    ]
    main_per_image = [_per_image({"U-Net": [0.5, 0.5]}, ids="ab"), _per_image({"X": [0.3, 0.3]}, ids="ab")]
    per_seed, per_image = spread.score_seeds(
        runs,
        {"U-Net": BASE, "X": BASE},
        test,
        seeds=[42, 1],
        main_rows=main_rows,
        main_per_image=main_per_image,
        evaluate=fake_evaluate,
    )
    assert evaluated == ["U-Net s1", "X s1"]  # the main seed is not evaluated again
    assert per_seed[["model", "seed", "DSB score"]].values.tolist() == [
        ["U-Net", 42, 0.5],
        ["U-Net", 1, 0.4],
        ["X", 42, 0.3],
        ["X", 1, 0.2],
    ]
    assert per_seed.loc[1, "IoU"] == 0.5 and per_seed.loc[0, "IoU"] == 1.0  # pooled from seed 1's pixel counts
    assert len(per_image) == 8 and sorted(per_image["seed"].unique()) == [1, 42]
    assert not {"fg_tp", "fg_fp", "fg_fn", "fg_tn"} & set(per_image.columns)  # counts stay out of the tables

    table1 = cmp.assemble_table1(main_rows + [dict(main_rows[0], model="Classical")])
    table = spread.table1_over_seeds(table1, per_seed, per_image, seed=0)
    assert table.loc["U-Net", "DSB score"] == pytest.approx(0.45) and table.loc["X", "seeds"] == 2
    assert table.loc["U-Net", "DSB SD over seeds"] == pytest.approx(np.std([0.5, 0.4], ddof=1))
    assert table.loc["X", "DSB 95% CI"] == "0.250-0.250"  # per image, averaged over the two seeds
    assert table.loc["Classical", "DSB score"] == 0.5 and np.isnan(table.loc["Classical", "seeds"])
    assert table.loc["U-Net", "ms/256²"] == 5.0  # timing of the main seed's network

    separation = spread.seed_separation(per_seed)
    assert separation[["better", "worse", "apart"]].values.tolist() == [["U-Net", "X", True]]
    assert spread.separation_text(separation) == "U-Net scores above X in every training"
    per_seed.loc[3, "DSB score"] = 0.45  # X's second seed above U-Net's lowest
    assert spread.seed_separation(per_seed)["apart"].tolist() == [False]

    main = pd.concat(main_per_image + [_per_image({"Classical": [0.1, 0.2]}, ids="ab")]).assign(modality="f")
    averaged = spread.averaged_over_seeds(main, per_image)
    means = averaged.groupby("model")["dsb_score"].mean().round(6).to_dict()
    assert means == {"Classical": 0.15, "U-Net": 0.45, "X": 0.25} and (averaged["modality"] == "f").all()
    assert len(averaged) == 6  # one row per model and image
