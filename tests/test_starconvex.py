"""StarDist on the grouped folds (nucleilib.study.starconvex), on synthetic discs with a tiny budget."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("stardist")

from nucleilib.data import Sample  # noqa: E402
from nucleilib.study import groups as grp  # noqa: E402
from nucleilib.study import starconvex as sc  # noqa: E402


def _disc_sample(image_id: str, seed: int) -> Sample:
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    labels = np.zeros((64, 64), np.uint16)
    for k in range(1, 6):
        labels[disk(tuple(rng.integers(10, 54, 2)), 6, shape=labels.shape)] = k
    image = np.repeat(((labels > 0) * 180 + 30 + rng.integers(0, 20, labels.shape))[..., None], 3, axis=-1)
    return Sample(image_id, image.astype(np.uint8), labels)


@pytest.fixture(scope="module")
def two_groups():
    ids = [f"a{k}" for k in range(6)] + [f"b{k}" for k in range(6)]
    groups = pd.Series(["A"] * 6 + ["B"] * 6, index=ids)
    samples = {i: _disc_sample(i, n) for n, i in enumerate(ids)}
    return samples, groups, grp.grouped_folds(groups, 2)


def _budget():
    return grp.comparison_budget(crop=32, batch_size=2, epochs=1, steps_per_epoch=2)


def test_stardist_is_trained_per_fold_scored_on_held_out_groups_and_cached(two_groups, tmp_path, monkeypatch):
    samples, groups, folds = two_groups
    rows = sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2)
    assert sorted(rows["image_id"]) == sorted(groups.index) and (rows["method"] == "stardist").all()
    for k, fold in enumerate(folds):
        fold_rows = rows[rows["fold"] == k]
        assert set(fold_rows["group"]) == set(fold["groups"])
        assert fold_rows["model"].str.startswith(f"grouped-stardist-fold{k}-").all()
    assert rows[["dsb_score", "iou", "ap50"]].apply(lambda c: c.between(0, 1)).all().all()
    record = json.loads(next(tmp_path.glob("grouped-stardist-fold0-*/training.json")).read_text())
    assert record["parameters"] > 0 and record["train_images"] == 5 and record["val_images"] == 1
    assert not list(tmp_path.glob("*/weights_last.h5"))

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    real_score = sc.score
    monkeypatch.setattr("stardist.models.StarDist2D.train", no_training)
    monkeypatch.setattr(sc, "score", no_training)
    again = sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2)
    pd.testing.assert_frame_equal(again, rows)

    scored = []
    monkeypatch.setattr(
        sc, "score", lambda model, test, settings: scored.append(len(test)) or real_score(model, test, settings)
    )
    monkeypatch.setenv("NUCLEI_RESCORE", "1")  # nuclei study --rescore: scored again, not trained again
    rescored = sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2)
    assert scored == [len(fold["test"]) for fold in folds]
    pd.testing.assert_frame_equal(rescored.drop(columns="predict_s"), rows.drop(columns="predict_s"))


def test_a_damaged_cache_is_named_and_an_unfinished_one_retrained(two_groups, tmp_path):
    samples, groups, folds = two_groups
    sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2, only=[0])
    folder = next(tmp_path.glob("grouped-stardist-fold0-*"))
    (folder / "weights_best.h5").unlink()
    with pytest.raises(FileNotFoundError, match=f"{folder.name}: cached StarDist model is incomplete"):
        sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2, only=[0])
    (folder / sc.FINISHED).unlink()  # as a killed training leaves it
    rows = sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2, only=[0])
    assert (folder / "weights_best.h5").is_file() and sorted(rows["image_id"]) == sorted(folds[0]["test"])


def test_folds_that_leak_a_group_are_refused(two_groups, tmp_path):
    samples, groups, folds = two_groups
    leaky = [{**folds[0], "train": folds[0]["train"] + folds[0]["test"][:1]}, folds[1]]
    with pytest.raises(ValueError):
        sc.stardist_grouped_evaluation(samples, groups, leaky, _budget(), tmp_path)


def test_a_corrupt_weights_file_or_truncated_scores_are_named(two_groups, tmp_path):
    samples, groups, folds = two_groups
    sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2, only=[0])
    folder = next(tmp_path.glob("grouped-stardist-fold0-*"))
    scores = next(folder.glob("scores-*.csv"))
    text = scores.read_text()
    scores.write_text(text[: len(text) * 2 // 3])  # cut inside a row, as a full disk leaves it
    with pytest.raises(ValueError, match=f"{scores}: cached StarDist scores are incomplete"):
        sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2, only=[0])
    scores.write_text(text)
    weights = folder / "weights_best.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match=f"{folder.name}: cached StarDist model cannot be loaded"):
        sc.stardist_grouped_evaluation(samples, groups, folds, _budget(), tmp_path, n_val=2, only=[0])
