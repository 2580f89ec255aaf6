"""Additive Gaussian noise with a per-sample standard deviation."""
from typing import Union

import torch

from .augment_op import AugmentOp, as_batch, unbatch
from .op_args import Range, number_pair
from .random_draws import generator_device, uniform


class GaussianNoise(AugmentOp):
    """Add zero-mean Gaussian noise with a per-sample standard deviation.

    ``std`` is drawn uniformly from ``std`` (a ``(min, max)`` pair, or a
    number for a fixed value); the noise field itself is part of the params
    (``noise``: ``(n, C, H, W)``), so ``apply`` is deterministic.

    Args:
        std (float | tuple): Noise std in image units. Defaults to
            ``(0.01, 0.1)`` (about 1-10 % of the [0, 1] range).
        clip (bool): Clamp the result to ``[0, 1]``. Defaults to True.

    Example:
        >>> op = GaussianNoise(std=0.05)
        >>> p = op.sample(torch.Generator().manual_seed(0), 1, (3, 8, 8))
        >>> op.apply(torch.full((3, 8, 8), 0.5), p).shape
        torch.Size([3, 8, 8])
    """

    name = 'gaussian_noise'

    def __init__(self, std: Union[float, Range] = (0.01, 0.1),
                 clip: bool = True):
        self.std = number_pair(std, 'gaussian_noise std')
        self.clip = clip

    def sample(self, generator, n, shape):
        std = uniform(generator, n, *self.std)
        noise = torch.randn((n, ) + tuple(shape), generator=generator,
                            device=generator_device(generator))
        return {'std': std, 'noise': noise.mul_(std.view(-1, 1, 1, 1))}

    def apply(self, img, params):
        x, single = as_batch(img)
        noise = params['noise'].to(device=x.device, dtype=x.dtype)
        if noise.shape != x.shape:
            raise ValueError(f'gaussian_noise: noise of shape '
                             f'{tuple(noise.shape)} does not match images '
                             f'{tuple(x.shape)}; sample with the image shape.')
        out = x + noise
        if self.clip:
            out.clamp_(0.0, 1.0)
        return unbatch(out, single)
