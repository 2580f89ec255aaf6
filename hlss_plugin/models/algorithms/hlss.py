"""HLSS: hierarchical language-tied self-supervision (dual-tower model)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.build_level_heads import DEFAULT_ID_KEYS, level_heads_and_ids
from ..utils.embedding_predict_mixin import EmbeddingPredictMixin
from ..utils.level_batch import check_finite_loss, views_and_level_ids

__all__ = ['HLSS', 'DEFAULT_ID_KEYS']


@MODELS.register_module()
class HLSS(EmbeddingPredictMixin, BaseSelfSupervisor):
    """Hierarchical Language-tied Self-Supervision.

    Watawana et al., "Hierarchical Text-to-Vision Self Supervised Alignment
    for Improved Histopathology Representation Learning", MICCAI 2024
    (https://arxiv.org/abs/2403.14616); hierarchy as in HiDisc (Jiang et
    al., CVPR 2023).

    A visual tower (``backbone`` + pooling ``neck``) embeds every view of a
    batch of P patients × S slides × K patches once. A frozen text tower
    embeds each level's attributes once at construction; those embeddings
    initialise one :class:`HierarchicalTextAlignedHead` per level, whose
    losses (HVC: supervised contrast with the level's positives; HA:
    alignment with the nearest attribute) are summed with their weights.
    Positives come from ids carried in the data samples (``sample_idx``,
    ``slide_idx``, ``patient_idx`` by default), never from tensor reshapes.

    The text tower is not a submodule: its weights are never trained, never
    moved to the GPU, never in a checkpoint; after construction only the
    attribute embeddings (buffers of the heads) remain.

    Args:
        backbone (dict): Visual backbone config (any MMPretrain backbone).
        neck (dict): Pooling neck producing ``(N, C)`` features, e.g.
            ``dict(type='GlobalAveragePooling')``.
        heads (dict): ``{level: head config}``; each is a
            :class:`HierarchicalTextAlignedHead` config plus ``attributes``
            (``'srh'``, ``'he'`` or a JSON path) whose ``level`` entry
            initialises the head. The level order is the dict's order.
        text_tower (dict): Frozen text tower config, e.g.
            ``dict(type='HFSentenceTextTower')``.
        in_channels (int): Feature size of the neck output.
        id_keys (dict, optional): Data-sample field holding each level's
            group id. Defaults to :data:`DEFAULT_ID_KEYS`.
        check_finite (bool): Stop with an error naming the level and term
            when a loss is not finite. Defaults to True.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> model = MODELS.build(dict(type='HLSS',
        ...     backbone=dict(type='ResNet', depth=18),
        ...     neck=dict(type='GlobalAveragePooling'), in_channels=512,
        ...     text_tower=dict(type='HFSentenceTextTower'),
        ...     heads=dict(patch=dict(attributes='srh'))))
        >>> feats = model(torch.rand(2, 3, 64, 64), mode='tensor')
        >>> feats.shape
        torch.Size([2, 512])
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 heads: Dict[str, dict],
                 text_tower: dict,
                 in_channels: int,
                 id_keys: Optional[Dict[str, str]] = None,
                 check_finite: bool = True,
                 data_preprocessor: Optional[Union[dict,
                                                   torch.nn.Module]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(backbone=backbone, neck=neck,
                         data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        # the text tower is built, used and dropped in there: only the
        # attribute embeddings (buffers of the heads) are kept
        self.heads, self.id_keys = level_heads_and_ids(
            heads, text_tower, in_channels, id_keys, owner='HLSS')
        self.levels = tuple(heads)
        self.check_finite = check_finite

    def loss(self, inputs: List[torch.Tensor],
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """Sum of every level's HVC and HA losses.

        Args:
            inputs (list[Tensor]): ``V`` views, each ``(N, C, H, W)``.
            data_samples (list[DataSample]): ``N`` samples carrying the
                level ids (see ``id_keys``).

        Returns:
            dict[str, Tensor]: ``loss_<level>_<term>`` for every level and
            term (``hvc``, ``ha``).
        """
        ids = views_and_level_ids('HLSS', inputs, data_samples,
                                  self.id_keys, self.levels)
        n = inputs[0].shape[0]
        feats = self.extract_feat(torch.cat(inputs, dim=0))
        feats = feats.reshape(len(inputs), n, -1).transpose(0, 1)
        losses = {}
        for level in self.levels:
            for term, value in self.heads[level].loss(feats,
                                                      ids[level]).items():
                if self.check_finite:
                    check_finite_loss('HLSS', level, term, value)
                losses[f'loss_{level}_{term}'] = value
        return losses

    def attribute_names(self, level: str) -> Sequence[str]:
        """Attribute names of ``level`` in head-row order."""
        return self.heads[level].attribute_names
