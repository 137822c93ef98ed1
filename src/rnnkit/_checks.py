"""Argument checks shared by every public function.

Each helper raises ``ValueError`` (or ``TypeError``) with one message shape:
``<name>=<value!r>: <what was expected>``, so a user sees which argument was wrong,
what they passed and what would have been accepted. Tests match on these texts.
"""

from __future__ import annotations

from typing import Any, Iterable


def fail(name: str, value: Any, expected: str) -> None:
    """Raise the standard ``ValueError`` for argument ``name``."""
    raise ValueError(f"{name}={value!r}: expected {expected}")


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = list(choices)
    if value not in choices:
        fail(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return value


def check_int(name: str, value: Any, *, min: int | None = None, max: int | None = None,
              allow_none: bool = False) -> Any:
    """An integer (not a bool) within [min, max]; ``None`` passes if ``allow_none``."""
    if value is None and allow_none:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        if hasattr(value, "__index__") and not isinstance(value, bool):
            value = int(value)
        else:
            fail(name, value, "an integer" + _range_text(min, max))
    if (min is not None and value < min) or (max is not None and value > max):
        fail(name, value, "an integer" + _range_text(min, max))
    return value


def check_float(name: str, value: Any, *, min: float | None = None, max: float | None = None,
                min_open: bool = False, max_open: bool = False, allow_none: bool = False) -> Any:
    """A real number in the given interval; ``*_open`` excludes that end."""
    if value is None and allow_none:
        return value
    if isinstance(value, bool):
        fail(name, value, "a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        fail(name, value, "a number")
    bad = x != x  # NaN
    if min is not None:
        bad |= x <= min if min_open else x < min
    if max is not None:
        bad |= x >= max if max_open else x > max
    if bad:
        lo = "-inf" if min is None else f"{min}"
        hi = "inf" if max is None else f"{max}"
        interval = ("(" if min_open or min is None else "[") + f"{lo}, {hi}" + (")" if max_open or max is None else "]")
        fail(name, value, f"a number in {interval}")
    return x


def _range_text(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f" between {lo} and {hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
