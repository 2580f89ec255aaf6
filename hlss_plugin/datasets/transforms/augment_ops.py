"""SRH augmentation ops with explicit per-sample parameters.

Each op is split in two so that the per-sample data pipeline (CPU) and a
later batched GPU data preprocessor run the *same* code:

* ``sample(generator, n, shape) -> params``: draws the random parameters of
  ``n`` samples as a dict of tensors whose first dimension is ``n`` (on the
  generator's device). ``shape`` is the ``(C, H, W)`` of the images the op
  will see.
* ``apply(img, params) -> Tensor``: deterministic given ``params``; works on
  a float image ``(C, H, W)`` (with ``n == 1`` params) or a batch
  ``(B, C, H, W)`` (with ``n == B`` params, one row per sample). ``apply``
  never modifies ``img`` in place and keeps its dtype and device.
* ``apply_dense(img, params) -> Tensor``: the same result without reading
  any tensor on the host (no GPU sync; used by ``apply_plan``'s dense
  mode). Defaults to ``apply``.

Whether an op fires at all (probability ``rand_prob``) is decided by the
caller (:mod:`~hlss_plugin.datasets.transforms.srh_augment`); use
:func:`select_params` to restrict params to the chosen samples.

All images are expected in ``[0, 1]`` (after ``SRHThirdChannel``). Colour
ops follow torchvision's ``ColorJitter`` / ``adjust_*`` semantics for float
images, but accept per-sample factors.

Lightly's image transforms are PIL-based and draw their randomness inside
``__call__``, so they cannot be reused here; the ops below are plain torch.

Op names (for ``SRHAugment(ops=[dict(type=name, ...)])``):
``resize``, ``hflip``, ``vflip``, ``gaussian_noise``, ``color_jitter``,
``autocontrast``, ``solarize``, ``sharpness``, ``gaussian_blur``, ``affine``,
``random_resized_crop``, ``erasing``.
"""
import math
import numbers
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

Params = Dict[str, torch.Tensor]
Range = Tuple[float, float]

#: ITU-R 601-2 luma weights, as in torchvision's ``rgb_to_grayscale``.
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _device(generator: Optional[torch.Generator]) -> torch.device:
    return generator.device if generator is not None else torch.device('cpu')


def _uniform(generator: Optional[torch.Generator], n: int,
             low: float, high: float) -> torch.Tensor:
    """``n`` floats uniform in ``[low, high]`` (float32)."""
    u = torch.rand(n, generator=generator, device=_device(generator))
    return u.mul_(high - low).add_(low)


def _randint_below(generator: Optional[torch.Generator],
                   high: torch.Tensor) -> torch.Tensor:
    """Per-element integers uniform in ``[0, high)`` (``high >= 1``)."""
    u = torch.rand(high.shape, generator=generator, device=high.device)
    return torch.minimum((u * high).long(), high - 1)


def _batched(img: torch.Tensor) -> Tuple[torch.Tensor, bool]:
    """View ``img`` as ``(B, C, H, W)``; also say whether it was unbatched."""
    if not isinstance(img, torch.Tensor) or not img.is_floating_point():
        raise ValueError(
            f'augmentation ops need a float tensor (C, H, W) or '
            f'(B, C, H, W); got {type(img).__name__} '
            f'{getattr(img, "dtype", "")}. Load with LoadSRHPatch + '
            f'SRHThirdChannel (or LoadPatchImage) first.')
    if img.ndim == 3:
        return img.unsqueeze(0), True
    if img.ndim == 4:
        return img, False
    raise ValueError(f'augmentation ops need shape (C, H, W) or (B, C, H, W); '
                     f'got {tuple(img.shape)}.')


def _unbatch(img: torch.Tensor, single: bool) -> torch.Tensor:
    return img[0] if single else img


