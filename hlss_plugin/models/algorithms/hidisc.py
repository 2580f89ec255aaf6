"""HiDisc: hierarchical discriminative self-supervision (no text)."""
from typing import Dict, List, Optional, Union

import torch
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.build_level_heads import resolve_id_keys
from ..utils.embedding_predict_mixin import EmbeddingPredictMixin
from ..utils.level_batch import check_finite_loss, views_and_level_ids


@MODELS.register_module()
class HiDisc(EmbeddingPredictMixin, BaseSelfSupervisor):
    """Hierarchical Discriminative learning.

    Jiang et al., "Hierarchical Discriminative Learning Improves Visual
    Representations of Biomedical Microscopy", CVPR 2023
    (https://arxiv.org/abs/2303.01605). The visual-only baseline of HLSS:
    the same patient → slide → patch hierarchy and supervised contrast per
    level, but one shared projector and no text.

    A ``backbone`` and pooling ``neck`` embed every view of a batch of
    P patients × S slides × K patches in one pass; a
    :class:`HierarchicalContrastiveHead` projects the features once and sums
    one loss per level, whose positives are the views of one patch (patch
    level), the patches of one slide (slide level) and the patches of one
    patient (patient level). Group ids come from the data samples
    (``sample_idx``, ``slide_idx``, ``patient_idx`` by default), never from
    tensor reshapes, so any batch order works.

    Args:
        backbone (dict): Backbone config (any MMPretrain backbone).
        neck (dict): Pooling neck producing ``(N, C)`` features, e.g.
            ``dict(type='GlobalAveragePooling')``.
        head (dict): :class:`HierarchicalContrastiveHead` config; the keys of
            its ``losses`` are the levels.
        id_keys (dict, optional): Data-sample field holding each level's
            group id. Defaults to HLSS's :data:`DEFAULT_ID_KEYS`
            (``patch='sample_idx'``, ``slide='slide_idx'``,
            ``patient='patient_idx'``).
        check_finite (bool): Stop with an error naming the level when a loss
            is not finite. Defaults to True.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> hvc = dict(type='HierarchicalSupConLoss', temperature=0.07)
        >>> model = MODELS.build(dict(type='HiDisc',
        ...     backbone=dict(type='ResNet', depth=18),
        ...     neck=dict(type='GlobalAveragePooling'),
        ...     head=dict(type='HierarchicalContrastiveHead', in_channels=512,
        ...               losses=dict(patch=hvc, slide=hvc, patient=hvc))))
        >>> model(torch.rand(2, 3, 64, 64), mode='tensor').shape
        torch.Size([2, 512])
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 id_keys: Optional[Dict[str, str]] = None,
                 check_finite: bool = True,
                 data_preprocessor: Optional[Union[dict,
                                                   torch.nn.Module]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        if head is None:
            raise ValueError('HiDisc needs a head, e.g. head=dict(type='
                             '"HierarchicalContrastiveHead", losses=dict('
                             'patch=..., slide=..., patient=...)).')
        super().__init__(backbone=backbone, neck=neck, head=head,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        levels = getattr(self.head, 'levels', None)
        if not levels:
            raise ValueError(f'HiDisc: the head {type(self.head).__name__} '
                             f'has no levels; use a HierarchicalContrastive'
                             f'Head with a non-empty losses dict.')
        self.id_keys = resolve_id_keys(levels, id_keys, owner='HiDisc')
        self.levels = tuple(levels)
        self.check_finite = check_finite

    def loss(self, inputs: List[torch.Tensor],
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Every level's hierarchical contrastive loss.

        Args:
            inputs (list[Tensor]): ``V >= 2`` views, each ``(N, C, H, W)``.
            data_samples (list[DataSample]): ``N`` samples carrying the
                level ids (see ``id_keys``).

        Returns:
            dict[str, Tensor]: ``loss_<level>_hvc`` for every level.
        """
        ids = views_and_level_ids('HiDisc', inputs, data_samples,
                                  self.id_keys, self.levels)
        n = inputs[0].shape[0]
        feats = self.extract_feat(torch.cat(inputs, dim=0))
        feats = feats.reshape(len(inputs), n, -1).transpose(0, 1)
        losses = self.head.loss(feats, ids)
        if self.check_finite:
            for level in self.levels:
                check_finite_loss('HiDisc', level, 'hvc',
                                  losses[f'loss_{level}_hvc'])
        return losses
