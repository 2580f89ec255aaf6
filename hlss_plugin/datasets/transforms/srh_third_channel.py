"""``SRHThirdChannel``: raw 2-channel SRH -> 3-channel image in ``[0, 1]``."""
from typing import Union

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from hlss_plugin.augmentation.srh_third_channel import srh_third_channel


@TRANSFORMS.register_module()
class SRHThirdChannel(BaseTransform):
    """Turn a raw 2-channel SRH patch into a 3-channel image in ``[0, 1]``.

    See :func:`srh_third_channel` for the formula. Use it right after
    :class:`~hlss_plugin.datasets.transforms.loading.LoadSRHPatch`.

    **Required keys:** ``img`` (raw ``(2, H, W)`` tensor).
    **Modified keys:** ``img`` (``(3, H, W)`` in ``[0, 1]``).

    Args:
        base (float): Offset added to ``CH3 - CH2``. Defaults to 5000.
        max_value (float): Divisor to reach ``[0, 1]``. Defaults to 65535.

    Example:
        >>> t = SRHThirdChannel()
        >>> t(dict(img=torch.zeros(2, 8, 8)))['img'].shape
        torch.Size([3, 8, 8])
    """

    def __init__(self, base: float = 5000.0, max_value: float = 65535.0):
        if not max_value > 0:
            raise ValueError(f'SRHThirdChannel: max_value must be > 0 (65535 '
                             f'for uint16 SRH), got {max_value}.')
        self.base = float(base)
        self.max_value = float(max_value)

    def transform(self, results: dict) -> dict:
        img: Union[torch.Tensor, np.ndarray] = results['img']
        if isinstance(img, np.ndarray):
            img = torch.from_numpy(img)
        results['img'] = srh_third_channel(img, self.base, self.max_value)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(base={self.base}, '
                f'max_value={self.max_value})')
