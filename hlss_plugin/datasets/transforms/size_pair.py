"""One rule for the ``size`` argument of the tensor evaluation transforms."""
import numbers
from typing import Sequence, Tuple, Union


def size_pair(size: Union[int, Sequence[int]],
              owner: str) -> Tuple[int, int]:
    """``(h, w)`` from an int (a square) or an ``(h, w)`` pair of ints >= 1.

    Args:
        size (int | Sequence[int]): The ``size`` argument.
        owner (str): Transform name used in the error.

    Returns:
        tuple[int, int]: ``(h, w)``.

    Raises:
        ValueError: Naming ``owner`` when ``size`` is neither.

    Example:
        >>> size_pair(224, 'ResizeTensor'), size_pair([96, 128], 'X')
        ((224, 224), (96, 128))
    """
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (not isinstance(size, (tuple, list)) or len(size) != 2 or any(
            isinstance(s, bool) or not isinstance(s, numbers.Integral)
            or s < 1 for s in size)):
        raise ValueError(f'{owner}: size must be an int >= 1 or an '
                         f'(h, w) pair of them, got {size!r}.')
    return int(size[0]), int(size[1])
