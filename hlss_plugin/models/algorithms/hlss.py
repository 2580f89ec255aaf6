"""HLSS: hierarchical language-tied self-supervision (dual-tower model)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmpretrain.models import BaseSelfSupervisor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ...text import load_attributes
from .embedding_predict_mixin import EmbeddingPredictMixin
from .hierarchy_ids import hierarchy_ids

DEFAULT_ID_KEYS = dict(patch='sample_idx', slide='slide_idx',
                       patient='patient_idx')


@MODELS.register_module()
class HLSS(EmbeddingPredictMixin, BaseSelfSupervisor):
    """Hierarchical Language-tied Self-Supervision.

    Watawana et al., "Hierarchical Text-to-Vision Self Supervised Alignment
    for Improved Histopathology Representation Learning", MICCAI 2024
    (https://arxiv.org/abs/2403.14616); hierarchy as in HiDisc (Cheng et
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
        if not heads:
            raise ValueError('HLSS needs at least one level in heads, e.g. '
                             'heads=dict(patch=dict(attributes="srh")).')
        self.id_keys = dict(DEFAULT_ID_KEYS)
        self.id_keys.update(id_keys or {})
        unknown = [lv for lv in heads if lv not in self.id_keys]
        if unknown:
            raise ValueError(f'HLSS: no id key for level(s) {unknown}; add '
                             f'them to id_keys (known: {self.id_keys}).')
        self.levels = tuple(heads)
        self.check_finite = check_finite
        tower = MODELS.build(text_tower)
        self.heads = torch.nn.ModuleDict({
            level: self._build_head(level, dict(cfg), tower, in_channels)
            for level, cfg in heads.items()
        })
        del tower  # only the attribute embeddings are kept

    @staticmethod
    def _build_head(level: str, cfg: dict, tower,
                    in_channels: int) -> torch.nn.Module:
        source = cfg.pop('attributes', None)
        if source is None:
            raise ValueError(f'HLSS heads["{level}"] needs "attributes" '
                             f'(\'srh\', \'he\' or a JSON file path).')
        attributes = load_attributes(source)
        if level not in attributes:
            raise ValueError(f'HLSS heads["{level}"]: attribute source '
                             f'{source!r} has no level {level!r} (it has '
                             f'{sorted(attributes)}).')
        names = list(attributes[level])
        text = tower.embed_attributes(attributes[level])
        cfg.setdefault('type', 'HierarchicalTextAlignedHead')
        return MODELS.build(cfg, default_args=dict(
            text_embeddings=text, in_channels=in_channels,
            attribute_names=names, level=level))

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled backbone embeddings ``(N, C)`` (used for evaluation)."""
        feats = self.neck(self.backbone(inputs))
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

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
        if not isinstance(inputs, (list, tuple)) or len(inputs) < 2:
            raise ValueError('HLSS needs >= 2 views per patch: use '
                             'MultiView(num_views=2, ...) in the pipeline '
                             '(inputs should be a list of V tensors).')
        ids = hierarchy_ids(data_samples, {lv: self.id_keys[lv]
                                           for lv in self.levels},
                            device=inputs[0].device)
        n = inputs[0].shape[0]
        feats = self.extract_feat(torch.cat(inputs, dim=0))
        feats = feats.reshape(len(inputs), n, -1).transpose(0, 1)
        losses = {}
        for level in self.levels:
            for term, value in self.heads[level].loss(feats,
                                                      ids[level]).items():
                if self.check_finite and not torch.isfinite(value).all():
                    raise FloatingPointError(
                        f'HLSS: the {level}-level {term} loss is {value}. '
                        f'Lower the learning rate, check the inputs for '
                        f'NaN/Inf, or use fp32.')
                losses[f'loss_{level}_{term}'] = value
        return losses

    def attribute_names(self, level: str) -> Sequence[str]:
        """Attribute names of ``level`` in head-row order."""
        return self.heads[level].attribute_names
