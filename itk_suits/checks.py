"""Checks of user-given numbers, shared by every layer that takes parameters.

Each check raises :class:`~itk_suits.errors.ParameterError` naming the
parameter, the value and the accepted range, so that NaN, infinity, strings
or absurd magnitudes never reach the tensor code.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

from .errors import ParameterError

__all__ = ["checked_number", "per_scale", "checked_choice"]


def checked_number(
    value: Any,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    integer: bool = False,
    above: bool = False,
) -> float | int:
    """``value`` as a finite float (or int) within ``[minimum, maximum]``.

    Parameters
    ----------
    value : Any
        What the caller gave.
    name : str
        The parameter's name, for the message.
    minimum, maximum : float, optional
        Inclusive bounds (``None``: unbounded on that side).
    integer : bool
        Require a whole number and return an ``int``.
    above : bool
        ``minimum`` itself is excluded (strictly positive quantities).

    Raises
    ------
    ParameterError
        ``value`` is not a real number (strings and booleans included), is NaN or
        infinite, is not whole when ``integer``, or lies outside the range.
    """
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be {kind}, got {value!r} ({type(value).__name__})")
    number = float(value)
    if not math.isfinite(number):
        raise ParameterError(f"{name} must be finite, got {value!r}")
    if integer:
        if number != int(number):
            raise ParameterError(f"{name} must be a whole number, got {value!r}")
        number = int(number)
    low_ok = minimum is None or (number > minimum if above else number >= minimum)
    high_ok = maximum is None or number <= maximum
    if not (low_ok and high_ok):
        low = "-inf" if minimum is None else f"{minimum:g}"
        high = "inf" if maximum is None else f"{maximum:g}"
        bracket = "(" if above else "["
        raise ParameterError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")
    return number


def per_scale(value: Any, name: str, count: int | None, **limits) -> tuple:
    """One checked number per scale from one number or a sequence.

    Parameters
    ----------
    value : number or sequence of numbers
        A single value is repeated for every scale.
    name : str
        The parameter's name, for the message.
    count : int or None
        Number of scales; ``None``: as many as given (at least one).
    **limits
        Passed to :func:`checked_number` for every value.

    Raises
    ------
    ParameterError
        Wrong count, or a value :func:`checked_number` refuses.
    """
    if isinstance(value, numbers.Real):
        values = (value,)
    elif isinstance(value, (str, bytes)):
        raise ParameterError(f"{name} must hold numbers, got {value!r}")
    else:
        try:
            values = tuple(value)
        except TypeError:
            raise ParameterError(f"{name} must be a number or a sequence of numbers, got {value!r}") from None
    if count is not None and len(values) == 1:
        values = values * count
    if not values or (count is not None and len(values) != count):
        expected = f"one value or one per scale ({count} scales)" if count else "at least one value"
        raise ParameterError(f"{name} needs {expected}, got {value!r}")
    return tuple(checked_number(v, name, **limits) for v in values)


def checked_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """``value`` when it is one of the strings ``choices``.

    Raises
    ------
    ParameterError
        Naming the parameter, the value given and the values allowed.
    """
    if not isinstance(value, str) or value not in choices:
        raise ParameterError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value
