"""What the attribute explanations read from a config: the training view
size, the deterministic loading pipeline, and whether the model has HLSS
text-aligned heads.

Two layouts of the training data path are understood:

- per-sample (``hlss_srh.py``, ``hlss_srh_tiny.py``): the train pipeline
  loads float patches, adds the third channel (``SRHThirdChannel``) and
  augments with ``SRHAugment``; the model's data preprocessor normalises;
- batched on the device (``hlss_srh_fast.py``): the train pipeline keeps the
  raw ``uint16`` patch (``LoadSRHPatchRaw``) and
  ``model.data_preprocessor = SRHBatchAugmentPreprocessor(augment=...)``
  builds the third channel, augments and normalises; its evaluation path
  (``training=False``) only converts and normalises.

In both, :func:`eval_pipeline` keeps the deterministic transforms of the
train pipeline, so the model's own data preprocessor (evaluation path) turns
their output into what the backbone sees at evaluation.
"""
import copy
import os.path as osp
from typing import Any, Iterator, List, Mapping, Optional, Tuple, Union

from .explain_error import ExplainError

#: Transforms kept (in the config's order) for the deterministic pipeline.
DETERMINISTIC_TRANSFORMS = ('LoadSRHPatch', 'LoadSRHPatchRaw', 'LoadH5Patch',
                            'LoadPatchImage', 'SRHThirdChannel',
                            'CenterCropTensor')
DEFAULT_PIPELINE = (dict(type='LoadSRHPatch'), dict(type='SRHThirdChannel'))
#: Data preprocessors that augment on the device with an ``SRHAugment``.
BATCH_AUGMENT_PREPROCESSORS = ('SRHBatchAugmentPreprocessor', )

Size = Union[int, Tuple[int, int]]


def load_config(cfg):
    """``cfg`` loaded from its path, or a deep copy of a loaded config.

    Raises:
        ExplainError: If the file does not exist.
    """
    from mmengine.config import Config
    if isinstance(cfg, str):
        if not osp.isfile(cfg):
            raise ExplainError(f'config file {cfg!r} not found.')
        return Config.fromfile(cfg)
    return copy.deepcopy(cfg)


def _walk_dicts(node: Any) -> Iterator[Mapping]:
    if isinstance(node, Mapping):
        yield node
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for child in node:
            yield from _walk_dicts(child)


def _type_name(node: Mapping) -> Optional[str]:
    """``node['type']`` without a registry scope (``'mmpretrain.X'``)."""
    kind = node.get('type')
    return kind.split('.')[-1] if isinstance(kind, str) else None


def _as_size(size) -> Size:
    if isinstance(size, (list, tuple)):
        return tuple(int(s) for s in size)
    return int(size)


def _srh_augment_size(node: Mapping) -> Optional[Size]:
    """View size of one ``SRHAugment`` config: its ``crop_size``, else the
    size of its ``random_resized_crop`` op (224 with the shipped recipes)."""
    from hlss_plugin.augmentation.recipes import RECIPES
    if node.get('crop_size') is not None:
        return node['crop_size']
    recipe = RECIPES.get(node.get('recipe', 'default'), RECIPES['default'])
    for op in node.get('ops') or recipe['ops']:
        if isinstance(op, Mapping) and op.get('type') == 'random_resized_crop':
            return _as_size(op.get('size', 224))
    return None


