"""Scoring segmentations: pixel metrics of foreground masks, instance metrics of
label images (the 2018 Data Science Bowl score), per-image tables and bootstrap
confidence intervals.

Everything here is a pure numpy / scipy / pandas function; nothing needs a model.

Conventions
-----------
Pixel metrics (:class:`PixelMetrics`) come from the confusion counts ``tp``,
``fp``, ``fn``, ``tn`` of a predicted against a true foreground mask. A ratio
whose denominator is zero is defined explicitly rather than left as NaN:

* when prediction and truth are **both empty** (no foreground pixel in either),
  precision, recall, IoU and Dice are 1.0: nothing was to be found and nothing
  was wrongly found;
* any **other** zero denominator gives 0.0 (e.g. precision of an empty
  prediction against a non-empty truth, recall of a non-empty prediction
  against an empty truth).

The background IoU inside ``mean_iou`` follows the same rule with the classes
swapped (1.0 when neither mask has a background pixel).

Instance metrics take label images: 0 is background, every positive integer is
one object; labels need not be consecutive and the label values of truth and
prediction are unrelated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .validation import positive_int

#: IoU thresholds of the 2018 Data Science Bowl score: 0.50, 0.55, ..., 0.95.
DSB_THRESHOLDS: np.ndarray = np.round(np.arange(0.5, 1.0, 0.05), 10)
DSB_THRESHOLDS.setflags(write=False)

#: Thresholds are rounded to this many decimals before comparison (see :func:`dsb_score`).
_THRESHOLD_DECIMALS = 10


# --------------------------------------------------------------------------- pixels


@dataclass(frozen=True)
class PixelMetrics:
    """Pixel-wise scores of a foreground prediction (a frozen record).

    Attributes
    ----------
    accuracy : float
        ``(tp + tn) / (tp + fp + fn + tn)``.
    precision : float
        ``tp / (tp + fp)``.
    recall : float
        ``tp / (tp + fn)``.
    iou : float
        Foreground IoU (Jaccard), ``tp / (tp + fp + fn)``.
    dice : float
        ``2 tp / (2 tp + fp + fn)``.
    mean_iou : float
        Two-class mean IoU: the mean of the foreground IoU and the background
        IoU ``tn / (tn + fp + fn)``.

    Notes
    -----
    Zero denominators follow the module conventions: 1.0 when prediction and
    truth are both empty, 0.0 otherwise.
    """

    accuracy: float
    precision: float
    recall: float
    iou: float
    dice: float
    mean_iou: float

    def as_dict(self) -> dict[str, float]:
        """The scores as a ``{name: value}`` dict, in field order."""
        return asdict(self)

    @classmethod
    def from_counts(cls, tp: int, fp: int, fn: int, tn: int) -> PixelMetrics:
        """Scores from confusion counts.

        Parameters
        ----------
        tp, fp, fn, tn : int
            True positive, false positive, false negative and true negative
            pixel counts; non-negative, not all zero.

        Returns
        -------
        PixelMetrics

        Examples
        --------
        >>> m = PixelMetrics.from_counts(tp=1, fp=1, fn=1, tn=1)
        >>> m.accuracy, m.precision, m.dice, round(m.iou, 4)
        (0.5, 0.5, 0.5, 0.3333)
        >>> PixelMetrics.from_counts(0, 0, 0, 4).iou  # both empty
        1.0
        """
        counts = (tp, fp, fn, tn)
        if any(c < 0 for c in counts):
            raise ValueError(f"confusion counts must be non-negative, got tp={tp}, fp={fp}, fn={fn}, tn={tn}")
        total = tp + fp + fn + tn
        if total == 0:
            raise ValueError("confusion counts are all zero: there are no pixels to score")
        fg_iou = _ratio(tp, tp + fp + fn, both_empty=tp + fp + fn == 0)
        bg_iou = _ratio(tn, tn + fp + fn, both_empty=tn + fp + fn == 0)
        return cls(
            accuracy=(tp + tn) / total,
            precision=_ratio(tp, tp + fp, both_empty=tp + fp + fn == 0),
            recall=_ratio(tp, tp + fn, both_empty=tp + fp + fn == 0),
            iou=fg_iou,
            dice=_ratio(2 * tp, 2 * tp + fp + fn, both_empty=tp + fp + fn == 0),
            mean_iou=(fg_iou + bg_iou) / 2,
        )


def _ratio(numerator: float, denominator: float, *, both_empty: bool) -> float:
    """``numerator / denominator``; 1.0 if both masks are empty, else 0.0 on a zero denominator."""
    if both_empty:
        return 1.0
    if denominator == 0:
        return 0.0
    return float(numerator) / float(denominator)


def _as_mask(array: ArrayLike, name: str) -> np.ndarray:
    mask = np.asarray(array)
    if mask.dtype == bool:
        return mask
    if not (np.issubdtype(mask.dtype, np.number)):
        raise ValueError(f"{name} must be a boolean or 0/1 array, got dtype {mask.dtype}")
    if mask.size and not np.all((mask == 0) | (mask == 1)):
        bad = np.unique(mask[(mask != 0) & (mask != 1)])[:5].tolist()
        raise ValueError(f"{name} must be a boolean or 0/1 array, found values such as {bad}")
    return mask.astype(bool)


def _check_shapes(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{a_name} has shape {a.shape} but {b_name} has shape {b.shape}; they must match")
    if a.size == 0:
        raise ValueError(f"{a_name} and {b_name} are empty arrays (shape {a.shape}): there are no pixels to score")


def pixel_counts(pred: ArrayLike, truth: ArrayLike) -> tuple[int, int, int, int]:
    """Confusion counts of a predicted against a true foreground mask.

    Parameters
    ----------
    pred, truth : array_like of bool or of 0/1, same shape
        Foreground masks (any number of dimensions, at least one pixel).

    Returns
    -------
    tp, fp, fn, tn : int
        Pixels in both; in ``pred`` only; in ``truth`` only; in neither.

    Raises
    ------
    ValueError
        If the shapes differ (the message names both), the arrays hold no
        pixel, or a value is neither 0 nor 1.

    Examples
    --------
    >>> pixel_counts([[1, 1], [0, 0]], [[1, 0], [1, 0]])
    (1, 1, 1, 1)
    """
    p = _as_mask(pred, "pred")
    t = _as_mask(truth, "truth")
    _check_shapes(p, t, "pred", "truth")
    tp = int(np.count_nonzero(p & t))
    fp = int(np.count_nonzero(p)) - tp
    fn = int(np.count_nonzero(t)) - tp
    tn = int(p.size) - tp - fp - fn
    return tp, fp, fn, tn


def pixel_metrics(pred: ArrayLike, truth: ArrayLike) -> PixelMetrics:
    """Pixel metrics of one image.

    Parameters
    ----------
    pred, truth : array_like of bool or of 0/1, same shape
        Predicted and true foreground masks.

    Returns
    -------
    PixelMetrics
        With the zero-denominator conventions of the module (both empty: 1.0).

    Examples
    --------
    >>> m = pixel_metrics([[1, 1], [0, 0]], [[1, 0], [1, 0]])
    >>> m.accuracy, m.recall, round(m.mean_iou, 4)
    (0.5, 0.5, 0.3333)
    """
    return PixelMetrics.from_counts(*pixel_counts(pred, truth))


def _pair_counts(pairs: Iterable[tuple[ArrayLike, ArrayLike]]) -> list[tuple[int, int, int, int]]:
    counts = []
    for i, pair in enumerate(pairs):
        try:
            pred, truth = pair
        except (TypeError, ValueError):
            raise ValueError(f"pair {i} is not a (pred, truth) pair") from None
        try:
            counts.append(pixel_counts(pred, truth))
        except ValueError as error:
            raise ValueError(f"pair {i}: {error}") from None
    if not counts:
        raise ValueError("no (pred, truth) pairs given")
    return counts


def pixel_metrics_micro(pairs: Iterable[tuple[ArrayLike, ArrayLike]]) -> PixelMetrics:
    """Pixel metrics of many images pooled ("micro" average).

    The confusion counts of all images are summed and the scores computed once,
    so every pixel weighs the same and large images dominate.

    Parameters
    ----------
    pairs : iterable of (pred, truth)
        Foreground masks as for :func:`pixel_metrics`; the shapes may differ
        between pairs but not within one.

    Returns
    -------
    PixelMetrics

    See Also
    --------
    pixel_metrics_mean : every image weighs the same.

    Examples
    --------
    >>> a = ([[1, 1], [0, 0]], [[1, 0], [1, 0]])   # tp=1, fp=1, fn=1, tn=1
    >>> b = ([[1, 1, 1]], [[1, 1, 1]])             # tp=3
    >>> pixel_metrics_micro([a, b]).iou            # 4 / (4 + 1 + 1)
    0.6666666666666666
    """
    totals = np.sum(_pair_counts(pairs), axis=0)
    return PixelMetrics.from_counts(*(int(c) for c in totals))


def pixel_metrics_mean(pairs: Iterable[tuple[ArrayLike, ArrayLike]]) -> PixelMetrics:
    """Per-image pixel metrics averaged over images ("macro" average).

    Each score is computed per image (with the module's empty-mask conventions)
    and then averaged, so every image weighs the same whatever its size.

    Parameters
    ----------
    pairs : iterable of (pred, truth)
        Foreground masks as for :func:`pixel_metrics`.

    Returns
    -------
    PixelMetrics

    See Also
    --------
    pixel_metrics_micro : every pixel weighs the same.

    Examples
    --------
    >>> a = ([[1, 1], [0, 0]], [[1, 0], [1, 0]])   # IoU 1/3
    >>> b = ([[1, 1, 1]], [[1, 1, 1]])             # IoU 1
    >>> round(pixel_metrics_mean([a, b]).iou, 4)   # (1/3 + 1) / 2
    0.6667
    """
    per_image = [PixelMetrics.from_counts(*c).as_dict() for c in _pair_counts(pairs)]
    means = {name: float(np.mean([row[name] for row in per_image])) for name in per_image[0]}
    return PixelMetrics(**means)


# --------------------------------------------------------------------------- instances


def _as_labels(array: ArrayLike, name: str) -> np.ndarray:
    labels = np.asarray(array)
    if labels.dtype == bool:
        return labels.astype(np.uint8)
    if np.issubdtype(labels.dtype, np.floating):
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise ValueError(f"{name} must hold integer labels, got non-integer values (dtype {labels.dtype})")
        labels = labels.astype(np.int64)
    elif not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be an integer label image, got dtype {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} has negative labels (min {labels.min()}); 0 is background, objects are > 0")
    return labels


def _dense(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels mapped to ``0..n`` (0 stays background, objects in ascending label order) and ``n``."""
    flat = labels.ravel()
    top = int(flat.max())
    if top <= max(flat.size, 1 << 16):
        # Lookup table: linear time, no sort.
        present = np.zeros(top + 1, dtype=bool)
        present[flat] = True
        present[0] = True  # index 0 is background even when no pixel is
        lut = np.cumsum(present, dtype=np.int64) - 1
        return lut[flat], int(lut[-1])
    values, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.astype(np.int64).ravel()
    if values[0] == 0:
        return inverse, int(values.size - 1)
    return inverse + 1, int(values.size)  # no background pixel: keep index 0 empty


def _iou(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    t, n_true = _dense(truth)
    p, n_pred = _dense(pred)
    joint = np.bincount(t * (n_pred + 1) + p, minlength=(n_true + 1) * (n_pred + 1))
    joint = joint.reshape(n_true + 1, n_pred + 1)
    area_true = joint.sum(axis=1)[1:]
    area_pred = joint.sum(axis=0)[1:]
    intersection = joint[1:, 1:].astype(np.float64)
    union = area_true[:, None] + area_pred[None, :] - joint[1:, 1:]
    # Every object has at least one pixel, so every union is positive.
    return intersection / union


def iou_matrix(truth_labels: ArrayLike, pred_labels: ArrayLike) -> np.ndarray:
    """IoU of every true object with every predicted object.

    Computed in one pass from the joint histogram of the two label images
    (``np.bincount`` of the paired dense labels), not by looping over pairs.

    Parameters
    ----------
    truth_labels, pred_labels : array_like of int, same shape
        Label images: 0 is background, each positive value one object. Labels
        need not be consecutive.

    Returns
    -------
    ndarray of float64, shape (n_true, n_pred)
        ``iou[i, j]`` is the IoU of the ``i``-th smallest true label and the
        ``j``-th smallest predicted label (``np.unique`` order).

    Raises
    ------
    ValueError
        If the shapes differ, the images are empty arrays, or a label is
        negative or not an integer.

    Examples
    --------
    >>> truth = np.array([[0, 7, 7, 7, 7]])
    >>> pred = np.array([[3, 3, 3, 9, 9]])
    >>> iou_matrix(truth, pred)
    array([[0.4, 0.5]])
    """
    truth = _as_labels(truth_labels, "truth_labels")
    pred = _as_labels(pred_labels, "pred_labels")
    _check_shapes(truth, pred, "truth_labels", "pred_labels")
    return _iou(truth, pred)


def _check_thresholds(thresholds: ArrayLike) -> np.ndarray:
    values = np.asarray(thresholds, dtype=np.float64)
    if values.ndim == 0:
        values = values[None]
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"thresholds must be a non-empty 1-D sequence, got shape {values.shape}")
    values = np.round(values, _THRESHOLD_DECIMALS)
    if not np.all(np.isfinite(values)) or values.min() < 0.5 or values.max() > 1.0:
        raise ValueError(
            "thresholds must lie in [0.5, 1]: below 0.5 an object can match several others and "
            f"counting pairs above the threshold is no longer a one-to-one matching; got {values.tolist()}"
        )
    return values


def _precisions(iou: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold: ``TP / (TP + FP + FN)`` and ``2 TP / (2 TP + FP + FN)``."""
    n_true, n_pred = iou.shape
    if n_true == 0 and n_pred == 0:
        ones = np.ones(thresholds.size)
        return ones, ones
    # For t >= 0.5 each object has at most one partner with IoU > t, so the
    # number of such pairs is the number of one-to-one matches.
    values = np.sort(iou.ravel())
    tp = values.size - np.searchsorted(values, thresholds, side="right")
    fp = n_pred - tp
    fn = n_true - tp
    return tp / (tp + fp + fn), 2 * tp / (2 * tp + fp + fn)


def dsb_score(
    truth_labels: ArrayLike,
    pred_labels: ArrayLike,
    thresholds: ArrayLike = DSB_THRESHOLDS,
) -> float:
    """The 2018 Data Science Bowl score of one image.

    At each IoU threshold ``t`` a true and a predicted object match when their
    IoU is strictly greater than ``t``. With ``TP`` the matches, ``FP`` the
    unmatched predictions and ``FN`` the unmatched true objects, the precision
    at ``t`` is ``TP / (TP + FP + FN)``; the score is its mean over thresholds.

    Parameters
    ----------
    truth_labels, pred_labels : array_like of int, same shape
        Label images (0 background, positive values objects).
    thresholds : array_like of float, default 0.50, 0.55, ..., 0.95
        IoU thresholds, each in ``[0.5, 1]``. For ``t >= 0.5`` an object can
        overlap at most one object of the other image with IoU above ``t``
        (it would need more than half of its pixels in each), so counting the
        pairs with IoU above ``t`` is the exact one-to-one matching.

    Returns
    -------
    float
        In ``[0, 1]``. Both images without objects: 1.0; exactly one without
        objects: 0.0.

    Notes
    -----
    Thresholds are rounded to 10 decimals before the comparison, so that the
    drift of ``np.arange(0.5, 1.0, 0.05)`` (``0.6000000000000001``) or of other
    float arithmetic cannot decide a tie: an IoU exactly equal to a threshold
    (such as 6/10 against 0.6) never matches at that threshold.

    Examples
    --------
    >>> truth = np.zeros((8, 10), int); truth[:, 0:8] = 1
    >>> pred = np.zeros((8, 10), int); pred[:, 2:10] = 5   # IoU 48/80 = 0.6
    >>> dsb_score(truth, pred)                              # matched at 0.50, 0.55
    0.2
    """
    truth = _as_labels(truth_labels, "truth_labels")
    pred = _as_labels(pred_labels, "pred_labels")
    _check_shapes(truth, pred, "truth_labels", "pred_labels")
    precision, _ = _precisions(_iou(truth, pred), _check_thresholds(thresholds))
    return float(np.mean(precision))


@dataclass(frozen=True)
class InstanceMetrics:
    """Object-level scores of one label image (a frozen record).

    Attributes
    ----------
    dsb_score : float
        :func:`dsb_score` over thresholds 0.50-0.95.
    ap50 : float
        ``TP / (TP + FP + FN)`` at IoU threshold 0.5.
    f1_50 : float
        ``2 TP / (2 TP + FP + FN)`` at IoU threshold 0.5.
    n_true, n_pred : int
        Number of true and predicted objects.
    count_error : int
        ``n_pred - n_true`` (positive: too many objects predicted).

    Notes
    -----
    When neither image has an object, ``dsb_score``, ``ap50`` and ``f1_50`` are
    1.0; when exactly one has none they are 0.0.
    """

    dsb_score: float
    ap50: float
    f1_50: float
    n_true: int
    n_pred: int
    count_error: int

    def as_dict(self) -> dict[str, float | int]:
        """The scores as a ``{name: value}`` dict, in field order."""
        return asdict(self)


def instance_metrics(truth_labels: ArrayLike, pred_labels: ArrayLike) -> InstanceMetrics:
    """Object-level scores of one predicted label image.

    Parameters
    ----------
    truth_labels, pred_labels : array_like of int, same shape
        Label images (0 background, positive values objects).

    Returns
    -------
    InstanceMetrics

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 0, 0]])
    >>> pred = np.array([[4, 4, 0, 6, 6]])   # one hit, one extra object
    >>> m = instance_metrics(truth, pred)
    >>> m.dsb_score, m.ap50, round(m.f1_50, 4), m.count_error
    (0.5, 0.5, 0.6667, 1)
    """
    truth = _as_labels(truth_labels, "truth_labels")
    pred = _as_labels(pred_labels, "pred_labels")
    _check_shapes(truth, pred, "truth_labels", "pred_labels")
    iou = _iou(truth, pred)
    precision, _ = _precisions(iou, DSB_THRESHOLDS)
    ap50, f1_50 = _precisions(iou, np.array([0.5]))
    n_true, n_pred = iou.shape
    return InstanceMetrics(
        dsb_score=float(np.mean(precision)),
        ap50=float(ap50[0]),
        f1_50=float(f1_50[0]),
        n_true=int(n_true),
        n_pred=int(n_pred),
        count_error=int(n_pred - n_true),
    )


# --------------------------------------------------------------------------- tables


#: Metric columns of :func:`evaluate_pairs`, in order.
METRIC_COLUMNS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "iou",
    "dice",
    "mean_iou",
    "dsb_score",
    "ap50",
    "f1_50",
    "n_true",
    "n_pred",
    "count_error",
)


def evaluate_pairs(
    truth_labels_list: Sequence[ArrayLike],
    pred_labels_list: Sequence[ArrayLike],
    ids: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """Pixel and instance metrics of many images, one row per image.

    Parameters
    ----------
    truth_labels_list, pred_labels_list : sequence of array_like of int
        True and predicted label images, paired by position; each pair has one
        shape. Pixel metrics use the foregrounds ``labels > 0``.
    ids : sequence, optional
        Image identifiers, one per pair; default ``0, 1, ...``.

    Returns
    -------
    DataFrame
        Columns ``image_id`` then :data:`METRIC_COLUMNS` (the fields of
        :class:`PixelMetrics` and :class:`InstanceMetrics`), default integer
        index.

    Raises
    ------
    ValueError
        If the lists (or ``ids``) differ in length, or a pair is invalid (the
        message names the image).

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2]])
    >>> frame = evaluate_pairs([truth], [truth * 3], ids=["a"])
    >>> frame.loc[0, ["image_id", "iou", "dsb_score", "n_pred"]].tolist()
    ['a', 1.0, 1.0, 2]
    """
    truths = list(truth_labels_list)
    preds = list(pred_labels_list)
    if len(truths) != len(preds):
        raise ValueError(f"got {len(truths)} truth label images but {len(preds)} predicted ones")
    image_ids = list(range(len(truths))) if ids is None else list(ids)
    if len(image_ids) != len(truths):
        raise ValueError(f"got {len(image_ids)} ids for {len(truths)} image pairs")
    rows = []
    for image_id, truth_in, pred_in in zip(image_ids, truths, preds):
        try:
            truth = _as_labels(truth_in, "truth_labels")
            pred = _as_labels(pred_in, "pred_labels")
            _check_shapes(truth, pred, "truth_labels", "pred_labels")
        except ValueError as error:
            raise ValueError(f"image {image_id!r}: {error}") from None
        pixels = pixel_metrics(pred > 0, truth > 0)
        objects = instance_metrics(truth, pred)
        rows.append({"image_id": image_id, **pixels.as_dict(), **objects.as_dict()})
    return pd.DataFrame(rows, columns=["image_id", *METRIC_COLUMNS])


def bootstrap_ci(
    values: ArrayLike,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    ``n_boot`` resamples of the values (with replacement, same size) are drawn
    with ``numpy.random.default_rng(seed)``; the interval is given by the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of their
    means.

    Parameters
    ----------
    values : array_like of float, shape (n,)
        One value per image; finite, at least one.
    n_boot : int, default 2000
        Number of bootstrap resamples (>= 1).
    confidence : float, default 0.95
        Coverage, strictly between 0 and 1.
    seed : int, default 0
        Seed of the resampling: the same seed gives the same interval.

    Returns
    -------
    low, high : float

    Examples
    --------
    >>> low, high = bootstrap_ci([0.2, 0.4, 0.6, 0.8])
    >>> low < 0.5 < high
    True
    >>> bootstrap_ci([0.3, 0.3, 0.3])
    (0.3, 0.3)
    """
    data = np.asarray(values, dtype=np.float64)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"values must be a non-empty 1-D sequence, got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise ValueError("values must be finite (drop NaN or infinite values first)")
    positive_int(n_boot, "n_boot")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    rng = np.random.default_rng(seed)
    n = data.size
    means = np.empty(int(n_boot))
    # Chunks keep the (resamples x n) index array small for long inputs.
    chunk = max(1, 2_000_000 // n)
    for start in range(0, int(n_boot), chunk):
        stop = min(int(n_boot), start + chunk)
        means[start:stop] = data[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    low, high = float(low), float(high)
    if np.all(data == data[0]):  # the means may differ from the value in the last bit
        low = high = float(data[0])
    return low, high


def summarise(frame: pd.DataFrame, *, confidence: float = 0.95, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean and bootstrap confidence interval of every metric column.

    Parameters
    ----------
    frame : DataFrame
        Per-image metrics, as returned by :func:`evaluate_pairs`. Every numeric
        column except ``image_id`` is summarised (boolean and text columns,
        such as a ``method`` label, are skipped); NaN values are dropped per
        column.
    confidence, n_boot, seed
        Passed to :func:`bootstrap_ci`.

    Returns
    -------
    DataFrame
        Indexed by metric name (``metric``), columns ``mean``, ``ci_low``,
        ``ci_high`` and ``n`` (images used). Rows of all-NaN columns hold NaN
        and ``n = 0``.

    Notes
    -----
    Only per-image means ("macro" averages) can be derived from a per-image
    table: the pooled-pixel ("micro") metrics need the masks themselves, see
    :func:`pixel_metrics_micro`. Summarise one method at a time when ``frame``
    stacks several.

    Examples
    --------
    >>> truth = np.array([[1, 1, 0, 2]])
    >>> frame = evaluate_pairs([truth, truth], [truth, truth * 0])
    >>> summarise(frame).loc["dsb_score", "mean"]
    0.5
    """
    rows = []
    for column in frame.columns:
        if column == "image_id":
            continue
        series = frame[column]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            continue
        values = series.dropna().to_numpy(dtype=np.float64)
        if values.size == 0:
            rows.append({"metric": column, "mean": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0})
            continue
        low, high = bootstrap_ci(values, n_boot=n_boot, confidence=confidence, seed=seed)
        rows.append(
            {"metric": column, "mean": float(values.mean()), "ci_low": low, "ci_high": high, "n": int(values.size)}
        )
    return pd.DataFrame(rows, columns=["metric", "mean", "ci_low", "ci_high", "n"]).set_index("metric")
