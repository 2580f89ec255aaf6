"""Shared MLP projector with one contrastive loss per hierarchy level
(HiDisc's head: hierarchical contrast without text)."""
from typing import Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

from ...utils.arg_checks import check_int


def _positive_int(value, name: str) -> int:
    return check_int(name, value, minimum=1,
                     owner='HierarchicalContrastiveHead')


@MODELS.register_module()
class HierarchicalContrastiveHead(BaseModule):
    """One MLP projector shared by all levels, one loss per level.

    The head of HiDisc (Jiang et al., "Hierarchical Discriminative Learning
    Improves Visual Representations of Biomedical Microscopy", CVPR 2023,
    https://arxiv.org/abs/2303.01605): pooled backbone features ``(N, V, C)``
    of ``V`` views of ``N`` patches go through one projector
    ``Linear(C, H, bias=False) - BatchNorm1d(H) - ReLU - Linear(H, D)``, are
    L2-normalised, and every level's loss (e.g.
    :class:`HierarchicalSupConLoss`) is applied to the same projected
    embeddings with that level's group ids — patch ids make the views of a
    patch positives, slide ids the patches of a slide, patient ids the
    patches of a patient. Unlike :class:`HierarchicalTextAlignedHead` there
    is no text and the projector is shared across levels.

    Each level's weight is the ``loss_weight`` of its loss config; the
    algorithm sums the returned losses.

    Args:
        losses (dict): ``{level: loss config}``, e.g.
            ``dict(patch=dict(type='HierarchicalSupConLoss'), ...)``. Every
            loss is called as ``loss(embeddings (N, V, D), ids (N,))``. The
            dict's order is the order of the returned losses.
        in_channels (int): Feature size ``C``. Defaults to 2048.
        hid_channels (int): Hidden size ``H``. Defaults to 2048.
        out_channels (int): Embedding size ``D``. Defaults to 128.
        init_cfg (dict | list[dict], optional): Initialisation config.

    Shapes:
        - ``forward``: ``(M, C)`` → ``(M, D)`` with unit rows.
        - ``loss``: ``feats (N, V, C)`` and ``ids`` ``{level: (N,)}`` →
          ``{'loss_<level>_hvc': scalar}``.

    Example:
        >>> head = HierarchicalContrastiveHead(
        ...     losses=dict(patch=dict(type='HierarchicalSupConLoss'),
        ...                 slide=dict(type='HierarchicalSupConLoss')),
        ...     in_channels=32, hid_channels=64, out_channels=16)
        >>> ids = dict(patch=torch.arange(4),
        ...            slide=torch.tensor([0, 0, 1, 1]))
        >>> sorted(head.loss(torch.randn(4, 2, 32), ids))
        ['loss_patch_hvc', 'loss_slide_hvc']
    """

    def __init__(self,
                 losses: Dict[str, dict],
                 in_channels: int = 2048,
                 hid_channels: int = 2048,
                 out_channels: int = 128,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        if not isinstance(losses, dict) or not losses:
            raise ValueError(
                'HierarchicalContrastiveHead: losses must be a non-empty dict '
                '{level: loss config}, e.g. losses=dict(patch=dict(type='
                f'"HierarchicalSupConLoss")), got {losses!r}.')
        self.in_channels = _positive_int(in_channels, 'in_channels')
        hid_channels = _positive_int(hid_channels, 'hid_channels')
        self.out_channels = _positive_int(out_channels, 'out_channels')
        self.projector = nn.Sequential(
            nn.Linear(in_channels, hid_channels, bias=False),
            nn.BatchNorm1d(hid_channels), nn.ReLU(inplace=True),
            nn.Linear(hid_channels, out_channels))
        self.levels = tuple(losses)
        self.losses = nn.ModuleDict()
        for level, cfg in losses.items():
            if not isinstance(cfg, (dict, nn.Module)):
                raise ValueError(
                    f'HierarchicalContrastiveHead: losses["{level}"] must be '
                    f'a loss config dict, got {cfg!r}.')
            self.losses[level] = cfg if isinstance(cfg, nn.Module) \
                else MODELS.build(cfg)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Project and L2-normalise features.

        Args:
            feats (Tensor): ``(M, C)`` pooled features.

        Returns:
            Tensor: ``(M, D)`` unit-norm embeddings.
        """
        return F.normalize(self.projector(feats), dim=1)

    def loss(self, feats: torch.Tensor,
             ids: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Every level's loss on the shared projected embeddings.

        Args:
            feats (Tensor): ``(N, V, C)`` features of ``V >= 2`` views of
                ``N`` patches.
            ids (dict[str, Tensor]): ``{level: (N,) int64}`` group id of
                every patch at each level of the head; extra levels are
                ignored.

        Returns:
            dict[str, Tensor]: ``{'loss_<level>_hvc': scalar}`` in the order
            of ``losses``.
        """
        if not isinstance(feats, torch.Tensor) or feats.dim() != 3 or \
                feats.shape[1] < 2 or feats.shape[2] != self.in_channels:
            got = tuple(feats.shape) if isinstance(feats, torch.Tensor) \
                else type(feats).__name__
            raise ValueError(
                'HierarchicalContrastiveHead: feats must be (N, V, C) with '
                f'V >= 2 views and C = in_channels = {self.in_channels}, got '
                f'{got}.')
        missing = [lv for lv in self.levels if lv not in ids]
        if missing:
            raise ValueError(
                f'HierarchicalContrastiveHead: no ids for level(s) {missing}; '
                f'pass ids={{level: (N,) tensor}} for every level of losses '
                f'({list(self.levels)}).')
        n, v, c = feats.shape
        emb = self(feats.reshape(n * v, c)).reshape(n, v, -1)
        return {f'loss_{level}_hvc': self.losses[level](emb, ids[level])
                for level in self.levels}
