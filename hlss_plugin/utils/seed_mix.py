"""Derive well-spread 63-bit seeds from tuples of integers (splitmix64)."""
from typing import Tuple

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(x: int) -> int:
    """One splitmix64 output for the state ``x`` (Steele, Lea & Flood,
    "Fast splittable pseudorandom number generators", OOPSLA 2014; the
    constants of Vigna's reference ``splitmix64.c``).

    Args:
        x (int): The 64-bit state before the step (taken modulo ``2**64``).

    Returns:
        int: The output in ``[0, 2**64)``: a bijective, avalanching hash of
        ``x``.

    Example:
        >>> hex(splitmix64(0))  # the reference generator's first output
        '0xe220a8397b1dcdaf'
    """
    z = (x + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mix_seed(*values: int) -> int:
    """A seed for ``torch.Generator.manual_seed`` from a tuple of ints.

    Folds the values in order, ``h = splitmix64(h ^ v)`` from ``h = 0``, and
    keeps the top 63 bits, so nearby tuples such as ``(base, rank, step)``
    and ``(base, rank, step + 1)`` give unrelated seeds, and the order of
    the values matters.

    Args:
        *values (int): Non-negative ints below ``2**64`` (e.g. a base seed,
            a rank and a step).

    Returns:
        int: A seed in ``[0, 2**63)``.

    Raises:
        ValueError: If a value is not an int in ``[0, 2**64)``.

    Example:
        >>> mix_seed(7, 0, 3) == mix_seed(7, 0, 3) != mix_seed(7, 0, 4)
        True
        >>> 0 <= mix_seed(2**64 - 1, 1) < 2**63
        True
    """
    h = 0
    for v in _check(values):
        h = splitmix64(h ^ v)
    return h >> 1


def _check(values: Tuple[int, ...]) -> Tuple[int, ...]:
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not \
                0 <= v <= _MASK64:
            raise ValueError(
                f'mix_seed: values must be ints in [0, 2**64), got {v!r} in '
                f'{values!r}; map negative or larger numbers into that range '
                f'first (e.g. v % 2**64).')
    return values
