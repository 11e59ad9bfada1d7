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