def view_size_from_config(cfg) -> Optional[Size]:
    """Training view size of a config.

    From the train pipeline: ``SRHAugment``'s ``crop_size``, else the size
    of its ``random_resized_crop`` op (224 with the default ops), else the
    size of any ``random_resized_crop`` / ``RandomResizedCrop``. When the
    pipeline sets none, the ``augment`` of a batched-augmentation data
    preprocessor under ``cfg.model`` (:data:`BATCH_AUGMENT_PREPROCESSORS`;
    ``augment=None`` means ``SRHAugment``'s defaults, 224). None when
    nothing sets one (the whole patch is used).

    Args:
        cfg (Config | dict): A loaded config.

    Returns:
        int | tuple[int, int] | None: The view size.

    Example:
        >>> view_size_from_config(Config(dict(model=dict(
        ...     data_preprocessor=dict(type='SRHBatchAugmentPreprocessor',
        ...                            augment=dict(crop_size=64))))))
        64
    """
    pipeline = cfg.get('train_dataloader', {}).get('dataset',
                                                   {}).get('pipeline', [])
    for node in _walk_dicts(pipeline):
        if node.get('type') == 'SRHAugment':
            size = _srh_augment_size(node)
            if size is not None:
                return size
    for node in _walk_dicts(pipeline):
        if node.get('type') in ('random_resized_crop', 'RandomResizedCrop'):
            return _as_size(node.get('size', node.get('scale')))
    for node in _walk_dicts(cfg.get('model', {})):
        if _type_name(node) in BATCH_AUGMENT_PREPROCESSORS:
            augment = node.get('augment')
            size = _srh_augment_size(augment if isinstance(
                augment, Mapping) else {})
            if size is not None:
                return size
    return None


def eval_pipeline(cfg) -> List[dict]:
    """Deterministic pipeline of a config.

    The train pipeline's loading, third-channel and centre-crop transforms
    (:data:`DETERMINISTIC_TRANSFORMS`, in order), or
    :data:`DEFAULT_PIPELINE` when it has no loading transform. A raw
    pipeline (``LoadSRHPatchRaw``, no ``SRHThirdChannel``) stays raw: the
    model's data preprocessor converts its ``uint16`` patches.

    Args:
        cfg (Config | dict): A loaded config.

    Returns:
        list[dict]: Transform configs (copies).

    Example:
        >>> eval_pipeline(Config(dict(train_dataloader=dict(dataset=dict(
        ...     pipeline=[dict(type='LoadSRHPatchRaw'),
        ...               dict(type='PackInputs')])))))
        [{'type': 'LoadSRHPatchRaw'}]
    """
    pipeline = cfg.get('train_dataloader', {}).get('dataset',
                                                   {}).get('pipeline', [])
    kept = [dict(t) for t in pipeline if isinstance(t, Mapping)
            and t.get('type') in DETERMINISTIC_TRANSFORMS]
    if not any(t['type'].startswith('Load') for t in kept):
        return [dict(t) for t in DEFAULT_PIPELINE]
    return kept


def check_hlss_config(cfg) -> None:
    """Raise :class:`ExplainError` unless ``cfg.model`` has HLSS heads
    (``HLSS`` or ``HLSSAuxWrapper``).

    Example:
        >>> check_hlss_config(Config(dict(model=dict(type='SimCLR'))))
        Traceback (most recent call last):
        ...
        ExplainError: config None: model.type is 'SimCLR'; explain needs ...
    """
    from mmpretrain.registry import MODELS

    from hlss_plugin.models.algorithms.hlss import HLSS
    from hlss_plugin.models.algorithms.hlss_aux_wrapper import HLSSAuxWrapper
    model_cfg = cfg.get('model', None)
    if not isinstance(model_cfg, Mapping) or 'type' not in model_cfg:
        raise ExplainError(f'config {cfg.filename}: no model.type; explain '
                           f'needs an HLSS model with text-aligned heads.')
    kind = model_cfg['type']
    cls = kind if isinstance(kind, type) else MODELS.get(kind)
    if not (isinstance(cls, type) and issubclass(cls, (HLSS,
                                                       HLSSAuxWrapper))):
        raise ExplainError(
            f'config {cfg.filename}: model.type is {kind!r}; explain needs '
            f'HLSS text-aligned heads (model.type="HLSS", e.g. '
            f'configs/mmpretrain/hlss_srh_tiny.py, or "HLSSAuxWrapper", e.g. '
            f'configs/mmpretrain/simclr_hlss_srh.py), whose outputs are '
            f'similarities to named attributes.')
