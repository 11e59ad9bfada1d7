"""Pixel metrics, instance metrics (DSB score), tables and bootstrap (nucleilib.evaluation).

Expected values are worked out by hand in the comments; the label images are
small rectangles so that every IoU is a simple fraction.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from nucleilib.evaluation import (
    DSB_THRESHOLDS,
    METRIC_COLUMNS,
    InstanceMetrics,
    PixelMetrics,
    bootstrap_ci,
    dsb_score,
    evaluate_pairs,
    instance_metrics,
    iou_matrix,
    pixel_counts,
    pixel_metrics,
    pixel_metrics_mean,
    pixel_metrics_micro,
    summarise,
)

PIXEL_FIELDS = ("accuracy", "precision", "recall", "iou", "dice", "mean_iou")
INSTANCE_FIELDS = ("dsb_score", "ap50", "f1_50", "n_true", "n_pred", "count_error")

# The 2x2 example: pred [[1,1],[0,0]] vs truth [[1,0],[1,0]]
#   (0,0) both -> tp; (0,1) pred only -> fp; (1,0) truth only -> fn; (1,1) neither -> tn.
PRED_2X2 = np.array([[1, 1], [0, 0]])
TRUTH_2X2 = np.array([[1, 0], [1, 0]])


def shifted_rectangles(height: int, width: int, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """A ``height x width`` true rectangle and the same rectangle shifted right by ``shift``.

    Intersection ``h (w - s)``, union ``h (w + s)``: IoU ``(w - s) / (w + s)``.
    """
    truth = np.zeros((height + 2, width + shift + 2), dtype=np.uint16)
    pred = np.zeros_like(truth)
    truth[1 : 1 + height, 1 : 1 + width] = 1
    pred[1 : 1 + height, 1 + shift : 1 + shift + width] = 1
    return truth, pred


# --------------------------------------------------------------------------- pixel counts / metrics


def test_pixel_counts_of_the_2x2_example():
    assert pixel_counts(PRED_2X2, TRUTH_2X2) == (1, 1, 1, 1)
    assert pixel_counts(PRED_2X2.astype(bool), TRUTH_2X2.astype(bool)) == (1, 1, 1, 1)


def test_pixel_metrics_of_the_2x2_example():
    # tp = fp = fn = tn = 1:
    #   accuracy (1+1)/4 = 0.5, precision 1/2, recall 1/2, IoU 1/(1+1+1) = 1/3,
    #   dice 2/(2+1+1) = 0.5, background IoU tn/(tn+fp+fn) = 1/3, mean IoU (1/3 + 1/3)/2 = 1/3.
    m = pixel_metrics(PRED_2X2, TRUTH_2X2)
    assert m.accuracy == pytest.approx(0.5)
    assert m.precision == pytest.approx(0.5)
    assert m.recall == pytest.approx(0.5)
    assert m.iou == pytest.approx(1 / 3)
    assert m.dice == pytest.approx(0.5)
    assert m.mean_iou == pytest.approx((1 / 3 + 1 / 3) / 2)


def test_pixel_metrics_asymmetric_example():
    # truth = 4 pixels, pred = 2 of them + 1 extra, 9 pixels in all:
    #   tp 2, fp 1, fn 2, tn 4 -> accuracy 6/9, precision 2/3, recall 2/4, IoU 2/5,
    #   dice 4/7, background IoU 4/7, mean IoU (2/5 + 4/7)/2.
    truth = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]], bool)
    pred = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0]], bool)
    assert pixel_counts(pred, truth) == (2, 1, 2, 4)
    m = pixel_metrics(pred, truth)
    expected = (6 / 9, 2 / 3, 2 / 4, 2 / 5, 4 / 7, (2 / 5 + 4 / 7) / 2)
    assert tuple(m.as_dict().values()) == pytest.approx(expected)


def test_pixel_metrics_perfect_prediction():
    truth = np.zeros((5, 5), bool)
    truth[1:3, 1:4] = True
    m = pixel_metrics(truth, truth)
    assert m == PixelMetrics(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_pixel_metrics_both_empty_is_perfect():
    # No foreground anywhere: precision, recall, IoU, dice are 1 by convention;
    # accuracy 16/16; background IoU 16/16.
    empty = np.zeros((4, 4), bool)
    assert pixel_metrics(empty, empty) == PixelMetrics(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_pixel_metrics_empty_prediction_of_a_non_empty_truth():
    # tp 0, fp 0, fn 2, tn 2: precision 0/0 (but not both empty) -> 0.0, recall 0/2,
    # IoU 0, dice 0, accuracy 2/4, background IoU 2/4 -> mean IoU 0.25.
    truth = np.array([[1, 1], [0, 0]])
    pred = np.zeros((2, 2), int)
    m = pixel_metrics(pred, truth)
    assert (m.precision, m.recall, m.iou, m.dice) == (0.0, 0.0, 0.0, 0.0)
    assert m.accuracy == 0.5 and m.mean_iou == pytest.approx(0.25)


def test_pixel_metrics_non_empty_prediction_of_an_empty_truth():
    # tp 0, fp 1, fn 0, tn 3: precision 0/1, recall 0/0 (not both empty) -> 0.0.
    truth = np.zeros((2, 2), int)
    pred = np.array([[0, 1], [0, 0]])
    m = pixel_metrics(pred, truth)
    assert (m.precision, m.recall, m.iou, m.dice) == (0.0, 0.0, 0.0, 0.0)
    assert m.accuracy == 0.75 and m.mean_iou == pytest.approx(3 / 4 / 2)


def test_pixel_metrics_all_foreground_background_iou_convention():
    # No background in either mask: background IoU 0/0 -> 1.0 (both "empty").
    full = np.ones((3, 3), bool)
    assert pixel_metrics(full, full).mean_iou == 1.0


def test_pixel_metrics_from_counts_matches_pixel_metrics():
    assert PixelMetrics.from_counts(1, 1, 1, 1) == pixel_metrics(PRED_2X2, TRUTH_2X2)
    with pytest.raises(ValueError, match="all zero"):
        PixelMetrics.from_counts(0, 0, 0, 0)
    with pytest.raises(ValueError, match="non-negative"):
        PixelMetrics.from_counts(1, -1, 0, 0)


def test_pixel_metrics_is_a_frozen_record():
    m = pixel_metrics(PRED_2X2, TRUTH_2X2)
    assert list(m.as_dict()) == list(PIXEL_FIELDS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.iou = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("func", [pixel_counts, pixel_metrics])
def test_pixel_shape_mismatch_names_both_shapes(func):
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        func(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


@pytest.mark.parametrize("bad", [np.array([[0, 2], [1, 0]]), np.array([[0.5, 1.0], [0.0, 0.0]])])
def test_pixel_metrics_reject_non_binary_values(bad):
    with pytest.raises(ValueError, match="0/1"):
        pixel_counts(bad, np.zeros((2, 2), bool))


def test_pixel_metrics_reject_arrays_without_pixels():
    with pytest.raises(ValueError, match="no pixels"):
        pixel_counts(np.zeros((0, 3), bool), np.zeros((0, 3), bool))


# --------------------------------------------------------------------------- micro vs mean


def test_micro_and_mean_differ_where_they_should():
    # Image A, the 2x2 example: tp 1, fp 1, fn 1, tn 1 (4 pixels).
    # Image B, 3x3 all foreground in both: tp 9 (9 pixels, no background).
    #
    # Mean over images (each image weighs 1/2):
    #   A: acc .5, prec .5, rec .5, IoU 1/3, dice .5, mean IoU (1/3+1/3)/2 = 1/3
    #   B: all 1 (background IoU 0/0 with no background in either -> 1)
    #   -> acc .75, prec .75, rec .75, IoU (1/3+1)/2 = 2/3, dice .75, mean IoU 2/3
    #
    # Micro (pixels pooled): tp 10, fp 1, fn 1, tn 1 (13 pixels):
    #   acc 11/13, prec 10/11, rec 10/11, IoU 10/12, dice 20/22,
    #   background IoU 1/3 -> mean IoU (10/12 + 1/3)/2 = 7/12
    full = np.ones((3, 3), bool)
    pairs = [(PRED_2X2, TRUTH_2X2), (full, full)]
    mean = pixel_metrics_mean(pairs)
    micro = pixel_metrics_micro(pairs)
    assert tuple(mean.as_dict().values()) == pytest.approx((0.75, 0.75, 0.75, 2 / 3, 0.75, 2 / 3))
    assert tuple(micro.as_dict().values()) == pytest.approx((11 / 13, 10 / 11, 10 / 11, 10 / 12, 20 / 22, 7 / 12))
    assert micro.iou > mean.iou and micro.mean_iou < mean.mean_iou


def test_micro_and_mean_agree_on_a_single_image():
    pairs = [(PRED_2X2, TRUTH_2X2)]
    assert pixel_metrics_micro(pairs) == pixel_metrics(PRED_2X2, TRUTH_2X2)
    assert pixel_metrics_mean(pairs).as_dict() == pytest.approx(pixel_metrics(PRED_2X2, TRUTH_2X2).as_dict())


def test_micro_accepts_a_generator_and_images_of_different_shapes():
    # tp 1+2, fp 1, fn 1, tn 1+0 -> IoU 3/5
    pairs = ((p, t) for p, t in [(PRED_2X2, TRUTH_2X2), (np.ones((1, 2)), np.ones((1, 2)))])
    assert pixel_metrics_micro(pairs).iou == pytest.approx(3 / 5)


@pytest.mark.parametrize("func", [pixel_metrics_micro, pixel_metrics_mean])
def test_pooled_metrics_validate_their_pairs(func):
    with pytest.raises(ValueError, match="no .*pairs"):
        func([])
    with pytest.raises(ValueError, match=r"pair 1: .*\(2, 2\).*\(2, 3\)"):
        func([(PRED_2X2, TRUTH_2X2), (np.zeros((2, 2)), np.zeros((2, 3)))])


# --------------------------------------------------------------------------- iou matrix


def brute_force_iou(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """The IoU matrix by an explicit loop over (true, predicted) pairs."""
    t_labels = [v for v in np.unique(truth) if v > 0]
    p_labels = [v for v in np.unique(pred) if v > 0]
    out = np.zeros((len(t_labels), len(p_labels)))
    for i, a in enumerate(t_labels):
        for j, b in enumerate(p_labels):
            ta, pb = truth == a, pred == b
            out[i, j] = (ta & pb).sum() / (ta | pb).sum()
    return out


def random_rectangles(rng: np.random.Generator, shape: tuple[int, int], n: int, labels: np.ndarray) -> np.ndarray:
    """``n`` random rectangles painted in turn (later ones overwrite), with the given label values."""
    image = np.zeros(shape, dtype=np.int64)
    for label in labels[:n]:
        y, x = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
        h, w = rng.integers(3, 12, size=2)
        image[y : y + h, x : x + w] = label
    return image


def perturb(rng: np.random.Generator, truth: np.ndarray) -> np.ndarray:
    """A plausible prediction: objects shifted by up to a pixel, relabelled, some dropped, noise added."""
    pred = np.zeros_like(truth)
    for label in np.unique(truth[truth > 0]):
        if rng.random() < 0.15:
            continue  # missed object
        dy, dx = rng.integers(-1, 2, size=2)
        moved = np.roll(truth == label, (int(dy), int(dx)), axis=(0, 1))
        pred[moved] = int(rng.integers(1, 10_000))
    pred[rng.random(truth.shape) < 0.02] = 77_777  # scattered false-positive object
    return pred


@pytest.mark.parametrize("seed", range(6))
def test_iou_matrix_matches_brute_force_on_random_label_images(seed):
    rng = np.random.default_rng(seed)
    shape = (40, 48)
    # Sparse, non-consecutive labels; overlaps between rectangles leave odd shapes.
    truth = random_rectangles(rng, shape, 12, rng.choice(np.arange(1, 3000), 12, replace=False))
    pred = perturb(rng, truth)
    got = iou_matrix(truth, pred)
    expected = brute_force_iou(truth, pred)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_iou_matrix_matches_brute_force_on_pixel_noise(seed):
    # Every pixel drawn independently from a few labels: many small, scattered objects.
    rng = np.random.default_rng(100 + seed)
    truth = rng.choice(np.array([0, 0, 3, 9, 250, 65535], dtype=np.uint16), size=(15, 17))
    pred = rng.choice(np.array([0, 1, 2, 40, 41], dtype=np.int32), size=(15, 17))
    np.testing.assert_allclose(iou_matrix(truth, pred), brute_force_iou(truth, pred), rtol=0, atol=1e-12)


def test_iou_matrix_hand_made_with_non_consecutive_labels():
    # truth 7 = pixels 1-4 (4 px); pred 3 = pixels 0-2, pred 9 = pixels 3-4.
    #   IoU(7, 3) = |{1,2}| / |{0..4}| = 2/5; IoU(7, 9) = 2/4.
    truth = np.array([[0, 7, 7, 7, 7]])
    pred = np.array([[3, 3, 3, 9, 9]])
    np.testing.assert_allclose(iou_matrix(truth, pred), [[0.4, 0.5]])
    # Rows and columns follow ascending label values, not first appearance.
    truth2 = np.array([[50, 50, 0, 4, 4]])
    pred2 = np.array([[0, 0, 0, 4, 4]])
    np.testing.assert_allclose(iou_matrix(truth2, pred2), [[1.0], [0.0]])


def test_iou_matrix_without_background_and_without_objects():
    # No background pixel at all: one object covering the image in both.
    assert iou_matrix(np.full((3, 3), 5), np.full((3, 3), 2)).tolist() == [[1.0]]
    assert iou_matrix(np.zeros((3, 3), int), np.zeros((3, 3), int)).shape == (0, 0)
    assert iou_matrix(np.zeros((3, 3), int), np.eye(3, dtype=int)).shape == (0, 1)


def test_iou_matrix_with_huge_label_values_uses_the_sorting_path():
    truth = np.array([[0, 2**40, 2**40, 3]], dtype=np.int64)
    pred = np.array([[0, 1, 2**50, 2**50]], dtype=np.int64)
    np.testing.assert_allclose(iou_matrix(truth, pred), brute_force_iou(truth, pred))


def test_iou_matrix_validation():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        iou_matrix(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="negative"):
        iou_matrix(np.array([[0, -1]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="integer"):
        iou_matrix(np.array([[0, 1.5]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="integer"):
        iou_matrix(np.array([["a", "b"]]), np.array([[0, 1]]))
    # Integral floats are accepted.
    assert iou_matrix(np.array([[0.0, 2.0]]), np.array([[0, 1]])).tolist() == [[1.0]]


# --------------------------------------------------------------------------- DSB score, hand-made


def test_dsb_perfect_prediction_with_other_label_values():
    truth = np.zeros((20, 20), np.uint16)
    truth[1:5, 1:5] = 1
    truth[8:15, 2:9] = 2
    truth[3:9, 12:19] = 3
    pred = np.zeros_like(truth)
    for old, new in [(1, 30), (2, 7), (3, 1000)]:
        pred[truth == old] = new
    m = instance_metrics(truth, pred)
    assert m == InstanceMetrics(dsb_score=1.0, ap50=1.0, f1_50=1.0, n_true=3, n_pred=3, count_error=0)
    assert pixel_metrics(pred > 0, truth > 0) == PixelMetrics(1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_dsb_iou_exactly_0_6_matches_at_two_thresholds():
    # 8x8 square shifted right by 2: intersection 8*6 = 48, union 8*10 = 80, IoU 0.6.
    # IoU > t for t = 0.50, 0.55 only (0.6 is not > 0.6): precision 1, 1, then 0 x 8.
    # dsb = (1 + 1 + 0*8) / 10 = 0.2
    truth, pred = shifted_rectangles(8, 8, 2)
    assert iou_matrix(truth, pred)[0, 0] == pytest.approx(0.6)
    assert dsb_score(truth, pred) == pytest.approx(2 / 10)
    m = instance_metrics(truth, pred)
    assert (m.dsb_score, m.ap50, m.f1_50) == pytest.approx((0.2, 1.0, 1.0))


def test_dsb_iou_exactly_0_5_does_not_match():
    # 6-wide square shifted by 2: intersection 4h, union 8h, IoU exactly 0.5, not > 0.5.
    # TP 0, FP 1, FN 1 at every threshold -> 0; f1 = 0 / (0 + 1 + 1) = 0.
    truth, pred = shifted_rectangles(6, 6, 2)
    assert iou_matrix(truth, pred)[0, 0] == 0.5
    m = instance_metrics(truth, pred)
    assert (m.dsb_score, m.ap50, m.f1_50) == (0.0, 0.0, 0.0)
    assert dsb_score(truth, pred, thresholds=[0.5]) == 0.0


@pytest.mark.parametrize("k", range(10, 21))
def test_dsb_iou_on_every_threshold_boundary(k):
    # A 1x20 true strip and a prediction covering its first k pixels: IoU = k/20 exactly.
    # k/20 for k = 10..19 equals threshold 0.50 + 0.05 (k - 10); IoU > t for the k - 10
    # thresholds below it, so dsb = (k - 10)/10. This guards against np.arange drift
    # (0.6000000000000001, ...) deciding ties either way.
    truth = np.ones((1, 20), np.uint8)
    pred = np.zeros((1, 20), np.uint8)
    pred[0, :k] = 4
    assert dsb_score(truth, pred) == pytest.approx((k - 10) / 10)
    # The same with thresholds written out by hand or accumulated by repeated addition.
    assert dsb_score(truth, pred, thresholds=[0.5 + 0.05 * i for i in range(10)]) == pytest.approx((k - 10) / 10)
    assert dsb_score(truth, pred, thresholds=np.linspace(0.5, 0.95, 10)) == pytest.approx((k - 10) / 10)


def test_dsb_extra_false_positive_object():
    # One true square found exactly plus one extra predicted square.
    # Every threshold: TP 1, FP 1, FN 0 -> 1/2; dsb 0.5; ap50 1/2; f1 2/(2+1) = 2/3.
    truth = np.zeros((10, 20), np.uint8)
    truth[2:6, 2:6] = 1
    pred = truth.copy()
    pred[2:6, 12:16] = 2
    m = instance_metrics(truth, pred)
    assert m.dsb_score == pytest.approx(0.5)
    assert m.ap50 == pytest.approx(1 / 2)
    assert m.f1_50 == pytest.approx(2 / 3)
    assert (m.n_true, m.n_pred, m.count_error) == (1, 2, 1)


def test_dsb_missed_object():
    # Two true squares, one predicted exactly: TP 1, FP 0, FN 1 -> 1/2 everywhere.
    truth = np.zeros((10, 20), np.uint8)
    truth[2:6, 2:6] = 1
    truth[2:6, 12:16] = 2
    pred = (truth == 2).astype(np.uint8) * 9
    m = instance_metrics(truth, pred)
    assert (m.dsb_score, m.ap50, m.f1_50) == pytest.approx((0.5, 0.5, 2 / 3))
    assert m.count_error == -1


def test_dsb_split_object():
    # One 4x8 true object (32 px) predicted as two pieces, 4x5 (20 px) and 4x3 (12 px).
    #   IoU(big piece) = 20/32 = 0.625, IoU(small piece) = 12/32 = 0.375.
    #   t = 0.50, 0.55, 0.60: TP 1, FP 1 (small piece), FN 0 -> 1/2
    #   t >= 0.65:            TP 0, FP 2, FN 1           -> 0
    #   dsb = 3 * 0.5 / 10 = 0.15; ap50 = 1/2; f1 = 2/(2+1) = 2/3.
    # The foreground is identical, so every pixel metric is 1.
    truth = np.zeros((6, 10), np.uint8)
    truth[1:5, 1:9] = 1
    pred = np.zeros_like(truth)
    pred[1:5, 1:6] = 1
    pred[1:5, 6:9] = 2
    np.testing.assert_allclose(iou_matrix(truth, pred), [[0.625, 0.375]])
    m = instance_metrics(truth, pred)
    assert (m.dsb_score, m.ap50, m.f1_50) == pytest.approx((0.15, 0.5, 2 / 3))
    assert (m.n_true, m.n_pred, m.count_error) == (1, 2, 1)
    assert pixel_metrics(pred > 0, truth > 0).iou == 1.0


def test_dsb_split_in_equal_halves_matches_nothing():
    # 4x8 truth, two 4x4 halves: IoU 16/32 = 0.5 each, not > 0.5 -> TP 0, FP 2, FN 1 -> 0.
    truth = np.zeros((6, 10), np.uint8)
    truth[1:5, 1:9] = 1
    pred = np.zeros_like(truth)
    pred[1:5, 1:5] = 1
    pred[1:5, 5:9] = 2
    assert instance_metrics(truth, pred).dsb_score == 0.0


def test_dsb_merged_objects():
    # Two touching true objects, 4x5 (20 px) and 4x3 (12 px), predicted as one 4x8 object.
    #   IoU(first) = 20/32 = 0.625, IoU(second) = 12/32 = 0.375.
    #   t <= 0.60: TP 1, FP 0, FN 1 -> 1/2;  t >= 0.65: TP 0, FP 1, FN 2 -> 0.
    #   dsb = 0.15; ap50 1/2; f1 2/(2+0+1) = 2/3; count error 1 - 2 = -1.
    truth = np.zeros((6, 10), np.uint8)
    truth[1:5, 1:6] = 1
    truth[1:5, 6:9] = 2
    pred = (truth > 0).astype(np.uint8) * 3
    m = instance_metrics(truth, pred)
    assert (m.dsb_score, m.ap50, m.f1_50) == pytest.approx((0.15, 0.5, 2 / 3))
    assert (m.n_true, m.n_pred, m.count_error) == (2, 1, -1)


@pytest.mark.parametrize(
    ("truth_has_objects", "pred_has_objects", "expected"),
    [(False, False, 1.0), (True, False, 0.0), (False, True, 0.0)],
)
def test_dsb_empty_images(truth_has_objects, pred_has_objects, expected):
    truth = np.zeros((5, 5), np.uint16)
    pred = np.zeros((5, 5), np.uint16)
    if truth_has_objects:
        truth[1:3, 1:3] = 4
    if pred_has_objects:
        pred[2:4, 2:4] = 6
    assert dsb_score(truth, pred) == expected
    m = instance_metrics(truth, pred)
    assert (m.dsb_score, m.ap50, m.f1_50) == (expected, expected, expected)
    assert m.count_error == int(pred_has_objects) - int(truth_has_objects)


def test_dsb_custom_thresholds_and_validation():
    truth, pred = shifted_rectangles(8, 8, 2)  # IoU 0.6
    assert dsb_score(truth, pred, thresholds=[0.5]) == 1.0
    assert dsb_score(truth, pred, thresholds=0.59) == 1.0
    assert dsb_score(truth, pred, thresholds=[0.5, 0.6, 0.7, 0.8]) == 0.25
    with pytest.raises(ValueError, match=r"\[0\.5, 1\]"):
        dsb_score(truth, pred, thresholds=[0.3, 0.5])
    with pytest.raises(ValueError, match=r"\[0\.5, 1\]"):
        dsb_score(truth, pred, thresholds=[1.5])
    with pytest.raises(ValueError, match="non-empty"):
        dsb_score(truth, pred, thresholds=[])
    with pytest.raises(ValueError, match=r"\(10, 12\).*\(10, 11\)"):
        dsb_score(truth, pred[:, :-1])
    with pytest.raises(ValueError, match=r"\(10, 12\).*\(10, 11\)"):
        instance_metrics(truth, pred[:, :-1])


def test_default_thresholds_are_the_dsb_ones():
    np.testing.assert_allclose(DSB_THRESHOLDS, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95])
    assert not DSB_THRESHOLDS.flags.writeable


def test_instance_metrics_is_a_frozen_record():
    m = instance_metrics(np.array([[0, 1]]), np.array([[0, 1]]))
    assert list(m.as_dict()) == list(INSTANCE_FIELDS)
    assert isinstance(m.n_true, int) and isinstance(m.dsb_score, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.ap50 = 0.0  # type: ignore[misc]


# --------------------------------------------------------------------------- DSB score, cross-checks


def reference_dsb(truth: np.ndarray, pred: np.ndarray, thresholds=DSB_THRESHOLDS) -> tuple[float, float]:
    """DSB score and f1 at 0.5 with an explicit maximum one-to-one matching at each threshold."""
    iou = brute_force_iou(truth, pred)
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        return 1.0, 1.0
    scores = []
    f1_50 = None
    for t in thresholds:
        allowed = iou > t + 1e-12
        if allowed.size:
            rows, cols = linear_sum_assignment(allowed, maximize=True)
            tp = int(allowed[rows, cols].sum())
        else:
            tp = 0
        fp, fn = n_pred - tp, n_true - tp
        scores.append(tp / (tp + fp + fn))
        if f1_50 is None:
            f1_50 = 2 * tp / (2 * tp + fp + fn)
    return float(np.mean(scores)), float(f1_50)


@pytest.mark.parametrize("seed", range(8))
def test_dsb_matches_a_one_to_one_matching_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    truth = random_rectangles(rng, (48, 48), 10, np.arange(1, 11) * 3)
    pred = perturb(rng, truth)
    iou = iou_matrix(truth, pred)
    # Above 0.5 every object has at most one partner: what makes counting pairs exact.
    assert (np.sum(iou > 0.5, axis=0) <= 1).all() and (np.sum(iou > 0.5, axis=1) <= 1).all()
    expected_dsb, expected_f1 = reference_dsb(truth, pred)
    m = instance_metrics(truth, pred)
    assert m.dsb_score == pytest.approx(expected_dsb, abs=1e-12)
    assert m.f1_50 == pytest.approx(expected_f1, abs=1e-12)
    assert dsb_score(truth, pred) == m.dsb_score


# --------------------------------------------------------------------------- evaluate_pairs / summarise


def three_pairs() -> tuple[list[np.ndarray], list[np.ndarray]]:
    truth_a, pred_a = shifted_rectangles(8, 8, 2)  # IoU 0.6, dsb 0.2
    truth_b = np.zeros((6, 6), np.uint16)
    truth_b[1:3, 1:3] = 5
    pred_b = truth_b * 2  # perfect, dsb 1
    truth_c = np.zeros((4, 4), np.uint16)
    pred_c = np.zeros((4, 4), np.uint16)
    pred_c[0, 0] = 1  # one false positive on an empty image, dsb 0
    return [truth_a, truth_b, truth_c], [pred_a, pred_b, pred_c]


def test_evaluate_pairs_rows_match_the_single_image_functions():
    truths, preds = three_pairs()
    frame = evaluate_pairs(truths, preds, ids=["a", "b", "c"])
    assert list(frame.columns) == ["image_id", *METRIC_COLUMNS]
    assert frame["image_id"].tolist() == ["a", "b", "c"]
    for row, truth, pred in zip(frame.itertuples(index=False), truths, preds):
        expected = {**pixel_metrics(pred > 0, truth > 0).as_dict(), **instance_metrics(truth, pred).as_dict()}
        assert {c: getattr(row, c) for c in METRIC_COLUMNS} == pytest.approx(expected)
    assert frame["dsb_score"].tolist() == pytest.approx([0.2, 1.0, 0.0])
    assert frame["count_error"].tolist() == [0, 0, 1]
    # Image a: 8x8 squares shifted by 2 -> tp 48, fp 16, fn 16 -> pixel IoU 48/80.
    assert frame.loc[0, "iou"] == pytest.approx(0.6)


def test_evaluate_pairs_default_ids_and_empty_input():
    truths, preds = three_pairs()
    assert evaluate_pairs(truths, preds)["image_id"].tolist() == [0, 1, 2]
    empty = evaluate_pairs([], [])
    assert len(empty) == 0 and list(empty.columns) == ["image_id", *METRIC_COLUMNS]


def test_evaluate_pairs_validation():
    truths, preds = three_pairs()
    with pytest.raises(ValueError, match="3 truth .* 2 predicted"):
        evaluate_pairs(truths, preds[:2])
    with pytest.raises(ValueError, match="2 ids for 3"):
        evaluate_pairs(truths, preds, ids=["a", "b"])
    with pytest.raises(ValueError, match=r"image 'b'.*\(6, 6\).*\(6, 5\)"):
        evaluate_pairs(truths, [preds[0], preds[1][:, :5], preds[2]], ids=["a", "b", "c"])


def test_summarise_means_and_intervals():
    truths, preds = three_pairs()
    frame = evaluate_pairs(truths, preds, ids=["a", "b", "c"])
    frame["method"] = "components"  # text columns are skipped
    frame["flag"] = True  # boolean columns too
    summary = summarise(frame)
    assert summary.index.tolist() == list(METRIC_COLUMNS)
    assert list(summary.columns) == ["mean", "ci_low", "ci_high", "n"]
    assert summary.loc["dsb_score", "mean"] == pytest.approx((0.2 + 1.0 + 0.0) / 3)
    assert (summary["n"] == 3).all()
    assert (summary["ci_low"] <= summary["mean"] + 1e-12).all()
    assert (summary["mean"] <= summary["ci_high"] + 1e-12).all()
    low, high = bootstrap_ci(frame["dsb_score"].to_numpy())
    assert (summary.loc["dsb_score", "ci_low"], summary.loc["dsb_score", "ci_high"]) == (low, high)


def test_summarise_drops_nan_values():
    frame = pd.DataFrame({"image_id": ["a", "b", "c"], "x": [0.2, np.nan, 0.4], "y": [np.nan] * 3})
    summary = summarise(frame)
    assert summary.loc["x", "mean"] == pytest.approx(0.3) and summary.loc["x", "n"] == 2
    assert np.isnan(summary.loc["y", "mean"]) and summary.loc["y", "n"] == 0


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_the_mean_and_is_deterministic():
    values = np.random.default_rng(3).uniform(0, 1, 30)
    low, high = bootstrap_ci(values, seed=7)
    assert low < values.mean() < high
    assert bootstrap_ci(values, seed=7) == (low, high)
    assert bootstrap_ci(values, seed=8) != (low, high)


def test_bootstrap_ci_narrows_with_more_data():
    rng = np.random.default_rng(5)
    widths = []
    for n in (10, 100, 1000):
        low, high = bootstrap_ci(rng.uniform(0, 1, n), n_boot=1000)
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2] > 0
    # Roughly 1/sqrt(n): the standard error of a U(0,1) mean is 0.289/sqrt(n),
    # so a 95% interval is about 2 * 1.96 * 0.289 / sqrt(1000) = 0.036 wide.
    assert widths[2] == pytest.approx(2 * 1.96 * np.sqrt(1 / 12) / np.sqrt(1000), rel=0.2)


def test_bootstrap_ci_widens_with_confidence():
    values = np.random.default_rng(9).normal(size=50)
    low90, high90 = bootstrap_ci(values, confidence=0.90)
    low99, high99 = bootstrap_ci(values, confidence=0.99)
    assert low99 < low90 < high90 < high99


@pytest.mark.parametrize("values", [[0.3], [0.3, 0.3, 0.3], [1.0] * 10])
def test_bootstrap_ci_of_constant_values_is_a_point(values):
    assert bootstrap_ci(values) == (values[0], values[0])


@pytest.mark.parametrize(
    ("values", "kwargs", "message"),
    [
        ([], {}, "non-empty"),
        ([[0.1, 0.2]], {}, "1-D"),
        ([0.1, np.nan], {}, "finite"),
        ([0.1, 0.2], {"n_boot": 0}, "n_boot"),
        ([0.1, 0.2], {"confidence": 1.0}, "confidence"),
        ([0.1, 0.2], {"confidence": 0.0}, "confidence"),
    ],
)
def test_bootstrap_ci_validation(values, kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(values, **kwargs)
