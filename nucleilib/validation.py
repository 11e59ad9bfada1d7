"""Shared checks of arguments, so every function words the same problem the same way.

Each raises :class:`ValueError` naming the argument and the value it got.

Examples
--------
>>> positive_int(3, "tile")
3
>>> positive_int(0, "tile")
Traceback (most recent call last):
ValueError: tile must be a positive integer, got 0
>>> multiple_of(48, 16, "size")
48
>>> open_unit_interval(0.5, "threshold")
0.5
"""

from __future__ import annotations

from typing import Any

import numpy as np


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int if it is a positive integer (not a bool), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(value: Any, name: str) -> int:
    """``value`` as an int if it is an integer >= 0 (not a bool), else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def multiple_of(value: Any, multiple: int, name: str) -> int:
    """``value`` as an int if it is a positive multiple of ``multiple``, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < multiple or value % multiple:
        raise ValueError(f"{name} must be a positive multiple of {multiple}, got {value!r}")
    return int(value)


def open_unit_interval(value: Any, name: str) -> float:
    """``value`` as a float if it lies strictly between 0 and 1, else a ValueError."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
    return number


def one_of(value: Any, choices: tuple[str, ...] | list[str], name: str) -> str:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}")
    return str(value)
