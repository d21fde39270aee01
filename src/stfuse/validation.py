"""Checks of numeric arguments, shared by every command-line option and constructor that needs one.

``positive_int``/``non_negative_int``/``positive_float``/``non_negative_float`` are ``argparse`` types (a bad
value becomes argparse's one-line error naming the option, exit status 2); :func:`check_positive` is the same
rule for constructors, raising a ``ValueError`` that names the argument. Imports nothing heavy.
"""

from __future__ import annotations

import argparse
import math

__all__ = [
    "check_positive",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
]


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer ≥ 1."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An integer ≥ 0."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    value = float(_number(text, float))
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number ≥ 0."""
    value = float(_number(text, float))
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {text}")
    return value


def check_positive(name: str, value: object, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number > 0 (≥ 0 with ``allow_zero``)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
