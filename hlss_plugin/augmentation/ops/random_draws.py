"""Random draws shared by the augmentation ops (on the generator's device).
"""
import math
from typing import Optional

import torch

from .op_args import Range


def generator_device(generator: Optional[torch.Generator]) -> torch.device:
    """The device of ``generator`` (CPU for ``None``, the global RNG).

    Example:
        >>> generator_device(None)
        device(type='cpu')
    """
    return generator.device if generator is not None else torch.device('cpu')


def uniform(generator: Optional[torch.Generator], n: int, low: float,
            high: float) -> torch.Tensor:
    """``n`` floats uniform in ``[low, high]`` (float32).

    Example:
        >>> uniform(torch.Generator().manual_seed(0), 3, 2.0, 2.0)
        tensor([2., 2., 2.])
    """
    u = torch.rand(n, generator=generator, device=generator_device(generator))
    return u.mul_(high - low).add_(low)


def randint_below(generator: Optional[torch.Generator],
                  high: torch.Tensor) -> torch.Tensor:
    """Per-element integers uniform in ``[0, high)`` (``high >= 1``).

    Example:
        >>> randint_below(None, torch.tensor([1, 1]))
        tensor([0, 0])
    """
    u = torch.rand(high.shape, generator=generator, device=high.device)
    return torch.minimum((u * high).long(), high - 1)


def sample_boxes(generator, n: int, h: int, w: int, scale: Range,
                 ratio: Range, erasing: bool = False, attempts: int = 10):
    """torchvision-style area/aspect box sampling, vectorised over ``n``.

    Each of ``attempts`` tries draws an area ``U(scale) * h * w`` and an
    aspect ``r = exp(U(log ratio))``. Crops (``erasing=False``) use
    ``bw = round(sqrt(area r))``, ``bh = round(sqrt(area / r))`` and must
    satisfy ``0 < bw <= w``, ``0 < bh <= h``; erasing uses the transposed
    sizes and must satisfy ``bh < h``, ``bw < w``.

    Args:
        generator (torch.Generator, optional): Source of randomness.
        n (int): Number of boxes.
        h (int): Image height.
        w (int): Image width.
        scale (tuple[float, float]): Area fraction range.
        ratio (tuple[float, float]): Aspect (w / h) range.
        erasing (bool): Erasing rule instead of the crop rule.
        attempts (int): Tries per box. Defaults to 10 (torchvision's).

    Returns:
        tuple: ``(bh, bw, found)``, each ``(n,)``: sizes of the first try
        that fits, and whether any try fitted.

    Example:
        >>> bh, bw, found = sample_boxes(None, 4, 32, 32, (1.0, 1.0),
        ...                              (1.0, 1.0))
        >>> bh.tolist(), bw.tolist(), found.all().item()
        ([32, 32, 32, 32], [32, 32, 32, 32], True)
    """
    dev = generator_device(generator)
    area = uniform(generator, n * attempts, *scale).mul_(h * w)
    aspect = uniform(generator, n * attempts, math.log(ratio[0]),
                     math.log(ratio[1])).exp_()
    long = torch.sqrt(area * aspect).round().long().view(n, attempts)
    short = torch.sqrt(area / aspect).round().long().view(n, attempts)
    if erasing:
        bh, bw = long, short
        ok = (bh < h) & (bw < w)
    else:
        bh, bw = short, long
        ok = (bw > 0) & (bw <= w) & (bh > 0) & (bh <= h)
    rank = torch.arange(attempts, 0, -1, device=dev)
    first = torch.where(ok, rank, torch.zeros_like(rank))
    first = first.argmax(dim=1, keepdim=True)
    found = ok.any(dim=1)
    return (bh.gather(1, first).squeeze(1), bw.gather(1, first).squeeze(1),
            found)
