"""Verdict rules of the claims audit."""

from __future__ import annotations

import pytest

from nucleilib import audit


@pytest.mark.parametrize(
    ("claimed", "measured", "tolerance", "interval", "expected"),
    [
        (0.882, 0.887, 0.02, None, audit.REPRODUCED),
        (0.882, 0.85, 0.02, None, audit.NOT_REPRODUCED),
        (0.85, 0.80, 0.0, (0.78, 0.86), audit.REPRODUCED),
        (0.88, 0.80, 0.0, (0.78, 0.86), audit.NOT_REPRODUCED),
        (0.87, 0.80, 0.02, (0.78, 0.86), audit.REPRODUCED),
    ],
)
def test_point_verdict(claimed, measured, tolerance, interval, expected) -> None:
    assert audit.point_verdict(claimed, measured, tolerance=tolerance, interval=interval) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"claimed": float("nan"), "measured": 0.5, "tolerance": 0.1}, "claimed must be a finite"),
        ({"claimed": 0.5, "measured": 0.5, "tolerance": -1}, "tolerance must be >= 0"),
        ({"claimed": 0.5, "measured": 0.5, "tolerance": 0, "interval": (0.6, 0.4)}, "low <= high"),
    ],
)
def test_point_verdict_refuses_bad_input(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        audit.point_verdict(**kwargs)


def test_range_verdict_threshold_and_validation() -> None:
    assert audit.range_verdict(0.9) == audit.REPRODUCED
    assert audit.range_verdict(0.89) == audit.NOT_REPRODUCED
    assert audit.range_verdict(0.5, min_share=0.5) == audit.REPRODUCED
    with pytest.raises(ValueError, match=r"share_inside must be in \[0, 1\]"):
        audit.range_verdict(1.5)


def test_mean_sd_verdict() -> None:
    assert audit.mean_sd_verdict(10, 1.58, [8, 9, 10, 11, 12]) == audit.REPRODUCED
    assert audit.mean_sd_verdict(10, 5, [8, 9, 10, 11, 12]) == audit.NOT_REPRODUCED
    assert audit.mean_sd_verdict(20, 1.58, [8, 9, 10, 11, 12]) == audit.NOT_REPRODUCED
    with pytest.raises(ValueError, match="at least two"):
        audit.mean_sd_verdict(1, 1, [1])


def test_audit_row_refuses_an_unknown_verdict() -> None:
    row = audit.AuditRow("EDA", "x", "1", "2", audit.UNDEFINED, "rule", "01_eda.html")
    assert row.as_dict()["verdict"] == audit.UNDEFINED
    with pytest.raises(ValueError, match="unknown verdict 'plausible'"):
        audit.AuditRow("EDA", "x", "1", "2", "plausible", "rule", "01_eda.html")


@pytest.mark.parametrize(
    ("curve", "by_epoch", "final_epoch", "expected"),
    [
        ([0.5, 0.8, 0.9, 0.9], 2, 4, 0.75),  # rising (IoU): 0.3 of 0.4
        ([1.0, 0.4, 0.2], 2, 3, 0.75),  # falling (loss): 0.6 of 0.8
        ([0.5, 0.6, 0.9, 0.8], 3, 4, 4 / 3),  # overshoot before the kept epoch
        ([0.5, 0.4, 0.9], 2, 3, -0.25),  # worse than epoch 1 at first
        ([0.5, 0.7], 2, 2, 1.0),
    ],
)
def test_progress_share(curve, by_epoch, final_epoch, expected) -> None:
    assert audit.progress_share(curve, by_epoch=by_epoch, final_epoch=final_epoch) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"by_epoch": 5, "final_epoch": 3}, "by_epoch"),
        ({"by_epoch": 2, "final_epoch": 9}, "number of epochs"),
        ({"by_epoch": 0, "final_epoch": 2}, "by_epoch"),
    ],
)
def test_progress_share_refuses_bad_epochs(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        audit.progress_share([0.1, 0.2, 0.3], **kwargs)


def test_progress_share_refuses_a_flat_curve() -> None:
    with pytest.raises(ValueError, match="does not change"):
        audit.progress_share([0.3, 0.5, 0.3], by_epoch=2, final_epoch=3)


def test_early_progress_verdict() -> None:
    assert audit.early_progress_verdict([0.5, 0.9]) == audit.REPRODUCED
    assert audit.early_progress_verdict([0.49, 0.9]) == audit.NOT_REPRODUCED
    assert audit.early_progress_verdict([0.6], min_share=0.7) == audit.NOT_REPRODUCED
    with pytest.raises(ValueError, match="no progress shares"):
        audit.early_progress_verdict([])


@pytest.mark.parametrize(
    ("claimed", "measured", "expected"),
    [
        ((0.0753, 0.0717), (0.81, 0.68), audit.REPRODUCED),
        ((0.0753, 0.0717), (0.60, 0.70), audit.NOT_REPRODUCED),
        ((0.0753, 0.0717), (0.70, 0.70), audit.NOT_REPRODUCED),
        ((0.5, 0.5), (0.7, 0.7), audit.REPRODUCED),
        ((0.1, 0.2), (3.0, 4.0), audit.REPRODUCED),
    ],
)
def test_order_verdict(claimed, measured, expected) -> None:
    assert audit.order_verdict(claimed, measured) == expected


def test_majority_verdict() -> None:
    assert audit.majority_verdict([True, True, False]) == audit.REPRODUCED
    assert audit.majority_verdict([True, False]) == audit.NOT_REPRODUCED
    assert audit.majority_verdict([True, False], min_share=0.4) == audit.REPRODUCED
    with pytest.raises(ValueError, match="no settings"):
        audit.majority_verdict([])
