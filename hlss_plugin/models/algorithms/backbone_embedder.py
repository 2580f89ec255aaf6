"""Evaluation-only model: a backbone loaded from any training checkpoint."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS

from ...utils.checkpoint import read_state_dict
from .embedding_predict_mixin import EmbeddingPredictMixin

#: Where our training checkpoints keep the backbone, tried in this order by
#: ``prefix='auto'``: every algorithm (HLSS, HiDisc, MMPretrain's SimCLR,
#: MoCo v3, BYOL, ...) has it under ``backbone.``, ``HLSSAuxWrapper`` under
#: ``algorithm.backbone.``; ``module.`` is what a DDP-wrapped save adds.
BACKBONE_PREFIXES = ('backbone.', 'algorithm.backbone.', 'module.backbone.',
                     'module.algorithm.backbone.')
_LIST_LIMIT = 8


def _listing(items: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    items = list(items)
    more = f' ... ({len(items)} in all)' if len(items) > limit else ''
    return ', '.join(items[:limit]) + more


def _found_prefixes(keys: Sequence[str]) -> List[str]:
    """Key prefixes worth suggesting: first components, and everything up
    to a ``backbone.`` component (e.g. ``student.backbone.``)."""
    found = set()
    for key in keys:
        parts = key.split('.')
        if len(parts) > 1:
            found.add(parts[0] + '.')
        if 'backbone' in parts[:-1]:
            cut = parts.index('backbone') + 1
            found.add('.'.join(parts[:cut]) + '.')
    return sorted(found)


def select_prefix(state: Dict[str, torch.Tensor], prefix: str = 'auto',
                  source: str = 'the checkpoint') -> str:
    """Find the key prefix under which ``state`` holds the backbone.

    Args:
        state (dict[str, Tensor]): A state dict.
        prefix (str): ``'auto'`` to try :data:`BACKBONE_PREFIXES` in order,
            or an explicit prefix (``''``: the whole dict is the backbone).
        source (str): Name of the checkpoint, for messages.

    Returns:
        str: The prefix to strip.

    Raises:
        ValueError: When no (or, for ``'auto'``, more than one differing)
            backbone is found; the message lists the prefixes present.

    Example:
        >>> select_prefix({'algorithm.backbone.conv1.weight': torch.ones(1),
        ...                'algorithm.neck.fc.weight': torch.ones(1)})
        'algorithm.backbone.'
    """
    keys = list(state)
    if prefix != 'auto':
        if any(k.startswith(prefix) for k in keys):
            return prefix
        raise ValueError(
            f'BackboneEmbedder: {source} has no key starting with '
            f'prefix={prefix!r}; prefixes found: '
            f'{_listing(_found_prefixes(keys))}. Pass one of them as prefix, '
            f'or prefix="auto".')
    matches = [p for p in BACKBONE_PREFIXES
               if any(k.startswith(p) for k in keys)]
    if not matches:
        raise ValueError(
            f'BackboneEmbedder: {source} has no backbone under '
            f'{", ".join(repr(p) for p in BACKBONE_PREFIXES)}; prefixes '
            f'found: {_listing(_found_prefixes(keys))}. Pass the right one '
            f'explicitly, e.g. prefix="student.backbone." (prefix="" for a '
            f'bare backbone state dict).')
    first = _strip(state, matches[0])
    for other in matches[1:]:
        weights = _strip(state, other)
        if set(weights) != set(first) or any(
                not torch.equal(weights[k], first[k]) for k in first):
            raise ValueError(
                f'BackboneEmbedder: {source} holds different backbones '
                f'under {matches}; pass the one to evaluate explicitly, e.g. '
                f'prefix={matches[0]!r}.')
    return matches[0]


def _strip(state: Dict[str, torch.Tensor],
           prefix: str) -> Dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items()
            if k.startswith(prefix)}


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
        state = read_state_dict(checkpoint, owner='BackboneEmbedder')
        used = select_prefix(state, prefix, source=f'checkpoint {checkpoint}')
        weights = _strip(state, used)
        expected = self.backbone.state_dict()
        missing = sorted(set(expected) - set(weights))
        unexpected = sorted(set(weights) - set(expected))
        shapes = sorted(
            f'{k} (checkpoint {tuple(weights[k].shape)}, model '
            f'{tuple(expected[k].shape)})'
            for k in set(weights) & set(expected)
            if weights[k].shape != expected[k].shape)
        if missing or unexpected or shapes:
            parts = [f'{name}: {_listing(keys)}' for name, keys in (
                ('missing keys', missing), ('unexpected keys', unexpected),
                ('shape mismatch', shapes)) if keys]
            raise ValueError(
                f'BackboneEmbedder: the backbone under {used!r} in '
                f'{checkpoint} does not match backbone='
                f'{type(self.backbone).__name__} ({"; ".join(parts)}). Give '
                f'the backbone config the checkpoint was trained with (e.g. '
                f'the same ResNet depth), or another prefix.')
        self.backbone.load_state_dict(weights, strict=True)
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
