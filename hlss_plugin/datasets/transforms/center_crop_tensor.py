"""Deterministic centre crop of ``(C, H, W)`` tensors (evaluation views)."""
from typing import Sequence, Tuple, Union

import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from .size_pair import size_pair


def center_crop_box(height: int, width: int,
                    size: Union[int, Sequence[int]]
                    ) -> Tuple[int, int, int, int]:
    """The centre ``size`` box of a ``height x width`` image.

    Offsets ``round((height - h) / 2)`` and ``round((width - w) / 2)``
    (Python's round-half-to-even), as in
    ``torchvision.transforms.functional.center_crop``; the rule of
    :class:`CenterCropTensor`.

    Args:
        height (int): Image height.
        width (int): Image width.
        size (int | tuple[int, int]): Crop ``(h, w)``; an int gives a
            square.

    Returns:
        tuple[int, int, int, int]: ``(top, left, h, w)``; the crop is
        ``img[..., top:top + h, left:left + w]``.

    Raises:
        ValueError: ``size`` is not a positive int / pair, or larger than
            the image.

    Example:
        >>> center_crop_box(300, 300, 224)
        (38, 38, 224, 224)
        >>> center_crop_box(5, 4, (2, 2))
        (2, 1, 2, 2)
    """
    h, w = size_pair(size, 'center_crop_box')
    if h > height or w > width:
        raise ValueError(
            f'center_crop_box: size ({h}, {w}) is larger than the image '
            f'({height}, {width}); lower size to at most ({height}, '
            f'{width}) or resize the image first.')
    top = int(round((height - h) / 2.0))
    left = int(round((width - w) / 2.0))
    return top, left, h, w


@TRANSFORMS.register_module()
class CenterCropTensor(BaseTransform):
    """Crop the centre ``size`` of a ``(C, H, W)`` tensor image.

    The offsets are ``round((H - h) / 2)`` and ``round((W - w) / 2)``, as in
    ``torchvision.transforms.functional.center_crop``
    (:func:`center_crop_box`). mmcv's ``CenterCrop``
    works on ``(H, W, C)`` numpy images; this one keeps the float tensors
    that ``LoadSRHPatch`` / ``SRHThirdChannel`` produce. An image smaller
    than ``size`` is an error (no silent padding).

    **Required keys:** ``img`` (tensor ``(C, H, W)``).
    **Modified keys:** ``img``, ``img_shape``.

    Args:
        size (int | tuple[int, int]): Output ``(h, w)``; an int gives a
            square.

    Example:
        >>> img = torch.arange(16.).view(1, 4, 4)
        >>> CenterCropTensor(2)(dict(img=img))['img']
        tensor([[[ 5.,  6.],
                 [ 9., 10.]]])
    """

    def __init__(self, size: Union[int, Sequence[int]] = 224):
        self.size = size_pair(size, 'CenterCropTensor')

    def transform(self, results: dict) -> dict:
        img = results['img']
        if not isinstance(img, torch.Tensor) or img.ndim != 3:
            raise ValueError(
                f'CenterCropTensor expects results["img"] as a (C, H, W) '
                f'tensor, got {type(img).__name__} '
                f'{tuple(getattr(img, "shape", ()))}. Load with '
                f'LoadSRHPatch/LoadPatchImage first, or use mmcv\'s '
                f'CenterCrop for numpy images.')
        h, w = self.size
        height, width = img.shape[-2:]
        if h > height or w > width:
            raise ValueError(
                f'CenterCropTensor(size={self.size}) cannot crop '
                f'{results.get("img_path", "the image")} of size '
                f'{height}x{width}; lower size to at most '
                f'({height}, {width}) or resize the patches first.')
        top, left, h, w = center_crop_box(height, width, self.size)
        results['img'] = img[:, top:top + h, left:left + w]
        results['img_shape'] = (h, w)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size})'
