"""Supervised contrastive loss at one level of the patient/slide/patch
hierarchy (one term of HiDisc's / HLSS's hierarchical visual contrast)."""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from hlss_plugin.utils.dist import gather, gather_no_grad, rank, world_size

_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_IDS_SCOPES = ('global', 'rank')


def _positive_float(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f'HierarchicalSupConLoss: {name} must be a finite '
                         f'number > 0, got {value!r}.')
    return float(value)


@MODELS.register_module()
class HierarchicalSupConLoss(nn.Module):
    """SupCon loss whose positives are the patches sharing an id at one level.

    Supervised contrastive loss, ``L_out`` variant of Khosla et al.,
    "Supervised Contrastive Learning", NeurIPS 2020
    (https://arxiv.org/abs/2004.11362), used at the patch, slide and patient
    level as the hierarchical visual contrast of HiDisc (Jiang et al.,
    CVPR 2023, https://arxiv.org/abs/2303.01605) and HLSS (Watawana et al.,
    MICCAI 2024, https://arxiv.org/abs/2403.14616).

    The ``N * V`` embeddings are L2-normalised. Anchor ``i = (n, v)`` has the
    positives ``P(i) = {(m, u) != (n, v) : ids[m] == ids[n]}`` and the
    contrast set ``A(i)`` = all other ``N * V - 1`` embeddings::

        L_i = -(tau / tau_base) / |P(i)| * sum_{p in P(i)} log(
                  exp(z_i . z_p / tau) / sum_{a in A(i)} exp(z_i . z_a / tau))
        loss = loss_weight * mean_i L_i   (over anchors with |P(i)| > 0)

    The grouping comes only from ``ids``, so groups may have different sizes.
    With ``V >= 2`` every anchor has a positive (its other views); anchors
    without positives would be left out of the mean. Pass as ``ids`` the
    patch id for the patch level, the slide id for the slide level and the
    patient id for the patient level.

    **Distributed** (``gather_distributed=True`` and an initialised process
    group with more than one rank): the embeddings (with gradient, through
    :func:`hlss_plugin.utils.dist.gather`) and the ids are gathered from all
    ranks and the loss is computed **globally on each rank** over the
    concatenated batch; every rank returns the same value. The gather's
    backward sums the gradient over ranks, so each rank's local embeddings
    receive ``world_size`` times the gradient of the global loss; DDP's
    gradient averaging divides by ``world_size``, so the parameter gradients
    equal single-process training on the concatenated batch (the test suite
    checks this with 2 gloo processes). ``N`` may differ between ranks;
    ``V``, ``D`` and the dtype must agree.

    Id convention across ranks (``ids_scope``):

    - ``'global'`` (default): ids are dataset-wide (e.g. ``patient_idx``,
      ``slide_idx`` and the dataset sample index as patch id); equal ids on
      different ranks are the same group and are positives of each other.
    - ``'rank'``: ids are only unique within a rank (e.g.
      ``torch.arange(N)`` as patch ids). The loss pairs every id with its
      source rank, so embeddings from different ranks are never positives
      at this level.

    Without a process group both scopes give the same result.

    Args:
        temperature (float): Softmax temperature ``tau`` > 0. Defaults to 0.07.
        base_temperature (float, optional): ``tau_base`` > 0; the loss is
            multiplied by ``tau / tau_base``. ``None`` means ``temperature``
            (factor 1). Defaults to None.
        gather_distributed (bool): Gather embeddings and ids from all ranks
            before computing the loss. Defaults to False.
        ids_scope (str): ``'global'`` or ``'rank'``, see above. Defaults to
            ``'global'``.
        loss_weight (float): Finite factor >= 0 applied to the loss.
            Defaults to 1.0.

    Shapes:
        - embeddings: ``(N, V, D)`` floating point, ``V >= 2`` views of ``N``
          patches (not necessarily normalised).
        - ids: ``(N,)`` integer group id of every patch at this level.
        - output: scalar.

    Example:
        >>> loss_fn = HierarchicalSupConLoss(temperature=0.07)
        >>> emb = torch.randn(6, 2, 16)             # 6 patches, 2 views
        >>> slide_ids = torch.tensor([0, 0, 0, 1, 1, 2])
        >>> loss = loss_fn(emb, slide_ids)
        >>> loss.shape
        torch.Size([])
    """

    def __init__(self,
                 temperature: float = 0.07,
                 base_temperature: Optional[float] = None,
                 gather_distributed: bool = False,
                 ids_scope: str = 'global',
                 loss_weight: float = 1.0):
        super().__init__()
        self.temperature = _positive_float(temperature, 'temperature')
        self.base_temperature = self.temperature if base_temperature is None \
            else _positive_float(base_temperature, 'base_temperature')
        if not isinstance(gather_distributed, bool):
            raise ValueError('HierarchicalSupConLoss: gather_distributed must '
                             f'be True or False, got {gather_distributed!r}.')
        if ids_scope not in _IDS_SCOPES:
            raise ValueError(f'HierarchicalSupConLoss: ids_scope must be one '
                             f'of {_IDS_SCOPES}, got {ids_scope!r}.')
        if isinstance(loss_weight, bool) or \
                not isinstance(loss_weight, (int, float)) or \
                not math.isfinite(loss_weight) or loss_weight < 0:
            raise ValueError('HierarchicalSupConLoss: loss_weight must be a '
                             f'finite number >= 0, got {loss_weight!r}.')
        self.gather_distributed = gather_distributed
        self.ids_scope = ids_scope
        self.loss_weight = float(loss_weight)

    def extra_repr(self) -> str:
        return (f'temperature={self.temperature}, '
                f'base_temperature={self.base_temperature}, '
                f'gather_distributed={self.gather_distributed}, '
                f'ids_scope={self.ids_scope!r}, '
                f'loss_weight={self.loss_weight}')

    @staticmethod
    def _check_inputs(embeddings: torch.Tensor, ids: torch.Tensor) -> None:
        if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 3:
            got = tuple(embeddings.shape) if isinstance(
                embeddings, torch.Tensor) else type(embeddings).__name__
            raise ValueError(
                'HierarchicalSupConLoss: embeddings must be a tensor of shape '
                f'(N, V, D) = (patches, views, features), got {got}. Stack '
                'the V views along dim 1, e.g. torch.stack(views, dim=1).')
        if not embeddings.is_floating_point():
            raise ValueError('HierarchicalSupConLoss: embeddings must be a '
                             f'floating point tensor, got {embeddings.dtype}.')
        n, v, _ = embeddings.shape
        if n < 1 or v < 2:
            raise ValueError(
                'HierarchicalSupConLoss: embeddings of shape (N, V, D) need '
                f'N >= 1 patches and V >= 2 views, got (N, V) = ({n}, {v}).')
        if not isinstance(ids, torch.Tensor) or ids.dim() != 1:
            got = tuple(ids.shape) if isinstance(
                ids, torch.Tensor) else type(ids).__name__
            raise ValueError(
                'HierarchicalSupConLoss: ids must be a 1-d integer tensor of '
                f'shape (N,) = ({n},), got {got}.')
        if ids.dtype not in _INT_DTYPES:
            raise ValueError('HierarchicalSupConLoss: ids must be an integer '
                             f'tensor (e.g. torch.int64), got {ids.dtype}.')
        if ids.shape[0] != n:
            raise ValueError(
                f'HierarchicalSupConLoss: ids has {ids.shape[0]} entries but '
                f'embeddings has N = {n} patches; need one id per patch, '
                f'shape ({n},).')

    def forward(self, embeddings: torch.Tensor,
                ids: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            embeddings (Tensor): ``(N, V, D)`` features of ``V`` views of
                ``N`` patches.
            ids (Tensor): ``(N,)`` integer group id of every patch.

        Returns:
            Tensor: Scalar loss (the same value on every rank when gathering).
        """
        self._check_inputs(embeddings, ids)
        n, v, d = embeddings.shape
        ids = ids.to(device=embeddings.device, dtype=torch.long)
        # Flatten patch-major: row n * V + v is view v of patch n.
        feats = F.normalize(embeddings, dim=-1).reshape(n * v, d)
        # src: the rank each row comes from (only used with ids_scope='rank').
        src = torch.zeros_like(ids)
        if self.gather_distributed and world_size() > 1:
            feats = gather(feats)
            if self.ids_scope == 'rank':
                src = gather_no_grad(torch.full_like(ids, rank()))
            ids = gather_no_grad(ids)
            if self.ids_scope == 'global':
                src = torch.zeros_like(ids)
        ids = ids.repeat_interleave(v)
        src = src.repeat_interleave(v)

        total = feats.shape[0]
        logits = feats @ feats.t() / self.temperature
        self_mask = torch.eye(total, dtype=torch.bool, device=feats.device)
        log_denominator = torch.logsumexp(
            logits.masked_fill(self_mask, float('-inf')), dim=1, keepdim=True)
        log_prob = logits - log_denominator
        pos_mask = (ids[:, None] == ids[None, :]) & \
            (src[:, None] == src[None, :]) & ~self_mask
        num_pos = pos_mask.sum(dim=1)
        valid = num_pos > 0
        if not bool(valid.any()):
            # Only possible with V < 2 (rejected above); keep the graph.
            return feats.sum() * 0.0
        sum_log_prob_pos = torch.where(pos_mask, log_prob,
                                       torch.zeros_like(log_prob)).sum(dim=1)
        mean_log_prob_pos = sum_log_prob_pos[valid] / num_pos[valid]
        loss = -(self.temperature / self.base_temperature) * \
            mean_log_prob_pos.mean()
        return self.loss_weight * loss
