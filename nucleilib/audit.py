"""Verdicts for the claims audit: a seed paper's number against our measurement.

Each rule is a pure function returning one of :data:`VERDICTS`, so that the
audit table is computed from the measurements rather than typed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
UNDEFINED = "undefined in the paper"
NOT_TESTABLE = "not testable here"
#: ``NOT_TESTABLE`` is for claims tied to hardware we do not have (an RTX 3060).
VERDICTS: tuple[str, ...] = (REPRODUCED, NOT_REPRODUCED, UNDEFINED, NOT_TESTABLE)


def _finite(value: float, name: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return value


def point_verdict(claimed: float, measured: float, *, tolerance: float,
                  interval: tuple[float, float] | None = None) -> str:
    """Verdict on a single claimed value.

    Reproduced when the claim lies inside our 95% interval widened by
    ``tolerance`` on each side, or, without an interval, when it is within
    ``tolerance`` of our measurement.

    Parameters
    ----------
    claimed, measured : float
    tolerance : float
        Absolute tolerance, ``>= 0``.
    interval : (float, float), optional
        Our confidence interval for the measured value.

    Examples
    --------
    >>> point_verdict(0.882, 0.887, tolerance=0.02)
    'reproduced'
    >>> point_verdict(0.805, 0.70, tolerance=0.02, interval=(0.65, 0.75))
    'not reproduced'
    """
    claimed = _finite(claimed, "claimed")
    measured = _finite(measured, "measured")
    tolerance = _finite(tolerance, "tolerance")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    if interval is not None:
        low, high = (_finite(v, "interval bound") for v in interval)
        if low > high:
            raise ValueError(f"interval must be (low, high) with low <= high, got {interval}")
        inside = low - tolerance <= claimed <= high + tolerance
    else:
        inside = abs(claimed - measured) <= tolerance
    return REPRODUCED if inside else NOT_REPRODUCED


def range_verdict(share_inside: float, *, min_share: float = 0.9) -> str:
    """Verdict on a claimed range ("areas ranged from 8 to 45 pixels").

    A range describes the data when at least ``min_share`` of the measured
    values fall inside it.

    Examples
    --------
    >>> range_verdict(0.059), range_verdict(0.95)
    ('not reproduced', 'reproduced')
    """
    share_inside = _finite(share_inside, "share_inside")
    if not 0 <= share_inside <= 1:
        raise ValueError(f"share_inside must be in [0, 1], got {share_inside}")
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    return REPRODUCED if share_inside >= min_share else NOT_REPRODUCED


def mean_sd_verdict(claimed_mean: float, claimed_sd: float, measured: Sequence[float], *,
                    relative_tolerance: float = 0.25) -> str:
    """Verdict on a claimed "mean +/- SD": both within ``relative_tolerance`` of ours.

    Examples
    --------
    >>> mean_sd_verdict(71, 9, [20, 40, 60, 80, 100])
    'not reproduced'
    """
    values = [_finite(v, "measured value") for v in measured]
    if len(values) < 2:
        raise ValueError("need at least two measured values for a mean and an SD")
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    ok_mean = abs(mean - claimed_mean) <= relative_tolerance * abs(claimed_mean)
    ok_sd = abs(sd - claimed_sd) <= relative_tolerance * abs(claimed_sd)
    return REPRODUCED if ok_mean and ok_sd else NOT_REPRODUCED


@dataclass(frozen=True)
class AuditRow:
    """One claim of the paper, our counterpart and the verdict."""

    section: str
    claim: str
    paper: str
    measured: str
    verdict: str
    rule: str
    link: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; use one of {', '.join(VERDICTS)}")

    def as_dict(self) -> dict[str, str]:
        return asdict(self)
