"""Argument checks shared by every module and tool (one wording, one rule).

Any integral number is accepted (Python ``int``, NumPy integers) and comes
back as a Python ``int``; ``bool`` is refused wherever an int is asked for
(``True`` is an ``int`` in Python, but ``crop_size=True`` is always a
mistake).

Example:
    >>> check_int('k', 20, minimum=1)
    20
    >>> check_int('k', 0, minimum=1)
    Traceback (most recent call last):
    ...
    ValueError: k must be an int >= 1, got 0.
    >>> check_int('seed', None, minimum=0, allow_none=True) is None
    True
"""
import argparse
import numbers
from typing import Optional

__all__ = ['check_int', 'positive_int', 'non_negative_int']


def check_int(name: str,
              value,
              minimum: Optional[int] = None,
              maximum: Optional[int] = None,
              allow_none: bool = False,
              owner: str = '') -> Optional[int]:
    """Return ``value`` as an int if it is integral (not a bool) and within
    the bounds.

    Args:
        name (str): The argument or config key, named in the error.
        value: The value to check.
        minimum (int, optional): Smallest legal value. Defaults to None.
        maximum (int, optional): Largest legal value. Defaults to None.
        allow_none (bool): Whether ``None`` is legal. Defaults to False.
        owner (str): Prefix of the message, e.g. ``'SRHAugment'``.
            Defaults to ''.

    Returns:
        int | None: ``int(value)`` (None when allowed and given).

    Raises:
        ValueError: When ``value`` is not such an int; the message names
            ``name``, the legal range and the value given.
    """
    if value is None and allow_none:
        return None
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if ok and minimum is not None and value < minimum:
        ok = False
    if ok and maximum is not None and value > maximum:
        ok = False
    if ok:
        return int(value)
    if minimum is not None and maximum is not None:
        legal = f'an int in [{minimum}, {maximum}]'
    elif minimum is not None:
        legal = f'an int >= {minimum}'
    elif maximum is not None:
        legal = f'an int <= {maximum}'
    else:
        legal = 'an int'
    if allow_none:
        legal += ' or None'
    prefix = f'{owner}: ' if owner else ''
    raise ValueError(f'{prefix}{name} must be {legal}, got {value!r}.')


def _parse_int(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(
            f'expected an integer >= {minimum}, got {text!r}') from None
    if value < minimum:
        raise argparse.ArgumentTypeError(
            f'expected an integer >= {minimum}, got {value}')
    return value


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1.

    Example:
        >>> positive_int('3')
        3
    """
    return _parse_int(text, 1)


def non_negative_int(text: str) -> int:
    """``argparse`` type: an integer >= 0.

    Example:
        >>> non_negative_int('0')
        0
    """
    return _parse_int(text, 0)
