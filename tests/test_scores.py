"""The cache of networks' per-image scores (nucleilib.study.scores)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import disc_mask, tiny_config

from nucleilib.data import Sample
from nucleilib.study import comparison as cmp
from nucleilib.study import scores

METHODS = ["borders", "components"]


def _samples() -> list[Sample]:
    rng = np.random.default_rng(3)
    out = []
    for k, shape in enumerate([(48, 64), (64, 64), (40, 56)]):
        labels = np.zeros(shape, np.uint16)
        labels[disc_mask(shape, 20, 20, 8)] = 1
        labels[disc_mask(shape, 24, 40, 7)] = 2
        image = (rng.random(shape + (3,)) * 60 + (labels > 0)[..., None] * 150).astype(np.uint8)
        out.append(Sample(f"img{k}", image, labels))
    return out


def _score_once(model, folder: Path, monkeypatch: pytest.MonkeyPatch):
    """A cache in ``folder`` (no rescoring asked for) holding one scoring of ``model`` on :func:`_samples`:
    ``(cache, samples, metrics, probabilities)``."""
    monkeypatch.delenv(scores.RESCORE_ENV, raising=False)
    cache = scores.ScoreCache(folder)
    samples = _samples()
    metrics, probabilities = cache.evaluate(model, tiny_config(), samples, methods=METHODS, label="tiny")
    return cache, samples, metrics, probabilities


def _forbid_scoring(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("scored again although the scores are cached")

    monkeypatch.setattr(scores, "evaluate_scores", fail)


def test_a_cached_scoring_equals_the_fresh_one_to_the_last_bit(
    tiny_unet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, samples, fresh, fresh_probs = _score_once(tiny_unet, tmp_path / "scores", monkeypatch)
    written = list((tmp_path / "scores").glob("tiny-*.csv"))
    assert len(written) == 1 and len(fresh) == len(samples) * len(METHODS)
    described = json.loads(written[0].with_suffix(".json").read_text())
    assert described["images"] == len(samples) and described["weights_sha256"] == scores.weights_digest(tiny_unet)
    _forbid_scoring(monkeypatch)
    cached, cached_probs = cache.evaluate(tiny_unet, tiny_config(), samples, methods=METHODS, label="tiny")
    pd.testing.assert_frame_equal(cached, fresh, check_exact=True)
    # the maps a figure asks for are predicted again, and equal the scoring's own
    assert isinstance(cached_probs, scores.LazyProbabilities) and len(cached_probs) == len(samples)
    for sample in samples:
        assert np.array_equal(cached_probs[sample.image_id], fresh_probs[sample.image_id])


def test_pooled_pixel_metrics_from_counts_equal_those_from_the_probabilities(tiny_unet, tmp_path: Path) -> None:
    samples = _samples()
    metrics, probs = scores.evaluate_scores(tiny_unet, tiny_config(), samples, methods=METHODS)
    assert scores.micro_from_counts(metrics) == cmp.micro_pixels(probs, samples, tiny_config().threshold)
    assert not set(scores.COUNT_COLUMNS) & set(scores.without_counts(metrics).columns)


def test_other_weights_settings_or_images_are_scored_anew(
    tiny_unet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tensorflow as tf

    from nucleilib.models import build_unet

    cache, samples, _, _ = _score_once(tiny_unet, tmp_path, monkeypatch)
    tf.keras.utils.set_random_seed(1)
    other = build_unet(tiny_config())
    cache.evaluate(other, tiny_config(), samples, methods=METHODS, label="tiny")
    cache.evaluate(tiny_unet, tiny_config(), samples[:2], methods=METHODS, label="tiny")
    cache.evaluate(tiny_unet, tiny_config(), samples, methods=["borders"], label="tiny")
    cache.evaluate(tiny_unet, tiny_config(), samples, methods=METHODS, label="tiny", diameter=None)
    # the same ids with another annotation (a data set whose masks were fixed, say)
    relabelled = [Sample(s.image_id, s.image, (s.labels > 0).astype(np.uint16)) for s in samples]
    cache.evaluate(tiny_unet, tiny_config(), relabelled, methods=METHODS, label="tiny")
    assert len(list(tmp_path.glob("tiny-*.csv"))) == 6


def test_rescoring_scores_again_and_rewrites(tiny_unet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache, samples, _, _ = _score_once(tiny_unet, tmp_path, monkeypatch)
    (path,) = tmp_path.glob("tiny-*.csv")
    stale = pd.read_csv(path).assign(dsb_score=-1.0)
    stale.to_csv(path, index=False)
    monkeypatch.setenv(scores.RESCORE_ENV, "1")
    again, _ = cache.evaluate(tiny_unet, tiny_config(), samples, methods=METHODS, label="tiny")
    assert (again["dsb_score"] >= 0).all() and (pd.read_csv(path)["dsb_score"] >= 0).all()
    # the flag of the cache itself wins over the environment
    _forbid_scoring(monkeypatch)
    kept, _ = scores.ScoreCache(tmp_path, rescore=False).evaluate(
        tiny_unet, tiny_config(), samples, methods=METHODS, label="tiny"
    )
    pd.testing.assert_frame_equal(kept, again, check_exact=True)


def test_a_damaged_cached_scoring_is_named_with_what_to_do(
    tiny_unet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, samples, _, _ = _score_once(tiny_unet, tmp_path, monkeypatch)
    (path,) = tmp_path.glob("tiny-*.csv")
    path.write_text("not,a\n")
    with pytest.raises(ValueError, match=rf"{path.name}.*delete the file to score again"):
        cache.evaluate(tiny_unet, tiny_config(), samples, methods=METHODS, label="tiny")


def test_pixel_counts_need_the_images_own_scale(tiny_unet) -> None:
    config = tiny_config()
    from dataclasses import replace

    rescaling = replace(config, diameter=24.0)
    with pytest.raises(ValueError, match="own scale"):
        scores.evaluate_scores(tiny_unet, rescaling, _samples(), methods=["borders"], diameter=12.0)
    metrics, _ = scores.evaluate_scores(
        tiny_unet, rescaling, _samples(), methods=["borders"], diameter=12.0, count_pixels=False
    )
    assert not set(scores.COUNT_COLUMNS) & set(metrics.columns)
    with pytest.raises(ValueError, match="no pixel counts"):
        scores.micro_from_counts(metrics)


def test_the_comparison_evaluation_goes_through_the_cache(
    tiny_unet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(scores.RESCORE_ENV, raising=False)
    samples = _samples()
    evaluate = cmp.cached_evaluation(scores.ScoreCache(tmp_path))
    first, _ = evaluate(tiny_unet, tiny_config(), samples)
    _forbid_scoring(monkeypatch)
    second, _ = evaluate(tiny_unet, tiny_config(), samples)
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert first["method"].unique().tolist() == ["borders"]


def test_without_pixel_counts_the_maps_are_predicted_when_asked(tiny_unet) -> None:
    samples = _samples()
    counted, kept = scores.evaluate_scores(tiny_unet, tiny_config(), samples, methods=["borders"])
    plain, lazy = scores.evaluate_scores(tiny_unet, tiny_config(), samples, methods=["borders"], count_pixels=False)
    pd.testing.assert_frame_equal(
        scores.without_counts(counted).drop(columns="predict_s"), plain.drop(columns="predict_s"), check_exact=True
    )
    assert np.array_equal(lazy["img1"], kept["img1"])
    with pytest.raises(KeyError):
        lazy["not-an-image"]
