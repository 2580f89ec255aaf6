"""Config overrides that put self-supervised methods on one budget.

Used by ``tools/benchmarks/benchmark.py`` (and ``tools/train.py --epochs``);
each function changes a loaded mmengine ``Config`` in place and returns what it changed as
``{config key: (old value, new value)}`` (keys as dotted paths, list
positions as numbers, e.g. ``'model.neck.in_channels'``), so a tool can
print the resolved overrides of every method.

* :func:`set_backbone_depth`: the ResNet depth of every backbone under
  ``model``, and the channel counts that follow the backbone width.
* :func:`set_crop_size`: the training view size (``SRHAugment``) and the
  evaluation centre crop (``CenterCropTensor``).
* :func:`set_patients_per_batch`: P of the ``HierarchicalSampler`` and the
  batch size P × S × K.
* :func:`rescale_schedule`: the number of epochs, with every epoch-based
  parameter scheduler (warm-up, cosine, ...) rescaled to the new length and
  turned into an iteration-based one.
"""
import copy
import math
from typing import Any, Dict, List, Tuple

from mmengine.config import Config

from ..utils.arg_checks import check_int
from ..utils.config import walk_config

Changes = Dict[str, Tuple[Any, Any]]

#: Output width (channels of the last stage) of MMPretrain's ResNet depths.
RESNET_WIDTHS = {18: 512, 34: 512, 50: 2048, 101: 2048, 152: 2048}
#: Config keys holding a channel count that follows the backbone width:
#: necks and heads read it (``in_channels``), and a projector that keeps the
#: width (SimSiam's 2048 → 2048, read again by its predictor) writes it.
WIDTH_KEYS = ('in_channels', 'out_channels')


def _model(cfg: Config) -> dict:
    model = cfg.get('model', None)
    if not isinstance(model, dict):
        raise ValueError(f'config {cfg.filename or ""} has no `model` dict '
                         f'to override.')
    return model


def find_backbones(cfg: Config) -> List[Tuple[dict, str]]:
    """Every ResNet-style backbone config under ``cfg.model``.

    A backbone is a dict whose ``type`` names a ResNet (``'ResNet'``,
    ``'ResNetV1c'``, ``'mmpretrain.ResNet'``, ...) and that has a ``depth``;
    wrapped algorithms (``HLSSAuxWrapper``'s ``model.algorithm.backbone``)
    are found too.

    Args:
        cfg (Config): The config.

    Returns:
        list[tuple[dict, str]]: ``(backbone dict, key path)`` pairs, e.g.
        ``[(..., 'model.backbone')]``.

    Example:
        >>> cfg = Config(dict(model=dict(type='SimCLR', backbone=dict(
        ...     type='ResNet', depth=50))))
        >>> [path for _, path in find_backbones(cfg)]
        ['model.backbone']
    """
    found = []
    for container, key, path in walk_config(_model(cfg), 'model'):
        value = container[key]
        if (isinstance(value, dict) and isinstance(value.get('type'), str)
                and 'ResNet' in value['type'] and 'depth' in value):
            found.append((value, path))
    return found


def set_backbone_depth(cfg: Config, depth: int,
                       width_keys: Tuple[str, ...] = WIDTH_KEYS) -> Changes:
    """Set the ResNet depth of every backbone under ``cfg.model``.

    When the output width changes (ResNet-50's 2048 channels vs ResNet-18's
    512), every ``width_keys`` entry under ``cfg.model`` equal to the old
    width is set to the new one: neck, HLSS and head ``in_channels``, and
    the ``out_channels`` of projectors that keep the backbone width (so
    SimSiam's predictor still reads what its projector writes). Hidden
    sizes (``hid_channels``, ``bridge_hidden``) and other output sizes
    (128, 256, 8192) are kept.

    Args:
        cfg (Config): The config, changed in place.
        depth (int): A key of :data:`RESNET_WIDTHS`.
        width_keys (tuple[str]): Channel keys to follow the width.

    Returns:
        dict: ``{key: (old, new)}`` of what changed.

    Raises:
        ValueError: For an unknown depth, a config without a ResNet backbone,
            or backbones of different widths.

    Example:
        >>> cfg = Config(dict(model=dict(
        ...     backbone=dict(type='ResNet', depth=50),
        ...     neck=dict(type='NonLinearNeck', in_channels=2048,
        ...               hid_channels=2048, out_channels=128))))
        >>> for key, change in set_backbone_depth(cfg, 18).items():
        ...     print(key, change)
        model.backbone.depth (50, 18)
        model.neck.in_channels (2048, 512)
    """
    if depth not in RESNET_WIDTHS:
        raise ValueError(f'backbone depth must be one of '
                         f'{sorted(RESNET_WIDTHS)}, got {depth!r}.')
    backbones = find_backbones(cfg)
    if not backbones:
        raise ValueError(
            f'config {cfg.filename or ""} has no ResNet backbone under '
            f'`model` (a dict with type ResNet* and a depth); the backbone '
            f'override only supports ResNets.')
    bad = [f'{path}.depth={bb["depth"]!r}' for bb, path in backbones
           if bb['depth'] not in RESNET_WIDTHS]
    if bad:
        raise ValueError(f'unknown ResNet depth in {", ".join(bad)}; known: '
                         f'{sorted(RESNET_WIDTHS)}.')
    old_widths = {RESNET_WIDTHS[bb['depth']] for bb, _ in backbones}
    if len(old_widths) > 1:
        depths = ', '.join(f'{path}.depth={bb["depth"]}'
                           for bb, path in backbones)
        raise ValueError(
            f'config {cfg.filename or ""} has backbones of different widths '
            f'({depths}); set their depths by hand.')
    old_width, new_width = old_widths.pop(), RESNET_WIDTHS[depth]
    changes: Changes = {}
    for bb, path in backbones:
        if bb['depth'] != depth:
            changes[f'{path}.depth'] = (bb['depth'], depth)
            bb['depth'] = depth
    if old_width != new_width:
        for container, key, path in list(walk_config(_model(cfg), 'model')):
            value = container[key]
            if (key in width_keys and isinstance(container, dict)
                    and isinstance(value, int) and not isinstance(value, bool)
                    and value == old_width):
                container[key] = new_width
                changes[path] = (old_width, new_width)
    return changes


