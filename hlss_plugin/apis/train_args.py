"""Apply a tool's command line to a config (MMPretrain's ``merge_args``)."""
import argparse
import os
import os.path as osp

import torch
from mmengine.config import Config

from ..utils.config import set_data_root
from .tool_error import ToolError

__all__ = ['DATALOADER_KEYS', 'merge_args']

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line of ``tools/train.py`` to ``cfg`` (in place).

    ``--cfg-options`` is merged first, so the dedicated options below also
    reach what it added. Options a namespace lacks (``tools/test.py`` and
    the benchmark build their own) count as not given. As in MMPretrain's
    ``tools/train.py``:

    * ``work_dir``: ``--work-dir`` > the config's > ``./work_dirs/<config
      name>``;
    * ``--amp``: ``optim_wrapper.type='AmpOptimWrapper'`` with a dynamic
      loss scale (refused without CUDA, unless the config's
      ``AmpFallbackOptimWrapperConstructor`` falls back by itself);
    * ``--resume [CKPT]``: ``resume=True``, ``load_from`` = CKPT (or the
      latest checkpoint of the work dir);
    * ``--no-validate``: ``val_cfg``, ``val_dataloader`` and
      ``val_evaluator`` set to None (no validation while training);
    * ``--auto-scale-lr``: ``auto_scale_lr.enable=True`` (mmengine scales
      the learning rate by the real batch size / ``base_batch_size``);
    * ``--no-pin-memory`` / ``--no-persistent-workers``: ``pin_memory`` /
      ``persistent_workers`` False in every dataloader.

    Additions: ``--data-root DIR`` replaces every ``data_root``
    (:func:`~hlss_plugin.utils.config.set_data_root`), and
    ``persistent_workers`` is turned off where a loader has no workers
    (the DataLoader refuses that combination).

    Args:
        cfg (Config): The config.
        args (argparse.Namespace): ``config``, ``work_dir``, ``launcher``,
            ``cfg_options`` and optionally ``data_root``, ``amp``,
            ``resume``, ``no_validate``, ``auto_scale_lr``,
            ``no_pin_memory``, ``no_persistent_workers``.

    Returns:
        Config: ``cfg``.

    Raises:
        ToolError: For a missing data root or resume checkpoint, ``--amp``
            without CUDA or without an ``optim_wrapper``, or
            ``--auto-scale-lr`` without ``auto_scale_lr`` in the config.

    Example:
        >>> args = argparse.Namespace(config='x.py', work_dir='w',
        ...     launcher='none', cfg_options={'a': 2})
        >>> merge_args(Config(dict(a=1)), args).a
        2
    """
    def opt(name, default=None):
        return getattr(args, name, default)

    if opt('cfg_options') is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher

    # work_dir priority: CLI > config > config file name.
    if opt('work_dir') is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if opt('data_root') is not None:
        try:
            keys = set_data_root(cfg, args.data_root)
        except ValueError as err:
            raise ToolError(str(err)) from err
        if os.environ.get('RANK', '0') == '0':
            print(f'--data-root {args.data_root}: set {", ".join(keys)}')

    if opt('no_validate', False):
        for key in ('val_cfg', 'val_dataloader', 'val_evaluator'):
            cfg[key] = None

    _set_amp(cfg, opt('amp', False))

    resume = opt('resume')
    if resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif resume is not None:
        if '://' not in resume and not osp.isfile(resume):
            raise ToolError(
                f'--resume {resume!r}: no such checkpoint file; give an '
                f'existing .pth, or --resume without a value to resume from '
                f'the latest checkpoint in the work dir.')
        cfg.resume = True
        cfg.load_from = resume

    if opt('auto_scale_lr', False):
        if not isinstance(cfg.get('auto_scale_lr', None), dict):
            raise ToolError(
                f'--auto-scale-lr: the config {args.config} has no '
                f'auto_scale_lr; add auto_scale_lr = dict('
                f'base_batch_size=N) (N: the total batch size its learning '
                f'rate was set for) or leave out --auto-scale-lr.')
        cfg.auto_scale_lr.enable = True

    for key in DATALOADER_KEYS:
        loader = cfg.get(key, None)
        if not isinstance(loader, dict):
            continue
        if opt('no_pin_memory', False):
            loader['pin_memory'] = False
        if opt('no_persistent_workers', False):
            loader['persistent_workers'] = False
        # DataLoader refuses persistent_workers without workers.
        if (loader.get('num_workers', 0) == 0
                and loader.get('persistent_workers', False)):
            loader['persistent_workers'] = False
    return cfg


def _set_amp(cfg: Config, amp: bool) -> None:
    """``--amp``, and the check that AMP can run on this machine."""
    if amp:
        if cfg.get('optim_wrapper', None) is None:
            raise ToolError(
                '--amp: the config has no optim_wrapper to switch to '
                'AmpOptimWrapper.')
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    optim_cfg = cfg.get('optim_wrapper', None) or {}
    # AmpFallbackOptimWrapperConstructor (hlss_srh_fast.py) builds a CPU
    # bf16 autocast wrapper itself when there is no GPU.
    falls_back = (optim_cfg.get('constructor') ==
                  'AmpFallbackOptimWrapperConstructor')
    if (optim_cfg.get('type') == 'AmpOptimWrapper' and not falls_back
            and not torch.cuda.is_available()):
        how = ('leave out --amp' if amp else
               "set optim_wrapper.type='OptimWrapper' (e.g. --cfg-options "
               'optim_wrapper.type=OptimWrapper)')
        raise ToolError(
            'mixed precision (--amp / AmpOptimWrapper) needs a CUDA GPU, but '
            'torch.cuda.is_available() is False on this machine; '
            "mmengine's AmpOptimWrapper only runs on GPU/NPU/MLU/MUSA "
            f'devices. To train in fp32 on the CPU, {how}.')
