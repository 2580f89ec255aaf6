"""Build the Runner of a tool, and what the tools report after training."""
import logging

import torch
from mmengine.config import Config

from .schedule import schedule_overruns

__all__ = ['build_runner', 'report_skipped_patches']


def build_runner(cfg: Config):
    """Build mmengine's Runner (or ``cfg.runner_type``) from ``cfg``.

    Logs one warning (in the run's log) when a ``param_scheduler`` begins
    or ends after ``train_cfg.max_epochs``
    (:func:`~hlss_plugin.apis.schedule.schedule_overruns`): a warm-up or
    decay that never completes, e.g. after ``--cfg-options
    train_cfg.max_epochs=1`` instead of ``--epochs 1``.

    Args:
        cfg (Config): The merged config.

    Returns:
        Runner: The runner.

    Example:
        >>> runner = build_runner(Config.fromfile(path))  # doctest: +SKIP
    """
    from mmengine.logging import print_log
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    runner = (Runner.from_cfg(cfg) if 'runner_type' not in cfg else
              RUNNERS.build(cfg))
    overruns = schedule_overruns(cfg)
    if overruns:
        print_log(
            f'the schedule outlasts train_cfg.max_epochs='
            f'{cfg.train_cfg.max_epochs}: {", ".join(overruns)} (epochs); '
            f'that scheduler never completes. '
            f'To shorten the whole schedule, use tools/train.py --epochs N '
            f'instead of setting train_cfg.max_epochs.',
            logger='current', level=logging.WARNING)
    return runner


def report_skipped_patches(runner) -> int:
    """Print how many bad patches training skipped (summed over ranks).

    Args:
        runner (Runner): A runner after ``train()``.

    Returns:
        int: The total (0 when nothing was skipped or the train dataset is
        not hierarchical).
    """
    from mmengine.dist import all_reduce, get_world_size, is_main_process

    from hlss_plugin.datasets.base_hierarchical_dataset import total_skipped
    loop = getattr(runner, '_train_loop', None)
    loader = getattr(loop, 'dataloader', None)  # built once training ran
    count = torch.tensor(
        total_skipped(getattr(loader, 'dataset', None)), dtype=torch.int64)
    if get_world_size() > 1:
        all_reduce(count, op='sum')
    total = int(count)
    if total and is_main_process():
        print(f'tools/train.py: {total} bad patch(es) were skipped during '
              f'training (on_bad_patch="skip"); each one\'s path is in the '
              f'warnings of the log. Fix or remove those files.')
    return total