def set_crop_size(cfg: Config, size: int) -> Changes:
    """Set the view size of every training view transform (``SRHAugment``
    and ``HEView``: ``crop_size``; ``LightlyView``: ``input_size``) and the
    size of every ``CenterCropTensor`` in ``cfg``.

    Args:
        cfg (Config): The config, changed in place.
        size (int): Crop size in pixels, >= 1.

    Returns:
        dict: ``{key: (old, new)}`` (``old`` is None where unset).

    Raises:
        ValueError: For a bad size, or a config with none of these
            transforms.

    Example:
        >>> cfg = Config(dict(view_pipeline=[dict(type='SRHAugment')]))
        >>> set_crop_size(cfg, 96)
        {'view_pipeline.0.crop_size': (None, 96)}
    """
    check_int('crop size', size, minimum=1)
    targets = {'SRHAugment': 'crop_size', 'HEView': 'crop_size',
               'LightlyView': 'input_size', 'CenterCropTensor': 'size'}
    changes: Changes = {}
    found = False
    for container, key, path in list(walk_config(cfg._cfg_dict, '')):
        value = container[key]
        if isinstance(value, dict) and value.get('type') in targets:
            found = True
            field = targets[value['type']]
            old = value.get(field, None)
            if old != size:
                value[field] = size
                changes[f'{path}.{field}'] = (old, size)
    if not found:
        raise ValueError(
            f'config {cfg.filename or ""} has no SRHAugment, HEView, '
            f'LightlyView or CenterCropTensor transform whose crop size could '
            f'be set.')
    return changes


def set_patients_per_batch(cfg: Config, patients: int) -> Changes:
    """Set P of the training ``HierarchicalSampler`` and the batch size.

    The batch size becomes P × S × K (S slides per patient, K patches per
    slide, from the sampler); top-level ``patients_per_batch`` and
    ``batch_size`` variables, where present, are set to match.

    Args:
        cfg (Config): The config, changed in place.
        patients (int): Patients per batch, >= 1.

    Returns:
        dict: ``{key: (old, new)}``.

    Raises:
        ValueError: For a bad value or a training sampler without
            ``slides_per_patient`` / ``patches_per_slide``.

    Example:
        >>> cfg = Config(dict(train_dataloader=dict(batch_size=128,
        ...     sampler=dict(type='HierarchicalSampler',
        ...                  patients_per_batch=32, slides_per_patient=2,
        ...                  patches_per_slide=2))))
        >>> set_patients_per_batch(cfg, 4)['train_dataloader.batch_size']
        (128, 16)
    """
    if (isinstance(patients, bool) or not isinstance(patients, int)
            or patients < 1):
        raise ValueError(f'patients per batch must be a positive int, got '
                         f'{patients!r}.')
    loader = cfg.get('train_dataloader', None)
    sampler = loader.get('sampler', None) if isinstance(loader,
                                                        dict) else None
    if not isinstance(sampler, dict) or not all(
            k in sampler for k in ('slides_per_patient',
                                   'patches_per_slide')):
        raise ValueError(
            f'config {cfg.filename or ""}: train_dataloader.sampler must be '
            f'a HierarchicalSampler config with slides_per_patient and '
            f'patches_per_slide to set the patients per batch; got '
            f'{sampler!r}.')
    batch = (patients * sampler['slides_per_patient']
             * sampler['patches_per_slide'])
    changes: Changes = {}
    for container, key, path, value in (
            (sampler, 'patients_per_batch',
             'train_dataloader.sampler.patients_per_batch', patients),
            (loader, 'batch_size', 'train_dataloader.batch_size', batch),
            (cfg._cfg_dict, 'patients_per_batch', 'patients_per_batch',
             patients),
            (cfg._cfg_dict, 'batch_size', 'batch_size', batch)):
        if container is cfg._cfg_dict and key not in container:
            continue
        old = container.get(key, None)
        if old != value:
            container[key] = value
            changes[path] = (old, value)
    return changes


