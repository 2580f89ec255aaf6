"""A neck that passes the backbone's outputs through unchanged."""
from typing import Tuple

import torch
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

__all__ = ['IdentityNeck']


@MODELS.register_module()
class IdentityNeck(BaseModule):
    """Return the backbone's output tuple as it is.

    For backbones that pool themselves, such as :class:`CLIPResNet` (whose
    last output is the attention-pooled ``(N, output_dim)`` embedding):
    ``HLSS`` always calls a neck and takes the last element of its output,
    and ``GlobalAveragePooling`` would fail on an already pooled 2-D
    tensor. Has no parameters.

    Example:
        >>> neck = IdentityNeck()
        >>> feats = (torch.rand(2, 8, 7, 7), torch.rand(2, 16))
        >>> neck(feats)[-1].shape
        torch.Size([2, 16])
    """

    def forward(self, inputs: Tuple[torch.Tensor, ...]
                ) -> Tuple[torch.Tensor, ...]:
        """Return ``inputs`` (a tensor is wrapped into a 1-tuple)."""
        if isinstance(inputs, torch.Tensor):
            return (inputs, )
        return tuple(inputs)
