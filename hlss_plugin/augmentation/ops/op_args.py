"""Argument checks shared by the augmentation ops (``ValueError`` on misuse).
"""
import numbers
from typing import Optional, Sequence, Tuple, Union

Range = Tuple[float, float]


def jitter_range(value: Union[float, Sequence[float]], name: str,
                 center: float = 1.0, bound: Range = (0.0, float('inf')),
                 ) -> Optional[Range]:
    """torchvision ``ColorJitter`` argument semantics.

    A number ``v`` means ``[center - v, center + v]`` (clipped at the lower
    bound); a pair is used as is. Returns ``None`` when the range is the
    single value ``center`` (op disabled).
    """
    if isinstance(value, numbers.Number):
        if value < 0:
            raise ValueError(f'{name} must be >= 0 or a (min, max) pair, got '
                             f'{value}.')
        value = (max(center - value, bound[0]), center + value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not bound[0] <= value[0] <= value[1] <= bound[1]):
        raise ValueError(f'{name} must be a number or a (min, max) pair with '
                         f'{bound[0]} <= min <= max <= {bound[1]}, got '
                         f'{value!r}.')
    lo, hi = float(value[0]), float(value[1])
    return None if lo == hi == center else (lo, hi)


def number_pair(value: Union[float, Sequence[float]], name: str,
                low: float = 0.0) -> Range:
    """A number ``v`` -> ``(v, v)``; a pair must obey ``low <= min <= max``.
    """
    if isinstance(value, numbers.Number):
        value = (value, value)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not low <= value[0] <= value[1]):
        raise ValueError(f'{name} must be a number or a (min, max) pair with '
                         f'{low} <= min <= max, got {value!r}.')
    return float(value[0]), float(value[1])


def op_size(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """An int ``s`` -> ``(s, s)``; a pair must hold two positive ints."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool)
                       and s > 0 for s in size)):
        raise ValueError(f'{name} must be an int or (h, w) of positive ints, '
                         f'got {size!r}.')
    return int(size[0]), int(size[1])
