"""Geometric ops: resize, flips, rotation + translation (``affine``)."""
import numbers
from typing import Tuple, Union

import torch
import torch.nn.functional as F

from .augment_op import AugmentOp, as_batch, unbatch
from .op_args import Range, number_pair, op_size
from .random_draws import uniform


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
        self.size = op_size(size, 'resize size')
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
        x, single = as_batch(img)
        if tuple(x.shape[-2:]) == self.size:
            return img.clone()
        nearest = self.interpolation == 'nearest'
        out = F.interpolate(x, size=self.size, mode=self.interpolation,
                            align_corners=None if nearest else False,
                            antialias=self.antialias)
        return unbatch(out, single)


class HorizontalFlip(AugmentOp):
    """Mirror left-right (``torch.flip`` on the last dim). No params.

    Example:
        >>> HorizontalFlip().apply(torch.arange(3.).view(1, 1, 3), {})
        tensor([[[2., 1., 0.]]])
    """

    name = 'hflip'

    def apply(self, img, params):
        as_batch(img)
        return img.flip(-1)


class VerticalFlip(AugmentOp):
    """Mirror top-bottom (``torch.flip`` on dim -2). No params.

    Example:
        >>> VerticalFlip().apply(torch.arange(2.).view(1, 2, 1), {}).flatten()
        tensor([1., 0.])
    """

    name = 'vflip'

    def apply(self, img, params):
        as_batch(img)
        return img.flip(-2)


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
        self.degrees = number_pair(degrees, 'affine degrees', low=-360.0)
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
        angle = uniform(generator, n, *self.degrees)
        mx, my = self.translate[0] * w, self.translate[1] * h
        tx = uniform(generator, n, -mx, mx).round()
        ty = uniform(generator, n, -my, my).round()
        return {'angle': angle, 'translate': torch.stack((tx, ty), dim=1)}

    def apply(self, img, params):
        x, single = as_batch(img)
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
        return unbatch(out, single)
