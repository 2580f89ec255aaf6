"""Filter ops: sharpness (3x3 smoothing blend) and Gaussian blur."""
from typing import Union

import torch
import torch.nn.functional as F

from .augment_op import AugmentOp, as_batch, per_sample, unbatch
from .color_functional import blend
from .op_args import Range, number_pair
from .random_draws import uniform


class RandomSharpness(AugmentOp):
    """Sharpen by blending with a 3x3 smoothed copy (torchvision semantics).

    ``out = clamp(f * x + (1 - f) * smooth(x))`` where ``smooth`` uses the
    kernel ``[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`` on interior pixels and
    keeps the border; ``f > 1`` sharpens, ``f < 1`` blurs.

    Args:
        factor (float | tuple): Sharpness factor, fixed or a ``(min, max)``
            range drawn per sample. Defaults to 2.0 (as commonly used with
            ``RandomAdjustSharpness``).

    Example:
        >>> op = RandomSharpness()
        >>> op.apply(torch.rand(3, 8, 8), op.sample(None, 1, (3, 8, 8))).shape
        torch.Size([3, 8, 8])
    """

    name = 'sharpness'

    def __init__(self, factor: Union[float, Range] = 2.0):
        self.factor = number_pair(factor, 'sharpness factor')

    def sample(self, generator, n, shape):
        return {'factor': uniform(generator, n, *self.factor)}

    def apply(self, img, params):
        x, single = as_batch(img)
        b, c, h, w = x.shape
        if h <= 2 or w <= 2:
            return img.clone()
        # 3x3 kernel [[1,1,1],[1,5,1],[1,1,1]] / 13 = (box sum + 4 centre)
        # / 13, computed with shifted slices (much faster than a depthwise
        # conv2d on CPU).
        rows = x[..., :, :-2] + x[..., :, 1:-1] + x[..., :, 2:]
        box = rows[..., :-2, :] + rows[..., 1:-1, :] + rows[..., 2:, :]
        smooth = x.clone()
        inner = smooth[..., 1:-1, 1:-1]
        inner.mul_(4.0).add_(box).div_(13.0)
        out = blend(x, smooth, per_sample(params['factor'], x))
        return unbatch(out, single)


class GaussianBlur(AugmentOp):
    """Separable Gaussian blur with reflect padding and per-sample sigma.

    Kernel weights ``exp(-t^2 / (2 sigma^2))`` for
    ``t = -(k-1)/2 .. (k-1)/2``, normalised (as torchvision's
    ``gaussian_blur``).

    Args:
        kernel_size (int): Odd kernel size. Defaults to 5.
        sigma (float | tuple): Sigma, fixed or ``(min, max)`` drawn per
            sample. Defaults to ``(1.0, 1.0)``.

    Example:
        >>> op = GaussianBlur()
        >>> x = torch.ones(3, 16, 16)
        >>> torch.allclose(op.apply(x, op.sample(None, 1, x.shape)), x)
        True
    """

    name = 'gaussian_blur'

    def __init__(self, kernel_size: int = 5,
                 sigma: Union[float, Range] = (1.0, 1.0)):
        if (not isinstance(kernel_size, int) or kernel_size < 1
                or kernel_size % 2 == 0):
            raise ValueError(f'gaussian_blur kernel_size must be a positive '
                             f'odd int, got {kernel_size!r}.')
        self.kernel_size = kernel_size
        self.sigma = number_pair(sigma, 'gaussian_blur sigma', low=1e-6)

    def sample(self, generator, n, shape):
        return {'sigma': uniform(generator, n, *self.sigma)}

    def apply(self, img, params):
        x, single = as_batch(img)
        b, c, h, w = x.shape
        k, pad = self.kernel_size, self.kernel_size // 2
        sigma = params['sigma'].to(device=x.device, dtype=x.dtype)
        if sigma.shape[0] != b:
            raise ValueError(f'gaussian_blur: {sigma.shape[0]} sigmas for '
                             f'{b} images.')
        t = torch.arange(k, device=x.device, dtype=x.dtype) - (k - 1) / 2
        kern = torch.exp(-0.5 * (t / sigma.view(-1, 1))**2)  # (B, k)
        kern = kern / kern.sum(dim=1, keepdim=True)
        kern = kern.view(b, 1, 1, 1, k)
        # separable correlation as a sum of k shifted slices (per-sample
        # weights broadcast over C, H, W); faster than depthwise conv2d.
        y = F.pad(x, (pad, pad, pad, pad), mode='reflect')
        y = _shift_sum(y, kern, k, dim=-1, length=w)
        y = _shift_sum(y, kern, k, dim=-2, length=h)
        return unbatch(y, single)


def _shift_sum(x: torch.Tensor, weights: torch.Tensor, k: int, dim: int,
               length: int) -> torch.Tensor:
    """``sum_i weights[..., i] * x.narrow(dim, i, length)`` for ``i < k``."""
    out = x.narrow(dim, 0, length) * weights[..., 0]
    for i in range(1, k):
        out.addcmul_(x.narrow(dim, i, length), weights[..., i])
    return out
