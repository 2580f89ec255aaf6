"""Training length from the command line: ``--epochs N`` and the check
that the schedule fits ``train_cfg.max_epochs``."""
import math
from typing import Any, Dict, List, Tuple

from mmengine.config import Config

from .tool_error import ToolError

__all__ = ['rescale_epochs', 'schedule_overruns']


def rescale_epochs(cfg: Config, epochs: int,
                   launcher: str = 'none') -> Dict[str, Tuple[Any, Any]]:
    """Train ``cfg`` for ``epochs`` epochs with its schedule's shape kept.

    The whole schedule is rescaled the way ``tools/benchmarks/benchmark.py
    --budget`` and the demo do
    (:func:`hlss_plugin.benchmark.overrides.rescale_schedule`): every
    epoch-based ``param_scheduler`` (warm-up, cosine, ...) keeps its share
    of training and becomes iteration-based, which needs the iterations per
    epoch (the training dataset and sampler are built once, as the Runner
    builds them; in a launched job after the process group exists, so the
    count is this rank's). ``train_cfg.val_interval`` and the epoch-based
    ``default_hooks.checkpoint.interval`` are clipped to ``epochs`` so a
    short run still validates and saves at its end.

    Args:
        cfg (Config): A training config (changed in place).
        epochs (int): New number of epochs, >= 1.
        launcher (str): The job launcher; for ``'pytorch'`` / ``'slurm'``
            without a process group yet (CUDA: mmengine's ``init_dist``
            would run in the Runner), the group is initialised here with
            ``env_cfg.dist_cfg``, and the Runner reuses it.

    Returns:
        dict: ``{config key: (old, new)}`` of what changed.

    Raises:
        ToolError: When the config cannot be rescaled (iteration-based
            training or scheduler) or its training data cannot be built.

    Example:
        >>> changes = rescale_epochs(cfg, 2)  # doctest: +SKIP
        >>> changes['train_cfg.max_epochs']  # doctest: +SKIP
        (1000, 2)
    """
    if launcher != 'none':
        from mmengine.dist import init_dist, is_distributed
        if not is_distributed():
            dist_cfg = (cfg.get('env_cfg', None) or {}).get('dist_cfg', {})
            init_dist(launcher, **dict(dist_cfg))
    # hlss_plugin.benchmark imports this package: import when called
    from ..benchmark.budget import train_budget
    from ..benchmark.overrides import rescale_schedule
    try:
        seed = (cfg.get('randomness', None) or {}).get('seed', None) or 0
        iters = train_budget(cfg, seed)['iters_per_epoch']
        if iters < 1:
            raise ValueError('the training sampler yields no batch per '
                             'epoch; check the dataset and batch size')
        changes = rescale_schedule(cfg, epochs, iters)
    except (ValueError, FileNotFoundError, KeyError) as err:
        raise ToolError(f'--epochs {epochs}: {err}') from err
    train_cfg = cfg.train_cfg
    if train_cfg.get('val_interval', 1) > epochs:
        changes['train_cfg.val_interval'] = (train_cfg.val_interval, epochs)
        train_cfg.val_interval = epochs
    ckpt = (cfg.get('default_hooks', None) or {}).get('checkpoint', None)
    if (isinstance(ckpt, dict) and ckpt.get('by_epoch', True)
            and ckpt.get('interval', 1) > epochs):
        changes['default_hooks.checkpoint.interval'] = (ckpt['interval'],
                                                        epochs)
        ckpt['interval'] = epochs
    return changes


def schedule_overruns(cfg: Config) -> List[str]:
    """Epoch-based scheduler positions that lie beyond
    ``train_cfg.max_epochs``.

    A warm-up or a scheduler that ends after the last epoch never
    completes (e.g. ``--cfg-options train_cfg.max_epochs=1`` on
    ``hlss_srh.py`` trains the single epoch inside a 100-epoch warm-up).
    ``end`` equal to ``max_epochs`` (or infinite, mmengine's default) is
    fine; iteration-based schedulers are not checked.

    Args:
        cfg (Config): The config.

    Returns:
        list[str]: e.g. ``['param_scheduler.0.end=100',
        'param_scheduler.1.begin=100', 'param_scheduler.1.end=1000']``.

    Example:
        >>> schedule_overruns(Config(dict(train_cfg=dict(max_epochs=1),
        ...     param_scheduler=[dict(type='LinearLR', begin=0, end=100)])))
        ['param_scheduler.0.end=100']
    """
    max_epochs = (cfg.get('train_cfg', None) or {}).get('max_epochs', None)
    scheds = cfg.get('param_scheduler', None)
    if not isinstance(max_epochs, (int, float)) or not scheds:
        return []
    single = isinstance(scheds, dict)
    found = []
    for i, sched in enumerate([scheds] if single else scheds):
        if not isinstance(sched, dict) or not sched.get('by_epoch', True):
            continue
        path = 'param_scheduler' if single else f'param_scheduler.{i}'
        for key in ('begin', 'end'):
            value = sched.get(key, None)
            if (isinstance(value, (int, float)) and value != math.inf
                    and value > max_epochs):
                found.append(f'{path}.{key}={value}')
    return found
