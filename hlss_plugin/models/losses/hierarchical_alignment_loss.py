"""Symmetric-KL alignment of visual embeddings with the fixed text embedding
of their nearest attribute (one level of HLSS's hierarchical alignment)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from hlss_plugin.utils.dist import gather, world_size

_REDUCTIONS = ('sum', 'mean', 'none')


def symmetric_kl_div(logits_p: torch.Tensor,
                     logits_q: torch.Tensor,
                     temperature: float = 1.0) -> torch.Tensor:
    """Row-wise ``(KL(p || q) + KL(q || p)) / 2`` with
    ``p = softmax(logits_p / t)`` and ``q = softmax(logits_q / t)`` over the
    last dimension.

    ``KL(p || q) + KL(q || p) = sum_a (p_a - q_a) * (log p_a - log q_a)``, so
    the result is symmetric in its two arguments, >= 0, and 0 exactly when
    ``p == q``.

    Args:
        logits_p (Tensor): ``(..., D)``.
        logits_q (Tensor): ``(..., D)``, same shape as ``logits_p``.
        temperature (float): Softmax temperature > 0. Defaults to 1.0.

    Returns:
        Tensor: ``(...)``, one value per row.

    Example:
        >>> x = torch.randn(4, 5)
        >>> symmetric_kl_div(x, x).abs().max().item()
        0.0
    """
    log_p = F.log_softmax(logits_p / temperature, dim=-1)
    log_q = F.log_softmax(logits_q / temperature, dim=-1)
    return 0.5 * ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)


def _number(value, name: str, low: float, strict: bool) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) \
        and math.isfinite(value) and (value > low if strict else value >= low)
    if not ok:
        rel = '>' if strict else '>='
        raise ValueError(f'HierarchicalAlignmentLoss: {name} must be a finite '
                         f'number {rel} {low:g}, got {value!r}.')
    return float(value)


@MODELS.register_module()
class HierarchicalAlignmentLoss(nn.Module):
    """Align visual embeddings with their nearest attribute's text embedding.

    One level (patch, slide or patient) of the hierarchical alignment (HA) of
    HLSS (Watawana et al., "Hierarchical Text-to-Vision Self Supervised
    Alignment for Improved Histopathology Representation Learning", MICCAI
    2024, https://arxiv.org/abs/2403.14616).

    ``visual`` are image embeddings in the text tower's space (the
    L2-normalised image embedding when the visual and text towers share a
    space, as CLIP's do); ``text`` are the level's ``M`` attribute text
    embeddings, a **fixed** target (a buffer, never a function of trainable
    weights). For each visual row ``v`` (every view is a row)::

        a*   = argmax_a cos(v, text[a])                      (no gradient)
        p    = softmax(v / tau),   q = softmax(text[a*] / tau)   over D
        l(v) = (KL(p || q) + KL(q || p)) / 2

    and the loss is ``loss_weight * sum_v l(v)`` (``reduction='sum'``, the
    published form) or the mean over rows (``'mean'``).

    The published HLSS code computes this value in the 1024-d CLIP space at
    ``tau = 1``, summed over all views gathered from every GPU, and adds it
    to the objective as a plain number, i.e. **without gradient**:
    ``detach=True`` reproduces that exactly (the term is logged and counted
    in the total loss but trains nothing). ``detach=False`` is the
    differentiable variant: the gradient flows into ``visual`` only, the
    target stays fixed.

    **Distributed** (``gather_distributed=True`` and more than one rank):
    the rows of all ranks are gathered (through
    :func:`hlss_plugin.utils.dist.gather`) and the loss is computed
    **globally on each rank**; every rank returns the same value, equal to
    single-process computation on the concatenated batch. The gather's
    backward sums gradients over ranks and DDP averages them, so the
    parameter gradients equal single-process training (tested with 2 gloo
    processes). Without gathering, ``'sum'`` sums this rank's rows only.

    Args:
        detach (bool): Return the value without gradient (published HLSS).
            Defaults to False.
        temperature (float): Softmax temperature ``tau`` > 0. Defaults to 1.0
            (published).
        reduction (str): ``'sum'`` (published), ``'mean'`` or ``'none'``
            (per row, no gathering). Defaults to ``'sum'``.
        gather_distributed (bool): Gather rows from all ranks before
            reducing. Defaults to False.
        loss_weight (float): Finite factor >= 0. Defaults to 1.0.

    Shapes:
        - visual: ``(N, D)``, or ``(N, V, D)`` for ``V`` views.
        - text: ``(M, D)``, row ``a`` = attribute ``a``'s text embedding.
        - output: scalar, or ``visual.shape[:-1]`` with ``reduction='none'``.

    Example:
        >>> loss_fn = HierarchicalAlignmentLoss(detach=True)  # published
        >>> visual = F.normalize(torch.randn(8, 2, 16), dim=-1)
        >>> text = F.normalize(torch.randn(5, 16), dim=-1)
        >>> loss_fn(visual, text).shape
        torch.Size([])
        >>> loss_fn.nearest(visual, text).shape
        torch.Size([8, 2])
    """

    def __init__(self,
                 detach: bool = False,
                 temperature: float = 1.0,
                 reduction: str = 'sum',
                 gather_distributed: bool = False,
                 loss_weight: float = 1.0):
        super().__init__()
        for name, flag in (('detach', detach),
                           ('gather_distributed', gather_distributed)):
            if not isinstance(flag, bool):
                raise ValueError(f'HierarchicalAlignmentLoss: {name} must be '
                                 f'True or False, got {flag!r}.')
        if reduction not in _REDUCTIONS:
            raise ValueError('HierarchicalAlignmentLoss: reduction must be '
                             f'one of {_REDUCTIONS}, got {reduction!r}.')
        self.detach = detach
        self.temperature = _number(temperature, 'temperature', 0, True)
        self.reduction = reduction
        self.gather_distributed = gather_distributed
        self.loss_weight = _number(loss_weight, 'loss_weight', 0, False)

    def extra_repr(self) -> str:
        return (f'detach={self.detach}, temperature={self.temperature}, '
                f'reduction={self.reduction!r}, '
                f'gather_distributed={self.gather_distributed}, '
                f'loss_weight={self.loss_weight}')

    @staticmethod
    def _check_inputs(visual: torch.Tensor, text: torch.Tensor) -> None:
        if not isinstance(visual, torch.Tensor) or visual.dim() not in (2, 3):
            got = tuple(visual.shape) if isinstance(
                visual, torch.Tensor) else type(visual).__name__
            raise ValueError(
                'HierarchicalAlignmentLoss: visual must be a tensor of shape '
                f'(N, D) or (N, V, D) (image embeddings in the text space), '
                f'got {got}.')
        if not isinstance(text, torch.Tensor) or text.dim() != 2:
            got = tuple(text.shape) if isinstance(
                text, torch.Tensor) else type(text).__name__
            raise ValueError(
                'HierarchicalAlignmentLoss: text must be a tensor of shape '
                '(M, D): the level\'s M attribute text embeddings, got '
                f'{got}.')
        if not visual.is_floating_point() or not text.is_floating_point():
            raise ValueError(
                'HierarchicalAlignmentLoss: visual and text must be floating '
                f'point tensors, got {visual.dtype} and {text.dtype}.')
        if visual.device != text.device:
            raise ValueError(
                'HierarchicalAlignmentLoss: visual and text must be on one '
                f'device, got {visual.device} and {text.device}.')
        if visual.numel() == 0 or text.numel() == 0:
            raise ValueError(
                'HierarchicalAlignmentLoss: empty input, got visual '
                f'{tuple(visual.shape)} and text {tuple(text.shape)}.')
        if text.shape[1] != visual.shape[-1]:
            raise ValueError(
                'HierarchicalAlignmentLoss: the embedding size D of visual '
                f'{tuple(visual.shape)} and of text {tuple(text.shape)} must '
                'agree; map the image embedding into the text space first '
                '(HierarchicalTextAlignedHead does).')

    def nearest(self, visual: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        """Index of the text row with the highest cosine similarity.

        Args:
            visual (Tensor): ``(N, D)`` or ``(N, V, D)``.
            text (Tensor): ``(M, D)``.

        Returns:
            Tensor: int64 indices in ``[0, M)`` of shape ``visual.shape[:-1]``.
        """
        self._check_inputs(visual, text)
        with torch.no_grad():
            sim = F.normalize(visual.float(), dim=-1) @ \
                F.normalize(text.float(), dim=-1).t()
            return sim.argmax(dim=-1)

    def forward(self, visual: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            visual (Tensor): ``(N, D)`` or ``(N, V, D)`` image embeddings.
            text (Tensor): ``(M, D)`` fixed attribute text embeddings.

        Returns:
            Tensor: Scalar (the same on every rank when gathering), or
            ``visual.shape[:-1]`` for ``reduction='none'``.
        """
        idx = self.nearest(visual, text)
        target = text.detach().to(visual.dtype)[idx]
        per_row = symmetric_kl_div(visual, target, self.temperature)
        if self.reduction == 'none':
            loss = per_row
        else:
            rows = per_row.reshape(-1)
            if self.gather_distributed and world_size() > 1:
                rows = gather(rows)
            loss = rows.sum() if self.reduction == 'sum' else rows.mean()
        loss = self.loss_weight * loss
        return loss.detach() if self.detach else loss
