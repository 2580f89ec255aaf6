"""Deterministic resize of whole ``(C, H, W)`` tensors (evaluation views)."""
from typing import Sequence, Union

import torch
import torch.nn.functional as F
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from .size_pair import size_pair

#: Interpolation modes :class:`ResizeTensor` accepts.
INTERPOLATIONS = ('bilinear', 'bicubic')


@TRANSFORMS.register_module()
class ResizeTensor(BaseTransform):
    """Resize a whole ``(C, H, W)`` float tensor image to ``size``.

    The evaluation view of the HiDisc / HLSS code: the whole 300 px patch
    resized to 224 x 224 with bicubic interpolation, not a crop (HLSS
    ``get_srh_base_aug`` in ``hlss/datasets/improc.py``,
    https://github.com/Hasindri/HLSS: torchvision
    ``Resize(size=(224, 224), interpolation=BICUBIC)`` on the float tensor
    after the third channel and the clamp to ``[0, 1]``). That code pins
    torchvision 0.16, whose tensor resize does **not** antialias by default,
    hence ``antialias=False`` here (torchvision >= 0.17 defaults to True;
    PIL images are always antialiased). The output is not clamped, as
    there: bicubic interpolation may overshoot the input range slightly.

    Equal to ``torchvision.transforms.functional.resize(img, list(size),
    interpolation, antialias=antialias)`` on float32/float64 tensors; other
    float dtypes are resized in float32 and cast back. Unlike torchvision's,
    an int ``size`` gives a square, not the length of the shorter edge.
    mmcv's ``Resize`` works on ``(H, W, C)`` numpy images; this one keeps
    the float tensors that ``LoadSRHPatch`` / ``SRHThirdChannel`` produce.

    **Required keys:** ``img`` (float tensor ``(C, H, W)``).
    **Modified keys:** ``img``, ``img_shape``.

    Args:
        size (int | tuple[int, int]): Output ``(h, w)``; an int gives a
            square. Defaults to 224.
        interpolation (str): ``'bicubic'`` or ``'bilinear'``. Defaults to
            ``'bicubic'``.
        antialias (bool): Low-pass filter when downsampling. Defaults to
            False (the published pipeline).

    Example:
        >>> img = torch.rand(3, 300, 300)
        >>> ResizeTensor(224)(dict(img=img))['img'].shape
        torch.Size([3, 224, 224])
    """

    def __init__(self,
                 size: Union[int, Sequence[int]] = 224,
                 interpolation: str = 'bicubic',
                 antialias: bool = False):
        self.size = size_pair(size, 'ResizeTensor')
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f'ResizeTensor: interpolation must be one of '
                             f'{INTERPOLATIONS}, got {interpolation!r}.')
        if not isinstance(antialias, bool):
            raise ValueError(f'ResizeTensor: antialias must be True or '
                             f'False, got {antialias!r}.')
        self.interpolation = interpolation
        self.antialias = antialias

    def transform(self, results: dict) -> dict:
        img = results['img']
        if not isinstance(img, torch.Tensor) or img.ndim != 3 \
                or not img.is_floating_point():
            raise ValueError(
                f'ResizeTensor expects results["img"] as a (C, H, W) float '
                f'tensor, got {type(img).__name__} '
                f'{tuple(getattr(img, "shape", ()))} '
                f'{getattr(img, "dtype", "")}. Load with '
                f'LoadSRHPatch/LoadPatchImage first, or use mmcv\'s Resize '
                f'for numpy images.')
        if tuple(img.shape[-2:]) != self.size:
            work = img if img.dtype in (torch.float32, torch.float64) \
                else img.float()
            out = F.interpolate(work[None], size=self.size,
                                mode=self.interpolation, align_corners=False,
                                antialias=self.antialias)[0]
            img = out.to(img.dtype)
        results['img'] = img
        results['img_shape'] = self.size
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(size={self.size}, '
                f'interpolation={self.interpolation!r}, '
                f'antialias={self.antialias})')
