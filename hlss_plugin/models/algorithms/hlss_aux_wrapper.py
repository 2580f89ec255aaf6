"""Add HLSS's level heads and losses to any MMPretrain self-supervisor."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModel
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from ..utils.build_level_heads import level_heads_and_ids
from ..utils.embedding_predict_mixin import EmbeddingPredictMixin
from ..utils.level_batch import check_finite_loss, views_and_level_ids

__all__ = ['HLSSAuxWrapper']

VIEW_ORDERS = ('auto', 'view_major', 'sample_major')


@MODELS.register_module()
class HLSSAuxWrapper(EmbeddingPredictMixin, BaseModel):
    """Any MMPretrain self-supervised algorithm plus HLSS's level losses.

    Watawana et al., "Hierarchical Text-to-Vision Self Supervised Alignment
    for Improved Histopathology Representation Learning", MICCAI 2024
    (https://arxiv.org/abs/2403.14616).

    The inner ``algorithm`` (SimCLR, MoCo v3, BYOL, Barlow Twins, SimSiam,
    ...) computes its own loss exactly as without the wrapper. While it
    does, a forward hook on ``algorithm.backbone`` records what the backbone
    receives and returns, so the HLSS terms reuse those features: the
    backbone runs no extra time. Momentum / target encoders are deep copies,
    not hooked. The captured outputs (last element of the backbone's output
    tuple) are pooled by ``pool``, arranged as ``(N, V, C)`` and fed to one
    :class:`HierarchicalTextAlignedHead` per level (HVC and/or HA, with the
    level's ids from the data samples), whose losses backpropagate into the
    shared backbone. The hook exists only during :meth:`loss`, so deep
    copies of the model (EMA) carry none.

    Algorithms lay their views out differently: SimCLR stacks them
    sample-major (rows ``x0v0, x0v1, x1v0, ...``) in one backbone call;
    MoCo v3, BYOL, Barlow Twins and SimSiam call the backbone once per view
    (view-major). With ``view_order='auto'`` the layout is found on the
    first batch by comparing the captured backbone inputs with both
    layouts of the views (and kept once only one matches).

    The inner data preprocessor is the wrapper's, so ``train_step`` /
    ``val_step`` preprocess exactly as the algorithm alone would. Losses:
    the algorithm's, with a plain ``'loss'`` renamed ``loss_<method>``
    (:attr:`method_name`: ``loss_simclr``, ``loss_vicreg`` for
    ``BarlowTwins`` with a ``VICRegHead``; mmengine logs the sum of all
    terms as ``loss``, which an inner ``'loss'`` entry would hide) and any
    name that collides with an HLSS name prefixed with that name, plus
    ``loss_<level>_<term>`` (``term``: ``hvc``, ``ha``). ``mode='tensor'``
    and ``'predict'`` embed with ``pool(backbone(x))``. Checkpoint keys of
    the backbone start with ``algorithm.backbone.``.

    Hooks that read or write algorithm-specific attributes on the top-level
    model (``DenseCLHook``: ``loss_lambda``) do not find them here; ``head``
    and ``neck`` are forwarded (``SwAVHook``). mmengine's ``EMAHook``
    (a deep copy of the whole model) and layer-wise lr decay
    (:meth:`get_layer_depth`) work.

    Args:
        algorithm (dict | BaseSelfSupervisor): Config (built with
            ``MODELS.build``) or instance of the inner algorithm; it must
            have a ``backbone`` and ``loss(inputs, data_samples)``.
        heads (dict): ``{level: head config}`` exactly as HLSS's ``heads``:
            a :class:`HierarchicalTextAlignedHead` config plus
            ``attributes``; set ``hvc_loss`` or ``ha_loss`` to None to drop
            that term at a level.
        text_tower (dict): Frozen text tower config; used at construction
            only (not a submodule).
        in_channels (int): Size ``C`` of the pooled backbone features.
        pool (dict): Neck applied to the captured backbone output (a
            1-tuple holding its last element); its last output must be
            ``(rows, C)``. Defaults to ``dict(type='GlobalAveragePooling')``;
            use ``dict(type='IdentityNeck')`` for backbones that pool
            themselves (ViT class token, CLIP ResNet).
        id_keys (dict, optional): Data-sample field of each level's group
            id. Defaults to HLSS's (``sample_idx``, ``slide_idx``,
            ``patient_idx``).
        view_order (str): ``'auto'``, ``'view_major'`` or
            ``'sample_major'``: how the backbone's rows are ordered.
            Defaults to ``'auto'``.
        check_finite (bool): Stop with an error naming the level and term
            when an HLSS loss is not finite. Defaults to True.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> model = MODELS.build(dict(
        ...     type='HLSSAuxWrapper',
        ...     algorithm=dict(type='SimCLR',
        ...         backbone=dict(type='ResNet', depth=18),
        ...         neck=dict(type='NonLinearNeck', in_channels=512,
        ...                   hid_channels=64, out_channels=16,
        ...                   with_avg_pool=True),
        ...         head=dict(type='ContrastiveHead',
        ...                   loss=dict(type='CrossEntropyLoss'))),
        ...     heads=dict(slide=dict(attributes='srh', hvc_loss=None)),
        ...     text_tower=dict(type='HFSentenceTextTower'),
        ...     in_channels=512))
        >>> views = [torch.rand(4, 3, 64, 64) for _ in range(2)]
        >>> samples = [DataSample(metainfo=dict(slide_idx=i // 2))
        ...            for i in range(4)]
        >>> sorted(model(views, samples, mode='loss'))
        ['loss', 'loss_slide_ha']
        >>> model(views[0], mode='tensor').shape
        torch.Size([4, 512])
    """

    def __init__(self,
                 algorithm: Union[dict, torch.nn.Module],
                 heads: Dict[str, dict],
                 text_tower: dict,
                 in_channels: int,
                 pool: dict = dict(type='GlobalAveragePooling'),
                 id_keys: Optional[Dict[str, str]] = None,
                 view_order: str = 'auto',
                 check_finite: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        if isinstance(algorithm, dict):
            algorithm = MODELS.build(algorithm)
        name = type(algorithm).__name__
        if not (isinstance(getattr(algorithm, 'backbone', None),
                           torch.nn.Module)
                and callable(getattr(algorithm, 'loss', None))
                and isinstance(getattr(algorithm, 'data_preprocessor', None),
                               torch.nn.Module)):
            raise ValueError(
                f'HLSSAuxWrapper: algorithm {name} needs a backbone module, '
                f'a data_preprocessor and loss(inputs, data_samples); wrap an '
                f'MMPretrain BaseSelfSupervisor such as SimCLR, MoCoV3 or '
                f'BYOL.')
        if view_order not in VIEW_ORDERS:
            raise ValueError(f'HLSSAuxWrapper: view_order must be one of '
                             f'{VIEW_ORDERS}, got {view_order!r}.')
        super().__init__(data_preprocessor=algorithm.data_preprocessor,
                         init_cfg=init_cfg)
        self.algorithm = algorithm
        self.pool = MODELS.build(pool)
        self.heads, self.id_keys = level_heads_and_ids(
            heads, text_tower, in_channels, id_keys, owner='HLSSAuxWrapper')
        self.levels = tuple(heads)
        self.view_order = view_order
        self.check_finite = check_finite
        # the detected layout ('auto'), or the given one
        self._layout = None if view_order == 'auto' else view_order

    @property
    def backbone(self) -> torch.nn.Module:
        """The inner algorithm's (shared) backbone."""
        return self.algorithm.backbone

    @property
    def neck(self) -> Optional[torch.nn.Module]:
        """The inner algorithm's neck (for hooks that look for it)."""
        return getattr(self.algorithm, 'neck', None)

    @property
    def head(self) -> Optional[torch.nn.Module]:
        """The inner algorithm's head (for hooks such as ``SwAVHook``)."""
        return getattr(self.algorithm, 'head', None)

    def forward(self, inputs, data_samples=None, mode: str = 'tensor'):
        """``'tensor'``: ``(N, C)`` embeddings; ``'loss'``: losses;
        ``'predict'``: data samples carrying ``feats``."""
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def _pool(self, outputs) -> torch.Tensor:
        """Pool the last element of a backbone output to ``(rows, C)``."""
        if isinstance(outputs, (tuple, list)):
            outputs = outputs[-1]
        feats = self.pool((outputs, ))
        return feats[-1] if isinstance(feats, (tuple, list)) else feats

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """Pooled backbone embeddings.

        Args:
            inputs (Tensor): ``(N, 3, H, W)``.

        Returns:
            Tensor: ``(N, C)``.
        """
        return self._pool(self.backbone(inputs))

    def loss(self, inputs: List[torch.Tensor],
             data_samples: List[DataSample]) -> Dict[str, torch.Tensor]:
        """The algorithm's losses plus every level's HLSS terms.

        Args:
            inputs (list[Tensor]): ``V`` views, each ``(N, 3, H, W)``.
            data_samples (list[DataSample]): ``N`` samples carrying the
                level ids (see ``id_keys``).

        Returns:
            dict[str, Tensor]: The algorithm's entries and
            ``loss_<level>_<term>``.
        """
        ids = views_and_level_ids('HLSSAuxWrapper', inputs, data_samples,
                                  self.id_keys, self.levels)
        calls: List[Tuple[Optional[torch.Tensor], object]] = []

        def record(module, args, kwargs, output):
            x = args[0] if args else next(iter(kwargs.values()), None)
            calls.append((x if isinstance(x, torch.Tensor) else None,
                          output))

        handle = self.backbone.register_forward_hook(record, with_kwargs=True)
        try:
            inner = self.algorithm.loss(list(inputs), data_samples)
        finally:
            handle.remove()
        feats = self._arrange(calls, list(inputs))

        hlss = {}
        for level in self.levels:
            for term, value in self.heads[level].loss(feats,
                                                      ids[level]).items():
                if self.check_finite:
                    check_finite_loss('HLSSAuxWrapper', level, term, value)
                hlss[f'loss_{level}_{term}'] = value
        prefix = self.method_name
        losses = {}
        for key, value in inner.items():
            if key == 'loss':  # mmengine logs the total under 'loss'
                key = f'loss_{prefix}'
            while key in hlss or key in losses:
                key = f'{prefix}_{key}'
            losses[key] = value
        losses.update(hlss)
        return losses

    @property
    def method_name(self) -> str:
        """The inner method's name in loss keys: the algorithm head's
        ``method_name`` where it has one (``VICRegHead``: ``'vicreg'``, run
        by the generic ``BarlowTwins`` type), else the algorithm's
        lower-case class name (``'simclr'``)."""
        head = getattr(self.algorithm, 'head', None)
        name = getattr(head, 'method_name', None)
        return name if isinstance(name, str) and name else type(
            self.algorithm).__name__.lower()

    def _arrange(self, calls, views: List[torch.Tensor]) -> torch.Tensor:
        """Pool the captured backbone outputs into ``(N, V, C)``."""
        name = type(self.algorithm).__name__
        n, v = views[0].shape[0], len(views)
        rows = sum(x.shape[0] if x is not None else 0 for x, _ in calls)
        if not calls or rows != v * n:
            raise ValueError(
                f'HLSSAuxWrapper: {name} ran its backbone {len(calls)} '
                f'time(s) on {rows} images in all, but the batch has {v} '
                f'views x {n} samples = {v * n}; the HLSS heads need every '
                f'view once. Wrap an algorithm whose online backbone sees '
                f'each view exactly once (SimCLR, MoCoV3, BYOL, BarlowTwins, '
                f'SimSiam), and set view_order explicitly when it does.')
        layout = self._layout
        if layout is None:
            found = [order for order in VIEW_ORDERS[1:]
                     if self._inputs_match(calls, views, order)]
            if not found:
                raise ValueError(
                    f'HLSSAuxWrapper: the backbone inputs of {name} match '
                    f'neither the view-major nor the sample-major layout of '
                    f'the views. Set view_order="view_major" (one backbone '
                    f'call per view, rows view by view) or "sample_major" '
                    f'(rows sample by sample, views adjacent) in the '
                    f'HLSSAuxWrapper config.')
            layout = found[0]
            if len(found) == 1:  # ambiguous batches decide nothing
                self._layout = layout
        feats = torch.cat([self._pool(out) for _, out in calls])
        if layout == 'view_major':
            return feats.reshape(v, n, -1).transpose(0, 1)
        return feats.reshape(n, v, -1)

    @staticmethod
    def _inputs_match(calls, views: List[torch.Tensor], order: str) -> bool:
        """Whether the captured inputs are the views in ``order``."""
        n, v = views[0].shape[0], len(views)
        start = 0
        for x, _ in calls:
            if x is None:
                return False
            index = range(start, start + x.shape[0])
            if order == 'view_major':
                rows = [views[r // n][r % n] for r in index]
            else:
                rows = [views[r % v][r // v] for r in index]
            if any(row.shape != x.shape[1:] for row in rows) or \
                    not torch.equal(x, torch.stack(rows)):
                return False
            start += x.shape[0]
        return True

    def attribute_names(self, level: str) -> Sequence[str]:
        """Attribute names of ``level`` in head-row order."""
        return self.heads[level].attribute_names

    def get_layer_depth(self, param_name: str) -> Tuple[int, int]:
        """Layer depth for layer-wise lr decay, asked of the algorithm.

        Args:
            param_name (str): A parameter name of this model.

        Returns:
            tuple[int, int]: The layer depth and the maximum depth; HLSS
            heads get the depth the algorithm gives its own necks / heads.
        """
        if param_name.startswith('algorithm.'):
            param_name = param_name[len('algorithm.'):]
        return self.algorithm.get_layer_depth(param_name)
