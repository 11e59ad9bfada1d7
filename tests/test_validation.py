"""nucleilib.validation: the shared argument checks and their messages."""

from __future__ import annotations

import numpy as np
import pytest

from nucleilib.validation import multiple_of, non_negative_int, one_of, open_unit_interval, positive_int


@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(200)])
def test_positive_int_accepts_positive_integers_as_int(value) -> None:
    out = positive_int(value, "tile")
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [0, -1, True, False, 1.0, 2.5, "3", None, np.float32(4)])
def test_positive_int_refuses_the_rest_naming_argument_and_value(value) -> None:
    with pytest.raises(ValueError, match=r"^tile must be a positive integer, got ") as caught:
        positive_int(value, "tile")
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", [0, 5, np.int32(0)])
def test_non_negative_int_accepts_zero_and_up(value) -> None:
    out = non_negative_int(value, "seed")
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [-1, True, 0.0, "0", None])
def test_non_negative_int_refuses_the_rest(value) -> None:
    with pytest.raises(ValueError, match=r"^seed must be .*, got ") as caught:
        non_negative_int(value, "seed")
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize(("value", "multiple"), [(16, 16), (48, 16), (np.int64(512), 16), (3, 1), (9, 3)])
def test_multiple_of_accepts_positive_multiples(value, multiple: int) -> None:
    out = multiple_of(value, multiple, "size")
    assert out == value and type(out) is int


@pytest.mark.parametrize("value", [0, -16, 8, 40, 48.0, True, "64", None])
def test_multiple_of_refuses_the_rest(value) -> None:
    with pytest.raises(ValueError, match=r"^size must be a positive multiple of 16, got ") as caught:
        multiple_of(value, 16, "size")
    assert repr(value) in str(caught.value)


@pytest.mark.parametrize("value", [0.5, 1e-6, 0.999999, np.float32(0.25), "0.3", 1 / 3])
def test_open_unit_interval_accepts_numbers_strictly_inside(value) -> None:
    out = open_unit_interval(value, "threshold")
    assert type(out) is float and out == pytest.approx(float(value))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (0, "between 0 and 1 \\(exclusive\\), got 0"),
        (1, "between 0 and 1 \\(exclusive\\), got 1"),
        (1.5, "got 1.5"),
        (-0.1, "got -0.1"),
        (float("nan"), "got nan"),
        (float("inf"), "got inf"),
        ("high", "must be a number between 0 and 1, got 'high'"),
        (None, "must be a number between 0 and 1, got None"),
        ([0.5], "must be a number"),
    ],
)
def test_open_unit_interval_refuses_the_rest(value, match: str) -> None:
    with pytest.raises(ValueError, match=r"^threshold .*" + match):
        open_unit_interval(value, "threshold")


def test_one_of_returns_the_choice_or_lists_them() -> None:
    choices = ("components", "watershed", "borders")
    assert one_of("watershed", choices, "separation method") == "watershed"
    assert one_of("b", ["a", "b"], "letter") == "b"
    with pytest.raises(
        ValueError,
        match=r"^unknown separation method 'magic'; choose one of components, watershed, "
        r"borders$",
    ):
        one_of("magic", choices, "separation method")
    with pytest.raises(ValueError, match="unknown separation method None"):
        one_of(None, choices, "separation method")
    with pytest.raises(ValueError, match="'Watershed'"):
        one_of("Watershed", choices, "separation method")  # case matters
