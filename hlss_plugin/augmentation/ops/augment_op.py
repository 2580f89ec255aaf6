"""``AugmentOp``: the base class of the ops, their params and batch helpers.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch

Params = Dict[str, torch.Tensor]


def as_batch(img: torch.Tensor) -> Tuple[torch.Tensor, bool]:
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


def unbatch(img: torch.Tensor, single: bool) -> torch.Tensor:
    """Undo :func:`as_batch`: ``img[0]`` when the input was unbatched."""
    return img[0] if single else img


def per_sample(t: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """Reshape a ``(B,)`` parameter to broadcast over ``(B, C, H, W)``."""
    if t.shape[0] != img.shape[0]:
        raise ValueError(f'params hold {t.shape[0]} samples but the image '
                         f'batch has {img.shape[0]}; sample params with '
                         f'n equal to the batch size (n=1 for (C, H, W)).')
    return t.to(device=img.device, dtype=img.dtype).view(-1, 1, 1, 1)


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
            >>> from hlss_plugin.augmentation.ops import HorizontalFlip
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
