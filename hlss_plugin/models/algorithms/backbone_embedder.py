"""Evaluation-only model: a backbone loaded from any training checkpoint."""
from typing import List, Optional, Union

import torch
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS

from ...utils.backbone_state import (BACKBONE_PREFIXES,  # noqa: F401
                                     load_backbone_state)
from ..utils.embedding_predict_mixin import EmbeddingPredictMixin


@MODELS.register_module()
class BackboneEmbedder(EmbeddingPredictMixin, BaseModel):
    """Backbone + pooling neck for evaluation, from any training checkpoint.

    Evaluates what every self-supervised method trains the same way: the
    pooled backbone features ``(N, C)``, without the method's projector or
    heads. ``mode='tensor'`` returns them; ``mode='predict'`` (from
    :class:`EmbeddingPredictMixin`) stores them in each data sample's
    ``feats`` for ``HierarchicalKNNMetric``. There is no ``'loss'`` mode:
    train with the method's own config and pass its checkpoint here.

    ``checkpoint`` is read with ``torch.load(weights_only=True)`` and its
    backbone weights are found under ``prefix``: ``'auto'`` tries
    :data:`BACKBONE_PREFIXES` (``backbone.``, ``algorithm.backbone.`` and
    their ``module.`` variants; HLSS, HiDisc, MMPretrain's algorithms and
    ``HLSSAuxWrapper`` checkpoints all load). Loading is strict: missing,
    unexpected or differently shaped keys stop with their list. Without a
    checkpoint the backbone keeps its initialisation (an untrained
    baseline). :meth:`init_weights` re-applies the checkpoint after
    initialising, so a Runner calling it does not lose the weights.

    Args:
        backbone (dict): Backbone config, e.g.
            ``dict(type='ResNet', depth=50)``; must match the checkpoint.
        neck (dict, optional): Pooling neck turning backbone outputs into
            ``(N, C)``. Defaults to ``dict(type='GlobalAveragePooling')``.
        checkpoint (str, optional): Training checkpoint to load the backbone
            from. Defaults to None (no loading).
        prefix (str): Key prefix of the backbone in ``checkpoint``, or
            ``'auto'``. Defaults to ``'auto'``.
        data_preprocessor (dict, optional): Defaults to
            ``dict(type='SelfSupDataPreprocessor')`` (no normalisation);
            pass the training config's to evaluate like it trained.
        init_cfg (dict, optional): Initialisation config.

    Attributes:
        checkpoint_prefix (str | None): The prefix the backbone was loaded
            from (None without a checkpoint).

    Example:
        >>> model = MODELS.build(dict(type='BackboneEmbedder',
        ...     backbone=dict(type='ResNet', depth=18),
        ...     checkpoint='work_dirs/simclr/epoch_10.pth'))
        >>> model.checkpoint_prefix
        'backbone.'
        >>> model(torch.rand(2, 3, 64, 64), mode='tensor').shape
        torch.Size([2, 512])
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 checkpoint: Optional[str] = None,
                 prefix: str = 'auto',
                 data_preprocessor: Optional[Union[dict,
                                                   torch.nn.Module]] = None,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        if data_preprocessor is None:
            data_preprocessor = dict(type='SelfSupDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(data_preprocessor=data_preprocessor,
                         init_cfg=init_cfg)
        if not isinstance(prefix, str):
            raise ValueError(f'BackboneEmbedder: prefix must be a str '
                             f'(\'auto\', \'backbone.\', ...), got '
                             f'{prefix!r}.')
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck or dict(type='GlobalAveragePooling'))
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.checkpoint_prefix: Optional[str] = None
        if checkpoint is not None:
            self.load_backbone(checkpoint, prefix)

    def load_backbone(self, checkpoint: str, prefix: str = 'auto') -> str:
        """Load the backbone weights of ``checkpoint`` strictly.

        Args:
            checkpoint (str): Checkpoint path.
            prefix (str): See the class docstring.

        Returns:
            str: The prefix the weights were found under.

        Raises:
            FileNotFoundError: If the file is missing.
            ValueError: If no backbone is found, or its keys or shapes do
                not match ``self.backbone``.
        """
        used = load_backbone_state(
            self.backbone, checkpoint,
            prefix=None if prefix == 'auto' else prefix,
            owner='BackboneEmbedder')
        self.checkpoint_prefix = used
        return used

    def init_weights(self) -> None:
        """Initialise, then re-apply the checkpoint (if any)."""
        super().init_weights()
        if self.checkpoint is not None:
            self.load_backbone(self.checkpoint, self.prefix)

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features.

        Args:
            inputs (Tensor): ``(N, 3, H, W)``.

        Returns:
            Tensor: ``(N, C)``.
        """
        feats = self.neck(self.backbone(inputs))
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        """``'tensor'``: ``(N, C)`` features (a list of them for a list of
        views); ``'predict'``: data samples with ``feats``.

        Raises:
            ValueError: For ``mode='loss'`` (evaluation only) or an unknown
                mode.
        """
        if mode == 'tensor':
            if isinstance(inputs, (list, tuple)):
                return [self.extract_feat(view) for view in inputs]
            return self.extract_feat(inputs)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        raise ValueError(f'BackboneEmbedder: unknown mode {mode!r}; use '
                         f'\'tensor\' or \'predict\'.')

    def loss(self, inputs, data_samples=None):
        """Not available: this model only evaluates.

        Raises:
            ValueError: Always, naming what to do instead.
        """
        raise ValueError(
            'BackboneEmbedder is evaluation-only (modes \'tensor\' and '
            '\'predict\'); it has no loss. Train with the method\'s own '
            'config (e.g. tools/train.py configs/mmpretrain/'
            'simclr_resnet50_srh.py) and evaluate its checkpoint with '
            'BackboneEmbedder(checkpoint=...).')
