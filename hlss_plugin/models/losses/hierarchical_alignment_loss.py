"""Symmetric-KL alignment of visual embeddings with their nearest attribute
text embedding (one level of HLSS's hierarchical alignment)."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

_REDUCTIONS = ('mean', 'sum', 'none')


def symmetric_kl_div(logits_p: torch.Tensor,
                     logits_q: torch.Tensor,
                     temperature: float = 1.0) -> torch.Tensor:
    """Row-wise ``KL(p || q) + KL(q || p)`` with ``p = softmax(logits_p / t)``
    and ``q = softmax(logits_q / t)`` over the last dimension.

    ``KL(p || q) + KL(q || p) = sum_a (p_a - q_a) * (log p_a - log q_a)``, so
    the result is symmetric in its two arguments, >= 0, and 0 exactly when
    ``p == q``.

    Args:
        logits_p (Tensor): ``(..., A)``.
        logits_q (Tensor): ``(..., A)``, same shape as ``logits_p``.
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
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum(dim=-1)


@MODELS.register_module()
class HierarchicalAlignmentLoss(nn.Module):
    """Align visual embeddings with their nearest attribute description.

    One level (patch, slide or patient) of the hierarchical alignment of HLSS
    (Watawana et al., "Hierarchical Text-to-Vision Self Supervised Alignment
    for Improved Histopathology Representation Learning", MICCAI 2024,
    https://arxiv.org/abs/2403.14616).

    A level's head maps both the visual features and the ``M`` attribute text
    embeddings into the same ``A``-dimensional attribute space (in HLSS
    ``M = A``: entry ``a`` of a head output is the similarity to attribute
    ``a``). For each visual row ``v``::

        a*   = argmax_a cos(v, text[a])                      (no gradient)
        p    = softmax(v / tau),   q = softmax(text[a*] / tau)
        loss = KL(p || q) + KL(q || p)

    reduced over rows (``'mean'``, ``'sum'`` or ``'none'``) and multiplied by
    ``loss_weight``. The nearest indices are available from :meth:`nearest`
    for interpretability.

    This loss does not gather across ranks: it is computed per sample and
    the ``'mean'`` reduction averages over the rows of this rank only, which
    under DDP's gradient averaging equals single-process training on the
    concatenated batch when every rank holds the same number of rows.

    Args:
        detach (bool): If True the returned value is detached (carries no
            gradient, for logging only), which reproduces the published HLSS
            code. Defaults to False (differentiable with respect to both
            ``visual`` and ``text``).
        temperature (float): Softmax temperature ``tau`` > 0. Defaults to 1.0.
        reduction (str): ``'mean'``, ``'sum'`` or ``'none'``. Defaults to
            ``'mean'``.
        loss_weight (float): Finite factor >= 0. Defaults to 1.0.

    Shapes:
        - visual: ``(N, A)``, or ``(N, V, A)`` for ``V`` views (every view is
          a row).
        - text: ``(M, A)``, row ``a`` = attribute ``a`` through the same head
          (``M = A`` in HLSS).
        - output: scalar, or ``visual.shape[:-1]`` with ``reduction='none'``.

    Example:
        >>> loss_fn = HierarchicalAlignmentLoss()
        >>> visual = torch.randn(8, 2, 24)    # 8 patches, 2 views, 24 attrs
        >>> text = torch.randn(24, 24)
        >>> loss_fn(visual, text).shape
        torch.Size([])
        >>> loss_fn.nearest(visual, text).shape
        torch.Size([8, 2])
    """

    def __init__(self,
                 detach: bool = False,
                 temperature: float = 1.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0):
        super().__init__()
        if not isinstance(detach, bool):
            raise ValueError('HierarchicalAlignmentLoss: detach must be True '
                             f'or False, got {detach!r}.')
        if isinstance(temperature, bool) or \
                not isinstance(temperature, (int, float)) or \
                not math.isfinite(temperature) or temperature <= 0:
            raise ValueError('HierarchicalAlignmentLoss: temperature must be '
                             f'a finite number > 0, got {temperature!r}.')
        if reduction not in _REDUCTIONS:
            raise ValueError('HierarchicalAlignmentLoss: reduction must be '
                             f'one of {_REDUCTIONS}, got {reduction!r}.')
        if isinstance(loss_weight, bool) or \
                not isinstance(loss_weight, (int, float)) or \
                not math.isfinite(loss_weight) or loss_weight < 0:
            raise ValueError('HierarchicalAlignmentLoss: loss_weight must be '
                             f'a finite number >= 0, got {loss_weight!r}.')
        self.detach = detach
        self.temperature = float(temperature)
        self.reduction = reduction
        self.loss_weight = float(loss_weight)

    def extra_repr(self) -> str:
        return (f'detach={self.detach}, temperature={self.temperature}, '
                f'reduction={self.reduction!r}, '
                f'loss_weight={self.loss_weight}')

    @staticmethod
    def _check_inputs(visual: torch.Tensor, text: torch.Tensor) -> None:
        if not isinstance(visual, torch.Tensor) or visual.dim() not in (2, 3):
            got = tuple(visual.shape) if isinstance(
                visual, torch.Tensor) else type(visual).__name__
            raise ValueError(
                'HierarchicalAlignmentLoss: visual must be a tensor of shape '
                f'(N, A) or (N, V, A) (head outputs in attribute space), got '
                f'{got}.')
        if not isinstance(text, torch.Tensor) or text.dim() != 2:
            got = tuple(text.shape) if isinstance(
                text, torch.Tensor) else type(text).__name__
            raise ValueError(
                'HierarchicalAlignmentLoss: text must be a tensor of shape '
                '(M, A): the head applied to the M attribute text '
                f'embeddings (M = A in HLSS), got {got}.')
        if not visual.is_floating_point() or not text.is_floating_point():
            raise ValueError(
                'HierarchicalAlignmentLoss: visual and text must be floating '
                f'point tensors, got {visual.dtype} and {text.dtype}.')
        if visual.dtype != text.dtype or visual.device != text.device:
            raise ValueError(
                'HierarchicalAlignmentLoss: visual and text must share dtype '
                f'and device, got {visual.dtype}/{visual.device} and '
                f'{text.dtype}/{text.device}.')
        if visual.numel() == 0 or text.numel() == 0:
            raise ValueError(
                'HierarchicalAlignmentLoss: empty input, got visual '
                f'{tuple(visual.shape)} and text {tuple(text.shape)}.')
        if text.shape[1] != visual.shape[-1]:
            raise ValueError(
                'HierarchicalAlignmentLoss: the last dimension A of visual '
                f'{tuple(visual.shape)} and of text {tuple(text.shape)} must '
                'agree (both are outputs of the same head).')

    def nearest(self, visual: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        """Index of the text row with the highest cosine similarity.

        Args:
            visual (Tensor): ``(N, A)`` or ``(N, V, A)``.
            text (Tensor): ``(M, A)``.

        Returns:
            Tensor: int64 indices in ``[0, M)`` of shape ``visual.shape[:-1]``.
        """
        self._check_inputs(visual, text)
        with torch.no_grad():
            sim = F.normalize(visual, dim=-1) @ F.normalize(text, dim=-1).t()
            return sim.argmax(dim=-1)

    def forward(self, visual: torch.Tensor,
                text: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            visual (Tensor): ``(N, A)`` or ``(N, V, A)`` head outputs.
            text (Tensor): ``(M, A)`` head outputs of the attribute texts.

        Returns:
            Tensor: Scalar, or ``visual.shape[:-1]`` for ``reduction='none'``.
        """
        idx = self.nearest(visual, text)
        per_row = symmetric_kl_div(visual, text[idx], self.temperature)
        if self.reduction == 'mean':
            loss = per_row.mean()
        elif self.reduction == 'sum':
            loss = per_row.sum()
        else:
            loss = per_row
        loss = self.loss_weight * loss
        return loss.detach() if self.detach else loss