def _per_sample(t: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """Reshape a ``(B,)`` parameter to broadcast over ``(B, C, H, W)``."""
    if t.shape[0] != img.shape[0]:
        raise ValueError(f'params hold {t.shape[0]} samples but the image '
                         f'batch has {img.shape[0]}; sample params with '
                         f'n equal to the batch size (n=1 for (C, H, W)).')
    return t.to(device=img.device, dtype=img.dtype).view(-1, 1, 1, 1)


def _as_range(value: Union[float, Sequence[float]], name: str,
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


def _as_pair(value: Union[float, Sequence[float]], name: str,
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


def _as_size(size: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    """An int ``s`` -> ``(s, s)``; a pair must hold two positive ints."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool)
                       and s > 0 for s in size)):
        raise ValueError(f'{name} must be an int or (h, w) of positive ints, '
                         f'got {size!r}.')
    return int(size[0]), int(size[1])


def select_params(params: Params, index) -> Params:
    """Rows ``index`` of every parameter (a bool mask, slice or index list).

    Args:
        params (dict[str, Tensor]): Output of an op's ``sample``.
        index: Anything that indexes dim 0 and keeps it (``mask``,
            ``slice(i, i + 1)``, ``[i]``).

    Returns:
        dict[str, Tensor]: Params for the selected samples.

    Example:
        >>> p = {'std': torch.tensor([0.1, 0.2, 0.3])}
        >>> select_params(p, torch.tensor([True, False, True]))['std']
        tensor([0.1000, 0.3000])
    """
    return {k: v[index] for k, v in params.items()}


def rgb_to_grayscale(img: torch.Tensor) -> torch.Tensor:
    """Luma of ``(..., 3, H, W)`` (or pass-through of 1 channel) -> ``(..., 1,
    H, W)``."""
    if img.shape[-3] == 1:
        return img
    if img.shape[-3] != 3:
        raise ValueError(f'colour ops need 1 or 3 channels (RGB), got '
                         f'{img.shape[-3]}; apply SRHThirdChannel first.')
    r, g, b = img.unbind(dim=-3)
    gray = r * GRAY_WEIGHTS[0] + g * GRAY_WEIGHTS[1] + b * GRAY_WEIGHTS[2]
    return gray.unsqueeze(-3)


def _blend(img1: torch.Tensor, img2: torch.Tensor,
           ratio: torch.Tensor) -> torch.Tensor:
    """``clamp(ratio * img1 + (1 - ratio) * img2, 0, 1)`` per sample."""
    return (img1 - img2).mul_(ratio).add_(img2).clamp_(0.0, 1.0)


# --------------------------------------------------------------------------
# ops
# --------------------------------------------------------------------------
class AugmentOp:
    """Base class: an op with per-sample ``sample`` and batched ``apply``.

    Subclasses set ``name`` (the ``type`` used in ``SRHAugment(ops=...)``).
    Ops that change the spatial size override :meth:`output_shape`.
    """

    name = ''

    def sample(self, generator: Optional[torch.Generator], n: int,
               shape: Sequence[int]) -> Params:
        """Draw params of ``n`` samples for images of ``shape`` (C, H, W)."""
        return {}

    def apply(self, img: torch.Tensor, params: Params) -> torch.Tensor:
        """Apply the op with fixed params; see the module docstring."""
        raise NotImplementedError

    def apply_dense(self, img: torch.Tensor, params: Params) -> torch.Tensor:
        """:meth:`apply` without reading tensor values on the host.

        Same result as :meth:`apply` (up to float rounding) for the same
        ``img`` and ``params``, but never reads a tensor on the host (no
        ``tolist`` / ``item`` / ``bool`` / boolean indexing), so on a GPU it
        does not synchronise with the device; it may compute more (e.g.
        every option for every sample). Used by ``apply_plan(mode='dense')``.
        Defaults to :meth:`apply`; ops whose ``apply`` reads params on the
        host override it.

        Args:
            img (Tensor): ``(C, H, W)`` or ``(B, C, H, W)`` float image(s).
            params (dict[str, Tensor]): Params of ``1`` or ``B`` samples.

        Returns:
            Tensor: As :meth:`apply`.

        Example:
            >>> x = torch.rand(2, 3, 4, 4)
            >>> torch.equal(HorizontalFlip().apply_dense(x, {}), x.flip(-1))
            True
        """
        return self.apply(img, params)

    def output_shape(self, shape: Sequence[int]) -> Tuple[int, int, int]:
        """``(C, H, W)`` after the op for an input of ``shape``."""
        return tuple(shape)

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items()
                         if not k.startswith('_'))
        return f'{self.__class__.__name__}({args})'


class Resize(AugmentOp):
    """Resize the whole image to a fixed ``size`` (torchvision ``Resize``).

    Same result as ``torchvision.transforms.functional.resize(img, size,
    interpolation, antialias=antialias)`` on a float tensor:
    ``F.interpolate(img, size, mode=interpolation, align_corners=False)``
    (``align_corners=None`` for ``'nearest'``), **not** clamped, so bicubic
    overshoot can leave values slightly outside ``[0, 1]`` as in
    torchvision. An image already of ``size`` is returned as a copy. No
    params; it changes the spatial size, so ``SRHAugment`` requires
    probability 1 for it.

    Args:
        size (int | tuple): Output ``(h, w)``. Defaults to 224.
        interpolation (str): ``'bicubic'`` (default), ``'bilinear'`` or
            ``'nearest'``.
        antialias (bool): Antialias when downsampling. Defaults to False,
            what torchvision < 0.17 (e.g. 0.16.2, used by the published HLSS
            code) did for tensors; torchvision >= 0.17 defaults to True.

    Example:
        >>> Resize(size=8).apply(torch.rand(3, 12, 12), {}).shape
        torch.Size([3, 8, 8])
    """

    name = 'resize'
    _MODES = ('bicubic', 'bilinear', 'nearest')

    def __init__(self, size: Union[int, Tuple[int, int]] = 224,
                 interpolation: str = 'bicubic', antialias: bool = False):
        self.size = _as_size(size, 'resize size')
        if interpolation not in self._MODES:
            raise ValueError(f'resize interpolation must be one of '
                             f'{self._MODES}, got {interpolation!r}.')
        if antialias and interpolation == 'nearest':
            raise ValueError('resize antialias needs bilinear or bicubic '
                             'interpolation; set antialias=False.')
        self.interpolation = interpolation
        self.antialias = bool(antialias)

    def output_shape(self, shape):
        return (shape[0], ) + self.size

    def apply(self, img, params):
        x, single = _batched(img)
        if tuple(x.shape[-2:]) == self.size:
            return img.clone()
        nearest = self.interpolation == 'nearest'
        out = F.interpolate(x, size=self.size, mode=self.interpolation,
                            align_corners=None if nearest else False,
                            antialias=self.antialias)
        return _unbatch(out, single)


class HorizontalFlip(AugmentOp):
    """Mirror left-right (``torch.flip`` on the last dim). No params.

    Example:
        >>> HorizontalFlip().apply(torch.arange(3.).view(1, 1, 3), {})
        tensor([[[2., 1., 0.]]])
    """

    name = 'hflip'

    def apply(self, img, params):
        _batched(img)
        return img.flip(-1)


class VerticalFlip(AugmentOp):
    """Mirror top-bottom (``torch.flip`` on dim -2). No params.

    Example:
        >>> VerticalFlip().apply(torch.arange(2.).view(1, 2, 1), {}).flatten()
        tensor([1., 0.])
    """

    name = 'vflip'

    def apply(self, img, params):
        _batched(img)
        return img.flip(-2)


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
        self.std = _as_pair(std, 'gaussian_noise std')
        self.clip = clip

    def sample(self, generator, n, shape):
        std = _uniform(generator, n, *self.std)
        noise = torch.randn((n, ) + tuple(shape), generator=generator,
                            device=_device(generator))
        return {'std': std, 'noise': noise.mul_(std.view(-1, 1, 1, 1))}

    def apply(self, img, params):
        x, single = _batched(img)
        noise = params['noise'].to(device=x.device, dtype=x.dtype)
        if noise.shape != x.shape:
            raise ValueError(f'gaussian_noise: noise of shape '
                             f'{tuple(noise.shape)} does not match images '
                             f'{tuple(x.shape)}; sample with the image shape.')
        out = x + noise
        if self.clip:
            out.clamp_(0.0, 1.0)
        return _unbatch(out, single)


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
        self.brightness = _as_range(brightness, 'brightness')
        self.contrast = _as_range(contrast, 'contrast')
        self.saturation = _as_range(saturation, 'saturation')
        self.hue = _as_range(hue, 'hue', center=0.0, bound=(-0.5, 0.5))
        self._fns = (adjust_brightness, adjust_contrast, adjust_saturation,
                     adjust_hue)

    def sample(self, generator, n, shape):
        params = {}
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        for key, rng, ident in zip(('brightness', 'contrast', 'saturation',
                                    'hue'), ranges, self._IDENTITY):
            params[key] = (_uniform(generator, n, *rng) if rng is not None
                           else torch.full((n, ), ident,
                                           device=_device(generator)))
        params['order'] = torch.rand(
            n, 4, generator=generator, device=_device(generator)).argsort(1)
        return params

    def apply(self, img, params):
        x, single = _batched(img)
        factors = (params['brightness'], params['contrast'],
                   params['saturation'], params['hue'])
        enabled = (self.brightness, self.contrast, self.saturation, self.hue)
        order = params['order']
        out = x
        if x.shape[0] == 1:
            for j in order[0].tolist():
                if enabled[j] is not None:
                    out = self._fns[j](out, factors[j])
            return _unbatch(x.clone() if out is x else out, single)
        out = x.clone()
        for k in range(4):
            for j in range(4):
                if enabled[j] is None:
                    continue
                sel = order[:, k] == j
                if sel.any():
                    out[sel] = self._fns[j](out[sel], factors[j][sel])
        return _unbatch(out, single)

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
        x, single = _batched(img)
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
        return _unbatch(x.clone() if out is x else out, single)


def adjust_brightness(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clamp(img * factor)``; ``img`` ``(B, C, H, W)``, ``factor`` ``(B,)``.
    """
    return (img * _per_sample(factor, img)).clamp_(0.0, 1.0)


def adjust_contrast(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the per-image mean luma; ``factor`` ``(B,)``."""
    mean = rgb_to_grayscale(img).mean(dim=(-3, -2, -1), keepdim=True)
    return _blend(img, mean, _per_sample(factor, img))


def adjust_saturation(img: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the grayscale image; ``factor`` ``(B,)``."""
    if img.shape[-3] == 1:
        return img.clone()
    return _blend(img, rgb_to_grayscale(img), _per_sample(factor, img))


def adjust_hue(img: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by ``shift`` (fraction of a turn, ``(B,)``) in HSV space.

    Same result as converting to HSV, shifting ``H`` modulo 1 and converting
    back (torchvision's ``adjust_hue``), but fused: with ``V = max`` and
    ``V S = max - min``, output channel ``n`` (5, 3, 1 for R, G, B) is
    ``max - (max - min) clamp(min(k, 4 - k), 0, 1)`` with
    ``k = (n + 6 (H + shift)) mod 6``.

    Args:
        img (Tensor): ``(B, 3, H, W)`` RGB in ``[0, 1]`` (1 channel: copy).
        shift (Tensor): ``(B,)`` hue shifts in ``[-0.5, 0.5]``.

    Returns:
        Tensor: ``(B, 3, H, W)``.

    Example:
        >>> red = torch.tensor([1., 0., 0.]).view(1, 3, 1, 1)
        >>> adjust_hue(red, torch.tensor([1 / 3])).flatten()  # -> green
        tensor([0., 1., 0.])
    """
    if img.shape[-3] == 1:
        return img.clone()
    if img.shape[-3] != 3:
        raise ValueError(f'hue jitter needs RGB (3 channels), got '
                         f'{img.shape[-3]}; apply SRHThirdChannel first.')
    r, g, b = img.unbind(dim=-3)
    maxc = torch.maximum(torch.maximum(r, g), b)
    delta = maxc - torch.minimum(torch.minimum(r, g), b)
    # grey pixels (delta 0) have g - b = b - r = r - g = 0, hence hue 0;
    # the clamp only avoids 0 / 0 (its effect on the output is < 1e-12).
    inv = delta.clamp_min(1e-12).reciprocal_()
    h6 = torch.where(maxc == r, g - b,
                     torch.where(maxc == g, (b - r).add_(delta, alpha=2.0),
                                 (r - g).add_(delta, alpha=4.0))).mul_(inv)
    shift6 = shift.to(device=img.device, dtype=img.dtype).view(-1, 1, 1) * 6
    h6.add_(shift6)
    out = torch.empty_like(img)
    for c, n in enumerate((5.0, 3.0, 1.0)):
        k = h6 + n
        k.sub_(torch.floor(k / 6.0).mul_(6.0))  # k mod 6 (faster)
        k = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        torch.sub(maxc, k.mul_(delta), out=out[:, c])
    return out


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
        _batched(img)
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
        _batched(img)
        return torch.where(img >= self.threshold, 1.0 - img, img)


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
        self.factor = _as_pair(factor, 'sharpness factor')

    def sample(self, generator, n, shape):
        return {'factor': _uniform(generator, n, *self.factor)}

    def apply(self, img, params):
        x, single = _batched(img)
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
        out = _blend(x, smooth, _per_sample(params['factor'], x))
        return _unbatch(out, single)


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
        self.sigma = _as_pair(sigma, 'gaussian_blur sigma', low=1e-6)

    def sample(self, generator, n, shape):
        return {'sigma': _uniform(generator, n, *self.sigma)}

    def apply(self, img, params):
        x, single = _batched(img)
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
        return _unbatch(y, single)


def _shift_sum(x: torch.Tensor, weights: torch.Tensor, k: int, dim: int,
               length: int) -> torch.Tensor:
    """``sum_i weights[..., i] * x.narrow(dim, i, length)`` for ``i < k``."""
    out = x.narrow(dim, 0, length) * weights[..., 0]
    for i in range(1, k):
        out.addcmul_(x.narrow(dim, i, length), weights[..., i])
    return out


class RandomAffine(AugmentOp):
    """Rotate about the centre and translate, filling outside with 0.

    Same geometry as ``torchvision.transforms.functional.affine`` with
    scale 1 and no shear: positive angles rotate clockwise (as displayed,
    y pointing down), about the image centre; translations are whole pixels
    drawn per sample in ``[-tx * W, tx * W]`` and ``[-ty * H, ty * H]``.

    Args:
        degrees (float | tuple): Angle range; a number ``d`` means
            ``(-d, d)``. Defaults to 10.
        translate (tuple): Max fraction ``(tx, ty)`` of width / height.
            Defaults to ``(0.1, 0.1)``.
        interpolation (str): ``'nearest'`` (default, as torchvision) or
            ``'bilinear'``.

    Example:
        >>> op = RandomAffine()
        >>> p = op.sample(None, 1, (3, 16, 16))
        >>> sorted(p)
        ['angle', 'translate']
    """

    name = 'affine'

    def __init__(self, degrees: Union[float, Range] = 10.0,
                 translate: Tuple[float, float] = (0.1, 0.1),
                 interpolation: str = 'nearest'):
        if isinstance(degrees, numbers.Number):
            if degrees < 0:
                raise ValueError(f'affine degrees must be >= 0, got '
                                 f'{degrees}.')
            degrees = (-degrees, degrees)
        self.degrees = _as_pair(degrees, 'affine degrees', low=-360.0)
        if (not isinstance(translate, (tuple, list)) or len(translate) != 2
                or not all(0.0 <= t <= 1.0 for t in translate)):
            raise ValueError(f'affine translate must be a pair (tx, ty) of '
                             f'fractions in [0, 1], got {translate!r}.')
        self.translate = (float(translate[0]), float(translate[1]))
        if interpolation not in ('nearest', 'bilinear'):
            raise ValueError(f'affine interpolation must be "nearest" or '
                             f'"bilinear", got {interpolation!r}.')
        self.interpolation = interpolation

    def sample(self, generator, n, shape):
        h, w = shape[-2:]
        angle = _uniform(generator, n, *self.degrees)
        mx, my = self.translate[0] * w, self.translate[1] * h
        tx = _uniform(generator, n, -mx, mx).round()
        ty = _uniform(generator, n, -my, my).round()
        return {'angle': angle, 'translate': torch.stack((tx, ty), dim=1)}

    def apply(self, img, params):
        x, single = _batched(img)
        b, c, h, w = x.shape
        rad = torch.deg2rad(params['angle'].to(x.device, torch.float64))
        txy = params['translate'].to(x.device, torch.float64)
        cos, sin = torch.cos(rad), torch.sin(rad)
        tx, ty = txy[:, 0], txy[:, 1]
        # Inverse map, in pixel units about the centre:
        #   x_in = cos (x - tx) + sin (y - ty);  y_in = -sin (x - tx) + cos
        #   (y - ty); rewritten for affine_grid's normalised coordinates.
        theta = torch.stack((
            torch.stack((cos, sin * h / w, -(cos * tx + sin * ty) * 2 / w), 1),
            torch.stack((-sin * w / h, cos, (sin * tx - cos * ty) * 2 / h), 1),
        ), dim=1).to(x.dtype)
        grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
        out = F.grid_sample(x, grid, mode=self.interpolation,
                            padding_mode='zeros', align_corners=False)
        return _unbatch(out, single)


def _sample_boxes(generator, n: int, h: int, w: int, scale: Range,
                  ratio: Range, erasing: bool = False, attempts: int = 10):
    """torchvision-style area/aspect box sampling, vectorised over ``n``.

    Each of ``attempts`` tries draws an area ``U(scale) * h * w`` and an
    aspect ``r = exp(U(log ratio))``. Crops (``erasing=False``) use
    ``bw = round(sqrt(area r))``, ``bh = round(sqrt(area / r))`` and must
    satisfy ``0 < bw <= w``, ``0 < bh <= h``; erasing uses the transposed
    sizes and must satisfy ``bh < h``, ``bw < w``.

    Returns:
        tuple: ``(bh, bw, found)``, each ``(n,)``: sizes of the first try
        that fits, and whether any try fitted.
    """
    dev = _device(generator)
    area = _uniform(generator, n * attempts, *scale).mul_(h * w)
    aspect = _uniform(generator, n * attempts, math.log(ratio[0]),
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


class RandomResizedCrop(AugmentOp):
    """Crop a random area/aspect box and resize it to a fixed ``size``.

    Box sampling follows torchvision's ``RandomResizedCrop`` (10 tries of
    area fraction in ``scale`` and log-uniform aspect in ``ratio``; if none
    fits, the centre crop of the clamped aspect). Resizing is bilinear with
    ``align_corners=False`` and **no antialiasing** (identical to
    ``F.interpolate(crop, size, mode='bilinear')``). Params: ``box``
    ``(n, 4)`` int ``[top, left, height, width]``.

    :meth:`sample_plain` gives plain ``size`` crops (random position or
    centre, no resizing); ``SRHAugment`` uses them when the op does not
    fire, so every view has the same size.

    Args:
        size (int | tuple): Output ``(h, w)``. Defaults to 224.
        scale (tuple): Area fraction range. Defaults to ``(0.08, 1.0)``.
        ratio (tuple): Aspect (w / h) range. Defaults to ``(3/4, 4/3)``.

    Example:
        >>> op = RandomResizedCrop(size=32)
        >>> x = torch.rand(2, 3, 64, 64)
        >>> op.apply(x, op.sample(None, 2, x.shape[1:])).shape
        torch.Size([2, 3, 32, 32])
    """

    name = 'random_resized_crop'

    def __init__(self, size: Union[int, Tuple[int, int]] = 224,
                 scale: Range = (0.08, 1.0),
                 ratio: Range = (3.0 / 4.0, 4.0 / 3.0)):
        self.size = _as_size(size, 'random_resized_crop size')
        self.scale = _as_pair(scale, 'random_resized_crop scale', low=1e-8)
        if self.scale[1] > 1:
            raise ValueError(f'random_resized_crop scale must lie in (0, 1], '
                             f'got {scale!r}.')
        self.ratio = _as_pair(ratio, 'random_resized_crop ratio', low=1e-8)

    def output_shape(self, shape):
        return (shape[0], ) + self.size

    def sample(self, generator, n, shape):
        h, w = shape[-2:]
        bh, bw, found = _sample_boxes(generator, n, h, w, self.scale,
                                      self.ratio)
        # fallback: centre crop with the aspect clamped into ``ratio``
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            fh, fw = h, int(round(h * self.ratio[1]))
        else:
            fh, fw = h, w
        bh = torch.where(found, bh, torch.full_like(bh, fh))
        bw = torch.where(found, bw, torch.full_like(bw, fw))
        top = _randint_below(generator, h - bh + 1)
        left = _randint_below(generator, w - bw + 1)
        top = torch.where(found, top, torch.full_like(top, (h - fh) // 2))
        left = torch.where(found, left, torch.full_like(left, (w - fw) // 2))
        return {'box': torch.stack((top, left, bh, bw), dim=1)}

    def sample_plain(self, generator, n, shape, random_position=True):
        """Boxes of exactly ``size`` (random position or centre).

        When the image is smaller than ``size`` in a dimension, the box
        spans that whole dimension (and ``apply`` upsamples).
        """
        h, w = shape[-2:]
        dev = _device(generator)
        bh, bw = min(self.size[0], h), min(self.size[1], w)
        if random_position:
            top = _randint_below(generator, torch.full((n, ), h - bh + 1,
                                                       device=dev))
            left = _randint_below(generator, torch.full((n, ), w - bw + 1,
                                                        device=dev))
        else:
            top = torch.full((n, ), (h - bh) // 2, device=dev)
            left = torch.full((n, ), (w - bw) // 2, device=dev)
        return {'box': torch.stack(
            (top, left, torch.full_like(top, bh), torch.full_like(top, bw)),
            dim=1)}

    def apply(self, img, params):
        x, single = _batched(img)
        boxes = params['box']
        if boxes.shape[0] != x.shape[0]:
            raise ValueError(f'random_resized_crop: {boxes.shape[0]} boxes '
                             f'for {x.shape[0]} images.')
        oh, ow = self.size
        if x.shape[0] == 1:
            t, l, bh, bw = boxes[0].tolist()
            out = x[..., t:t + bh, l:l + bw]
            if (bh, bw) != (oh, ow):
                out = F.interpolate(out, size=(oh, ow), mode='bilinear',
                                    align_corners=False, antialias=False)
            else:
                out = out.clone()
            return _unbatch(out, single)
        return _unbatch(self._grid_crop(x, boxes), single)

    def apply_dense(self, img, params):
        """:meth:`apply` with no host reads: always the batched
        ``grid_sample`` crop, also for ``n = 1`` (where :meth:`apply` slices
        the box read on the host and calls ``interpolate``; the two agree up
        to float rounding, about 3e-5). For ``n > 1`` identical to
        :meth:`apply`.

        Example:
            >>> op = RandomResizedCrop(size=4)
            >>> x = torch.rand(3, 8, 8)
            >>> box = torch.tensor([[2, 2, 4, 4]])  # exactly 4 x 4: a copy
            >>> torch.allclose(op.apply_dense(x, {'box': box}),
            ...                x[:, 2:6, 2:6], atol=1e-6)
            True
        """
        x, single = _batched(img)
        boxes = params['box']
        if boxes.shape[0] != x.shape[0]:
            raise ValueError(f'random_resized_crop: {boxes.shape[0]} boxes '
                             f'for {x.shape[0]} images.')
        return _unbatch(self._grid_crop(x, boxes), single)

    def _grid_crop(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Batched crop+resize with grid_sample, matching ``interpolate``.

        Source pixel (crop-local) ``s = (d + 0.5) * box / out - 0.5``,
        clamped to ``[0, box - 1]`` as ``interpolate`` does at the edges.
        """
        b, c, h, w = x.shape
        oh, ow = self.size
        boxes = boxes.to(device=x.device, dtype=x.dtype)
        top, left, bh, bw = boxes.unbind(1)

        def coords(start, length, out, full):
            d = torch.arange(out, device=x.device, dtype=x.dtype) + 0.5
            s = d.view(1, -1) * (length / out).view(-1, 1) - 0.5
            s = torch.minimum(s.clamp(min=0.0), (length - 1).view(-1, 1))
            return (2.0 * (s + start.view(-1, 1)) + 1.0) / full - 1.0

        gy = coords(top, bh, oh, h)  # (B, oh)
        gx = coords(left, bw, ow, w)  # (B, ow)
        grid = torch.stack((gx.view(b, 1, ow).expand(b, oh, ow),
                            gy.view(b, oh, 1).expand(b, oh, ow)), dim=-1)
        return F.grid_sample(x, grid, mode='bilinear', padding_mode='border',
                             align_corners=False)


class RandomErasing(AugmentOp):
    """Set a random rectangle to ``value`` (torchvision ``RandomErasing``).

    Box area fraction uniform in ``scale`` and log-uniform aspect in
    ``ratio``; up to 10 tries for a box strictly smaller than the image,
    otherwise nothing is erased. Params: ``box`` ``(n, 4)`` int
    ``[top, left, height, width]`` (height 0 = no erasing).

    Args:
        scale (tuple): Erased area fraction. Defaults to ``(0.02, 0.33)``.
        ratio (tuple): Aspect range. Defaults to ``(0.3, 3.3)``.
        value (float): Fill value. Defaults to 0.

    Example:
        >>> op = RandomErasing()
        >>> box = torch.tensor([[1, 1, 2, 2]])
        >>> op.apply(torch.ones(1, 4, 4), {'box': box})[0, 1:3, 1:3]
        tensor([[0., 0.],
                [0., 0.]])
    """

    name = 'erasing'

    def __init__(self, scale: Range = (0.02, 0.33),
                 ratio: Range = (0.3, 3.3), value: float = 0.0):
        self.scale = _as_pair(scale, 'erasing scale')
        if self.scale[1] > 1:
            raise ValueError(f'erasing scale must lie in [0, 1], got '
                             f'{scale!r}.')
        self.ratio = _as_pair(ratio, 'erasing ratio', low=1e-8)
        self.value = float(value)

    def sample(self, generator, n, shape):
        h, w = shape[-2:]
        bh, bw, found = _sample_boxes(generator, n, h, w, self.scale,
                                      self.ratio, erasing=True)
        bh = torch.where(found, bh, torch.zeros_like(bh))
        bw = torch.where(found, bw, torch.zeros_like(bw))
        top = _randint_below(generator, h - bh + 1)
        left = _randint_below(generator, w - bw + 1)
        return {'box': torch.stack((top, left, bh, bw), dim=1)}

    def apply(self, img, params):
        x, single = _batched(img)
        boxes = params['box']
        if boxes.shape[0] != x.shape[0]:
            raise ValueError(f'erasing: {boxes.shape[0]} boxes for '
                             f'{x.shape[0]} images.')
        out = x.clone()
        if x.shape[0] == 1:
            t, l, bh, bw = boxes[0].tolist()
            out[..., t:t + bh, l:l + bw] = self.value
            return _unbatch(out, single)
        return _unbatch(self._mask_erase(out, boxes), single)

    def apply_dense(self, img, params):
        """:meth:`apply` with no host reads: the batched mask fill also for
        ``n = 1`` (bit-exact with :meth:`apply`).

        Example:
            >>> op = RandomErasing()
            >>> box = torch.tensor([[0, 0, 1, 2]])
            >>> op.apply_dense(torch.ones(1, 2, 2), {'box': box})
            tensor([[[0., 0.],
                     [1., 1.]]])
        """
        x, single = _batched(img)
        boxes = params['box']
        if boxes.shape[0] != x.shape[0]:
            raise ValueError(f'erasing: {boxes.shape[0]} boxes for '
                             f'{x.shape[0]} images.')
        return _unbatch(self._mask_erase(x.clone(), boxes), single)

    def _mask_erase(self, out: torch.Tensor,
                    boxes: torch.Tensor) -> torch.Tensor:
        """Fill ``boxes`` ``(B, 4)`` of ``out`` ``(B, C, H, W)`` in place."""
        h, w = out.shape[-2:]
        boxes = boxes.to(out.device)
        top, left, bh, bw = (v.view(-1, 1) for v in boxes.unbind(1))
        rows = torch.arange(h, device=out.device).view(1, -1)
        cols = torch.arange(w, device=out.device).view(1, -1)
        in_r = (rows >= top) & (rows < top + bh)  # (B, H)
        in_c = (cols >= left) & (cols < left + bw)  # (B, W)
        mask = (in_r.unsqueeze(2) & in_c.unsqueeze(1)).unsqueeze(1)
        return out.masked_fill_(mask, self.value)


#: Op name -> class, for ``SRHAugment(ops=[dict(type=name, ...)])``.
AUGMENT_OPS = {
    cls.name: cls
    for cls in (Resize, HorizontalFlip, VerticalFlip, GaussianNoise,
                ColorJitter, RandomAutocontrast, RandomSolarize,
                RandomSharpness, GaussianBlur, RandomAffine,
                RandomResizedCrop, RandomErasing)
}


def build_augment_op(cfg: Union[str, dict, AugmentOp]) -> AugmentOp:
    """Build an op from its name, a ``dict(type=name, **kwargs)`` or itself.

    Raises:
        ValueError: Unknown ``type`` (lists the valid names) or bad kwargs.

    Example:
        >>> build_augment_op(dict(type='gaussian_noise', std=0.05)).std
        (0.05, 0.05)
    """
    if isinstance(cfg, AugmentOp):
        return cfg
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f'an augmentation op must be a name or a dict with '
                         f'"type" (one of {sorted(AUGMENT_OPS)}), got '
                         f'{cfg!r}.')
    kwargs = dict(cfg)
    name = kwargs.pop('type')
    if name not in AUGMENT_OPS:
        raise ValueError(f'unknown augmentation op {name!r}; valid names: '
                         f'{sorted(AUGMENT_OPS)}.')
    try:
        return AUGMENT_OPS[name](**kwargs)
    except TypeError as err:
        raise ValueError(f'bad arguments for augmentation op {name!r}: '
                         f'{err}. See the docstring of '
                         f'{AUGMENT_OPS[name].__name__}.') from err
