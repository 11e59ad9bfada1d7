"""Same seed, same results: the stratified split and a tiny training end to end.

Measured on the CPU (2 cores, TensorFlow 2.14.1, oneDNN on, float32): two trainings
with the same seed in fresh cache folders gave bit-identical weights, training
history and evaluation metrics, run after run. TensorFlow's CPU kernels are
deterministic for this model (convolutions, batch norm, Adam; one ``tf.data``
pipeline whose random crops are drawn from the seeded generator), so the test
asserts exact equality, with no tolerance. Only the timing column
(``predict_s``) is left out. A GPU, whose cuDNN kernels are not deterministic
without ``tf.config.experimental.enable_op_determinism()``, may differ in the
last bits; this test runs on the CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nucleilib import models, segmenter, training
from nucleilib.data import load_dataset, subset
from nucleilib.study import manifest as mf


@pytest.fixture
def samples(dsb):
    root = dsb.dataset(12)
    return load_dataset(root, workers=1)


def test_the_same_seed_gives_the_same_split_and_another_seed_another(samples) -> None:
    table = mf.build_manifest(samples)
    again = mf.build_manifest(list(reversed(samples))).sort_values("image_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(table.sort_values("image_id").reset_index(drop=True), again)
    for split in mf.SPLIT_NAMES:
        first = mf.stratified_split(table, split, seed=42)
        second = mf.stratified_split(table.sample(frac=1.0, random_state=3).reset_index(drop=True), split, seed=42)
        key = ["image_id"]
        pd.testing.assert_frame_equal(
            first.sort_values(key).reset_index(drop=True), second.sort_values(key).reset_index(drop=True)
        )
    subsets = {seed: tuple(mf.stratified_split(table, "80-10-10", seed=seed)["subset"]) for seed in range(6)}
    assert len(set(subsets.values())) > 1, "the seed should change the split"


def _train_and_evaluate(samples, cache: Path) -> tuple[training.TrainResult, pd.DataFrame, list[np.ndarray]]:
    table = mf.build_manifest(samples)
    split = mf.stratified_split(table, "80-10-10", seed=7)
    ids = {name: split.loc[split["subset"] == name, "image_id"].tolist() for name in ("train", "val", "test")}
    config = training.TrainConfig(
        model=models.ModelConfig(base_filters=4, depth=2),
        crop=32,
        batch_size=2,
        epochs=2,
        steps_per_epoch=3,
        val_tile=32,
        patience=2,
        seed=7,
        mixed_precision="off",
    )
    result = training.train(config, subset(samples, ids["train"]), subset(samples, ids["val"]), cache, verbose=0)
    assert not result.reused
    metrics, _ = segmenter.evaluate_model(result.model, config.model, subset(samples, ids["test"] + ids["val"]))
    return result, metrics.drop(columns=["predict_s"]), result.model.get_weights()


@pytest.mark.slow
def test_two_trainings_with_one_seed_give_identical_weights_and_metrics(samples, tmp_path: Path) -> None:
    first, metrics_1, weights_1 = _train_and_evaluate(samples, tmp_path / "cache-1")
    second, metrics_2, weights_2 = _train_and_evaluate(samples, tmp_path / "cache-2")
    assert first.folder.parent != second.folder.parent
    pd.testing.assert_frame_equal(first.history, second.history, check_exact=True)
    assert len(weights_1) == len(weights_2)
    for a, b in zip(weights_1, weights_2):
        np.testing.assert_array_equal(a, b)
    assert len(metrics_1) > 0
    pd.testing.assert_frame_equal(metrics_1, metrics_2, check_exact=True)