def rescale_schedule(cfg: Config, epochs: int,
                     iters_per_epoch: int) -> Changes:
    """Train for ``epochs`` epochs with the schedule's shape kept.

    ``train_cfg.max_epochs`` becomes ``epochs``; every parameter scheduler
    (``by_epoch=True``, the default) has its epoch positions (``begin``,
    ``end``, ``milestones``) mapped to iterations as fractions of the old
    length: position ``x`` of an ``E``-epoch schedule goes to
    ``round(x / E * T)`` of ``T = epochs * iters_per_epoch`` iterations,
    kept inside ``[1, T - 1]`` for positions strictly inside the schedule
    (a 10 % warm-up lasts at least one iteration when ``T >= 2``). Cosine
    ``T_max`` follows its phase's new length (or scales by ``T / E``).
    Schedulers become iteration-based (``by_epoch=False``); one that
    shrinks to zero iterations is dropped.

    Args:
        cfg (Config): The config, changed in place.
        epochs (int): New number of epochs, >= 1.
        iters_per_epoch (int): Iterations per epoch, >= 1.

    Returns:
        dict: ``{key: (old, new)}``; a dropped scheduler maps to None.

    Raises:
        ValueError: For bad numbers, no ``train_cfg.max_epochs``, or an
            iteration-based scheduler (its length in epochs is unknown).

    Example:
        >>> cfg = Config(dict(train_cfg=dict(max_epochs=1000),
        ...     param_scheduler=[
        ...         dict(type='LinearLR', begin=0, end=100,
        ...              convert_to_iter_based=True),
        ...         dict(type='CosineAnnealingLR', T_max=900, begin=100,
        ...              end=1000, convert_to_iter_based=True)]))
        >>> _ = rescale_schedule(cfg, 2, 10)
        >>> [(s.begin, s.end, s.get('T_max')) for s in cfg.param_scheduler]
        [(0, 2, None), (2, 20, 18)]
    """
    for name, value in (('epochs', epochs),
                        ('iters_per_epoch', iters_per_epoch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive int, got '
                             f'{value!r}.')
    train_cfg = cfg.get('train_cfg', None)
    old_epochs = (train_cfg or {}).get('max_epochs', None)
    if not isinstance(old_epochs, (int, float)) or old_epochs <= 0:
        raise ValueError(
            f'config {cfg.filename or ""}: train_cfg.max_epochs is '
            f'{old_epochs!r}; the schedule can only be rescaled for '
            f'epoch-based training (EpochBasedTrainLoop).')
    total = epochs * iters_per_epoch

    def to_iter(x):
        if x is None or x == math.inf or x >= old_epochs:
            return total
        if x <= 0:
            return 0
        it = int(round(x / old_epochs * total))
        return min(max(it, 1), total - 1) if total >= 2 else it

    changes: Changes = {}
    if old_epochs != epochs:
        changes['train_cfg.max_epochs'] = (old_epochs, epochs)
    train_cfg['max_epochs'] = epochs
    scheds = cfg.get('param_scheduler', None)
    if scheds is None:
        return changes
    single = isinstance(scheds, dict)
    scheds = [scheds] if single else list(scheds)
    kept = []
    for i, sched in enumerate(scheds):
        path = 'param_scheduler' if single else f'param_scheduler.{i}'
        if not sched.get('by_epoch', True):
            raise ValueError(
                f'config {cfg.filename or ""}: {path} is iteration-based '
                f'(by_epoch=False); its length in epochs is unknown, so it '
                f'cannot be rescaled. Write it with by_epoch=True and '
                f'convert_to_iter_based=True.')
        old = copy.deepcopy(dict(sched))
        new = dict(sched)
        begin, end = old.get('begin', 0), old.get('end', None)
        new['begin'], new['end'] = to_iter(begin), to_iter(end)
        if new['end'] <= new['begin']:
            changes[path] = (old, None)
            continue
        if 'T_max' in old:
            old_len = (end if end is not None else old_epochs) - begin
            new['T_max'] = (new['end'] - new['begin']
                            if old['T_max'] == old_len else
                            max(1, int(round(old['T_max'] / old_epochs
                                             * total))))
        if 'milestones' in old:
            new['milestones'] = [to_iter(m) for m in old['milestones']]
        new['by_epoch'] = False
        new.pop('convert_to_iter_based', None)
        changes[path] = (old, new)
        kept.append(new)
    cfg.param_scheduler = kept[0] if single and kept else kept
    return changes
