"""Checks of the scalar arguments (options, sizes, names): a value of the wrong type raises TypeError
naming the argument (True for an integer, 7 for a bool and 2.5 for a count are wrong types, not
values to convert); a value of the right type out of range raises InvalidArgumentError."""

import math
import operator

import numpy as np

from ._errors import invalid

_INT64 = 2**63


def describe(value):
    """What a refused value was, for a message: its type and (shortened) repr."""
    if value is None:
        return "None"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _is_bool(value):
    return isinstance(value, (bool, np.bool_))


def boolean(name, value):
    """True or False (Python's or NumPy's bool); anything else, 0 and 1 included, is a TypeError."""
    if not _is_bool(value):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def integer(name, value, minimum=None, maximum=_INT64 - 1):
    """A Python or NumPy integer (not a bool, not a float even when whole), by default within int64."""
    if _is_bool(value) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {describe(value)}")
    value = operator.index(value)
    if minimum is not None and value < minimum:
        raise invalid(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise invalid(f"{name} = {value} is too large (at most {maximum})")
    return value


def real(name, value):
    """A finite Python or NumPy real number (integers included, bools not) as a float."""
    if _is_bool(value) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {describe(value)}")
    try:
        value = float(value)
    except OverflowError:
        raise invalid(f"{name} = {value} is out of range (a double)") from None
    if not math.isfinite(value):
        raise invalid(f"{name} must be finite, got {value}")
    return value


def text(name, value):
    """A str (a name or one of a list of choices)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {describe(value)}")
    return value


def choice(name, value, table, listed=None, label=None):
    """table[value.lower()] for a str naming one of the table's keys (label: the argument's name in
    a TypeError, when not `name`)."""
    key = text(label or name, value).lower()
    if key not in table:
        raise invalid(f"unknown {name} '{value}' (use {', '.join(listed or table)})")
    return table[key]


def shape(name, value):
    """A sequence of positive integers (one chain's shape; a lone integer n is (n,))."""
    if isinstance(value, (int, np.integer)) and not _is_bool(value):
        value = (value,)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a sequence of integers, got {describe(value)}")
    dims = tuple(integer(f"{name}[{i}]", s) for i, s in enumerate(value))
    if not dims or min(dims) <= 0:
        raise invalid(f"{name} must be positive sizes, got {list(dims)}")
    return dims
