"""Verdicts for the claims audit: a seed paper's number against our measurement.

Each rule is a pure function returning one of :data:`VERDICTS`, so that the
audit table is computed from the measurements rather than typed in. The rules
are registered by name in :data:`RULES`, the names the claim rows of
:mod:`nucleilib.study.claims` use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
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


def point_verdict(
    claimed: float, measured: float, *, tolerance: float, interval: tuple[float, float] | None = None
) -> str:
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


def mean_sd_verdict(
    claimed_mean: float, claimed_sd: float, measured: Sequence[float], *, relative_tolerance: float = 0.25
) -> str:
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


def progress_share(values: Sequence[float], *, by_epoch: int, final_epoch: int) -> float:
    """Share of a training curve's change from epoch 1 to ``final_epoch`` made by ``by_epoch``.

    ``values[0]`` is epoch 1. A share of 0.8 for a validation IoU means that by
    ``by_epoch`` the IoU had covered 80% of the way from its first-epoch value to
    its value at ``final_epoch`` (the kept epoch). Works for curves that fall
    (losses) as for curves that rise (accuracy, IoU).

    Examples
    --------
    >>> progress_share([0.5, 0.8, 0.9, 0.9], by_epoch=2, final_epoch=4)
    0.75
    >>> progress_share([1.0, 0.4, 0.2], by_epoch=2, final_epoch=3)
    0.75
    """
    curve = [_finite(v, "curve value") for v in values]
    if not 1 <= by_epoch <= final_epoch <= len(curve):
        raise ValueError(
            f"need 1 <= by_epoch ({by_epoch}) <= final_epoch ({final_epoch}) <= number of epochs ({len(curve)})"
        )
    total = curve[final_epoch - 1] - curve[0]
    if total == 0:
        raise ValueError("the curve does not change between epoch 1 and the final epoch")
    return round((curve[by_epoch - 1] - curve[0]) / total, 12)


def early_progress_verdict(shares: Sequence[float], *, min_share: float = 0.5) -> str:
    """Verdict on "the metrics improve significantly within the first epochs".

    Reproduced when every curve has made at least ``min_share`` of its change
    (:func:`progress_share`) by then.

    Examples
    --------
    >>> early_progress_verdict([0.88, 0.71]), early_progress_verdict([0.88, 0.3])
    ('reproduced', 'not reproduced')
    """
    values = [_finite(v, "share") for v in shares]
    if not values:
        raise ValueError("no progress shares given")
    if not 0 < min_share <= 1:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    return REPRODUCED if all(v >= min_share for v in values) else NOT_REPRODUCED


def order_verdict(claimed: tuple[float, float], measured: tuple[float, float]) -> str:
    """Verdict on the order of two values ("validation loss below training loss").

    Reproduced when the measured pair is ordered as the claimed pair (ties count
    as a different order unless both are ties).

    Examples
    --------
    >>> order_verdict((0.0753, 0.0717), (0.81, 0.68)), order_verdict((0.0753, 0.0717), (0.6, 0.7))
    ('reproduced', 'not reproduced')
    """
    a, b = (_finite(v, "claimed value") for v in claimed)
    c, d = (_finite(v, "measured value") for v in measured)

    def sign(x: float) -> int:
        return (x > 0) - (x < 0)

    return REPRODUCED if sign(a - b) == sign(c - d) else NOT_REPRODUCED


def majority_verdict(holds: Sequence[bool], *, min_share: float = 0.5) -> str:
    """Verdict on a claim checked in several settings (layers, images): reproduced
    when it holds in more than ``min_share`` of them.

    Examples
    --------
    >>> majority_verdict([True, True, False]), majority_verdict([True, False])
    ('reproduced', 'not reproduced')
    """
    flags = [bool(h) for h in holds]
    if not flags:
        raise ValueError("no settings given")
    if not 0 <= min_share < 1:
        raise ValueError(f"min_share must be in [0, 1), got {min_share}")
    return REPRODUCED if sum(flags) / len(flags) > min_share else NOT_REPRODUCED


def spread_verdict(spread: float, reference: float, *, floor: float = 0.05) -> str:
    """Verdict on "insensitive to X": the spread of a measure over the values of X
    (say, over three data splits) is no wider than its spread over repeats that
    change nothing but chance (seeds), or than ``floor``.

    Examples
    --------
    >>> spread_verdict(0.031, 0.006), spread_verdict(0.08, 0.006)
    ('reproduced', 'not reproduced')
    >>> spread_verdict(0.08, 0.09)
    'reproduced'
    """
    spread = _finite(spread, "spread")
    reference = _finite(reference, "reference")
    floor = _finite(floor, "floor")
    if spread < 0 or reference < 0 or floor < 0:
        raise ValueError(f"spreads and floor must be >= 0, got {spread}, {reference}, {floor}")
    return REPRODUCED if spread <= max(reference, floor) else NOT_REPRODUCED


def undefined_verdict() -> str:
    """The verdict on a claim the paper gives no definition for: :data:`UNDEFINED`."""
    return UNDEFINED


def not_testable_verdict() -> str:
    """The verdict on a claim tied to hardware we do not have: :data:`NOT_TESTABLE`."""
    return NOT_TESTABLE


#: The verdict rules by the name a claim row gives (its ``verdict_rule``).
RULES: Mapping[str, Callable[..., str]] = {
    "point": point_verdict,
    "range": range_verdict,
    "mean_sd": mean_sd_verdict,
    "order": order_verdict,
    "early_progress": early_progress_verdict,
    "majority": majority_verdict,
    "spread": spread_verdict,
    "undefined": undefined_verdict,
    "not_testable": not_testable_verdict,
}


def apply_rule(name: str, **arguments: object) -> str:
    """The verdict of rule ``name`` (a key of :data:`RULES`) on ``arguments``.

    Examples
    --------
    >>> apply_rule("point", claimed=740, measured=664, tolerance=0)
    'not reproduced'
    >>> apply_rule("plausible")
    Traceback (most recent call last):
    ...
    ValueError: unknown verdict rule 'plausible'; use one of point, range, mean_sd, order, early_progress, majority, spread, undefined, not_testable
    """
    if name not in RULES:
        raise ValueError(f"unknown verdict rule {name!r}; use one of {', '.join(RULES)}")
    return RULES[name](**arguments)


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
