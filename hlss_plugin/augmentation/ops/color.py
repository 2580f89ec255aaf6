"""Colour ops: colour jitter, autocontrast, solarize."""
import torch

from .augment_op import AugmentOp, as_batch, unbatch
from .color_functional import (adjust_brightness, adjust_contrast,
                               adjust_hue, adjust_saturation)
from .op_args import jitter_range
from .random_draws import generator_device, uniform


class ColorJitter(AugmentOp):
    """Brightness, contrast, saturation and hue jitter in random order.

    Same semantics as ``torchvision.transforms.ColorJitter`` on float RGB
    images in ``[0, 1]``: a number ``v`` for brightness / contrast /
    saturation means a factor uniform in ``[max(0, 1 - v), 1 + v]``; hue
    ``h`` means a shift uniform in ``[-h, h]`` (``0 <= h <= 0.5``); a pair
    gives the range directly; 0 disables that part. The four parts run in a
    per-sample random order (``order``: ``(n, 4)`` permutation of
    0=brightness, 1=contrast, 2=saturation, 3=hue).

    Args:
        brightness (float | tuple): Defaults to 0.2.
        contrast (float | tuple): Defaults to 0.2.
        saturation (float | tuple): Defaults to 0.2.
        hue (float | tuple): Defaults to 0.1.

    Example:
        >>> op = ColorJitter()
        >>> p = op.sample(None, 2, (3, 8, 8))
        >>> op.apply(torch.rand(2, 3, 8, 8), p).shape
        torch.Size([2, 3, 8, 8])
    """

    name = 'color_jitter'
    _IDENTITY = (1.0, 1.0, 1.0, 0.0)

    def __init__(self, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1):
        self.brightness = jitter_range(brightness, 'brightness')
        self.contrast = jitter_range(contrast, 'contrast')
        self.saturation = jitter_range(saturation, 'saturation')
        self.hue = jitter_range(hue, 'hue', center=0.0, bound=(-0.5, 0.5))
        self._fns = (adjust_brightness, adjust_contrast, adjust_saturation,
                     adjust_hue)

    def sample(self, generator, n, shape):
        params = {}
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        for key, rng, ident in zip(('brightness', 'contrast', 'saturation',
                                    'hue'), ranges, self._IDENTITY):
            params[key] = (uniform(generator, n, *rng) if rng is not None
                           else torch.full((n, ), ident,
                                           device=generator_device(generator)))
        params['order'] = torch.rand(
            n, 4, generator=generator,
            device=generator_device(generator)).argsort(1)
        return params

    def apply(self, img, params):
        x, single = as_batch(img)
        factors = (params['brightness'], params['contrast'],
                   params['saturation'], params['hue'])
        enabled = (self.brightness, self.contrast, self.saturation, self.hue)
        order = params['order']
        out = x
        if x.shape[0] == 1:
            for j in order[0].tolist():
                if enabled[j] is not None:
                    out = self._fns[j](out, factors[j])
            return unbatch(x.clone() if out is x else out, single)
        out = x.clone()
        for k in range(4):
            for j in range(4):
                if enabled[j] is None:
                    continue
                sel = order[:, k] == j
                if sel.any():
                    out[sel] = self._fns[j](out[sel], factors[j][sel])
        return unbatch(out, single)

    def apply_dense(self, img, params):
        """:meth:`apply` with no host reads (for ``apply_plan`` dense mode).

        At each order position ``k`` every enabled part ``j`` is computed on
        the whole batch and kept where ``order[:, k] == j``:
        ``out = torch.where(sel, adjust_j(out, factor_j), out)``. That is
        ``4 x`` (number of enabled parts) full-batch adjustments instead of
        4 on the selected samples, but no mask is read on the host (no GPU
        sync). Same result as :meth:`apply` (bit-exact on the CPU), for any
        ``n`` including 1.

        Example:
            >>> op = ColorJitter()
            >>> x = torch.rand(4, 3, 8, 8)
            >>> p = op.sample(torch.Generator().manual_seed(0), 4, x.shape[1:])
            >>> torch.equal(op.apply_dense(x, p), op.apply(x, p))
            True
        """
        x, single = as_batch(img)
        factors = (params['brightness'], params['contrast'],
                   params['saturation'], params['hue'])
        enabled = (self.brightness, self.contrast, self.saturation, self.hue)
        order = params['order'].to(x.device)
        if order.shape != (x.shape[0], 4):
            raise ValueError(f'color_jitter: order of shape '
                             f'{tuple(order.shape)} for {x.shape[0]} images; '
                             f'sample params with n equal to the batch size.')
        out = x
        for k in range(4):
            for j in range(4):
                if enabled[j] is None:
                    continue
                sel = (order[:, k] == j).view(-1, 1, 1, 1)
                out = torch.where(sel, self._fns[j](out, factors[j]), out)
        return unbatch(x.clone() if out is x else out, single)


class RandomAutocontrast(AugmentOp):
    """Stretch each channel to ``[0, 1]``: ``(x - min) / (max - min)``.

    Per image and channel, like ``torchvision`` ``autocontrast``; a constant
    channel is left unchanged. No params.

    Example:
        >>> x = torch.tensor([[[0.2, 0.6]]])
        >>> RandomAutocontrast().apply(x, {})
        tensor([[[0., 1.]]])
    """

    name = 'autocontrast'

    def apply(self, img, params):
        as_batch(img)
        lo = img.amin(dim=(-2, -1), keepdim=True)
        hi = img.amax(dim=(-2, -1), keepdim=True)
        flat = hi == lo
        lo = torch.where(flat, torch.zeros_like(lo), lo)
        scale = torch.where(flat, torch.ones_like(hi), 1.0 / (hi - lo))
        return (img - lo).mul_(scale).clamp_(0.0, 1.0)


class RandomSolarize(AugmentOp):
    """Invert pixels at or above ``threshold``: ``where(x >= t, 1 - x, x)``.

    Args:
        threshold (float): Defaults to 0.2. Most SRH intensities after
            ``SRHThirdChannel`` lie well below 0.5, so the usual 0.5 would
            hardly ever fire; 0.2 inverts the bright (dense, cellular) parts.

    Example:
        >>> RandomSolarize(0.5).apply(torch.tensor([[[0.2, 0.7]]]), {})
        tensor([[[0.2000, 0.3000]]])
    """

    name = 'solarize'

    def __init__(self, threshold: float = 0.2):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f'solarize threshold must be in [0, 1], got '
                             f'{threshold}.')
        self.threshold = float(threshold)

    def apply(self, img, params):
        as_batch(img)
        return torch.where(img >= self.threshold, 1.0 - img, img)
