#!/usr/bin/env python
"""Train a model from an MMPretrain config (with hlss_plugin's additions).

Run from the repository root; no ``pip install`` is needed::

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--data-root DIR] [--cfg-options KEY=VALUE ...]
        [--launcher {none,pytorch,slurm}]

The options work as in MMPretrain's ``tools/train.py``. Additions:

* ``--data-root DIR`` replaces every ``data_root`` in the config (all
  dataloader datasets, nested ones included, and the top-level variable).
* ``--launcher pytorch`` / ``slurm`` on a machine without CUDA trains with
  the gloo backend on the CPU: the process group is initialised here, before
  the Runner (whose own launcher code assumes CUDA), and the model is wrapped
  in ``DeviceAwareDistributedDataParallel``. SyncBN needs CUDA and is
  refused there with an error naming the config key.
* ``--amp`` on a machine without CUDA stops at once with a clear message
  (mmengine 0.10.7's ``AmpOptimWrapper`` only runs on accelerators).
* ``--resume`` checks the checkpoint before resuming (always read with
  ``torch.load(weights_only=True)``): a file that is not a training
  checkpoint, or one saved by another model or optimizer, stops the run with
  one line naming the file and the fix (see
  :func:`hlss_plugin.utils.resume.guard_resume`).
* Before the first iteration, ``PreflightHook`` (``default_hooks.preflight``)
  checks what validation will need (see its doc); a problem stops the run
  with one error, before any epoch is spent.
* At the end, the number of bad patches skipped under
  ``on_bad_patch='skip'`` (all dataloader workers and ranks) is printed.

The dedicated options are applied after ``--cfg-options``, so e.g.
``--data-root`` also reaches datasets that ``--cfg-options`` added.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
from datetime import timedelta
from typing import List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
import torch.distributed as torch_dist  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from hlss_plugin.engine.hooks import PreflightError  # noqa: E402
from hlss_plugin.utils.dist import close_process_group  # noqa: E402
from hlss_plugin.utils.config import set_data_root, walk_config  # noqa: E402
from hlss_plugin.utils.resume import ResumeError, guard_resume  # noqa: E402

DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
DEVICE_AWARE_DDP = 'DeviceAwareDistributedDataParallel'
#: Norm layer types that build SyncBatchNorm (mmcv's NORM_LAYERS names).
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')


class TrainToolError(Exception):
    """A problem with the command line or the config, reported without a
    traceback."""


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Train a model from an MMPretrain config.')
    parser.add_argument('config', help='train config file path')
    parser.add_argument(
        '--work-dir',
        help='folder for logs and checkpoints (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument(
        '--resume',
        nargs='?',
        const='auto',
        metavar='CKPT',
        help='resume from CKPT; without a value, from the latest checkpoint '
        'in the work dir')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='automatic mixed precision (AmpOptimWrapper); needs a GPU')
    parser.add_argument(
        '--data-root',
        metavar='DIR',
        help='replace every data_root in the config by DIR')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, e.g. train_cfg.max_epochs=2 or '
        'key="[a,b]"; applied before the options above')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm'],
        default='none',
        help='job launcher (pytorch: started by torchrun / '
        'tools/dist_train.sh; slurm: by srun / tools/slurm_train.sh)')
    # torch.distributed.launch passes --local-rank (--local_rank before 2.0).
    parser.add_argument(
        '--local_rank', '--local-rank', type=int, default=0,
        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def find_sync_bn(cfg: Config) -> List[str]:
    """Config keys that ask for SyncBatchNorm (``sync_bn`` or a norm type).

    Args:
        cfg (Config): The config.

    Returns:
        list[str]: e.g. ``['sync_bn', 'model.neck.norm_cfg.type']``.
    """
    found = ['sync_bn'] if cfg.get('sync_bn', None) is not None else []
    for container, key, path in walk_config(cfg._cfg_dict.get('model', {}),
                                      'model'):
        if (key == 'type' and isinstance(container, dict)
                and container[key] in SYNC_BN_TYPES):
            found.append(path)
    return found


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to ``cfg`` (in place) and return it.

    Raises:
        TrainToolError: For a missing data root or resume checkpoint, or
            ``--amp`` without CUDA.
    """
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher

    # work_dir priority: CLI > config > config file name.
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.data_root is not None:
        try:
            keys = set_data_root(cfg, args.data_root)
        except ValueError as err:
            raise TrainToolError(str(err)) from err
        if os.environ.get('RANK', '0') == '0':
            print(f'--data-root {args.data_root}: set {", ".join(keys)}')

    if args.amp:
        if cfg.get('optim_wrapper', None) is None:
            raise TrainToolError(
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
        how = ('leave out --amp' if args.amp else
               "set optim_wrapper.type='OptimWrapper' (e.g. --cfg-options "
               'optim_wrapper.type=OptimWrapper)')
        raise TrainToolError(
            'mixed precision (--amp / AmpOptimWrapper) needs a CUDA GPU, but '
            'torch.cuda.is_available() is False on this machine; '
            "mmengine's AmpOptimWrapper only runs on GPU/NPU/MLU/MUSA "
            f'devices. To train in fp32 on the CPU, {how}.')

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        if '://' not in args.resume and not osp.isfile(args.resume):
            raise TrainToolError(
                f'--resume {args.resume!r}: no such checkpoint file; give an '
                f'existing .pth, or --resume without a value to resume from '
                f'the latest checkpoint in the work dir.')
        cfg.resume = True
        cfg.load_from = args.resume

    # DataLoader refuses persistent_workers without workers.
    for key in DATALOADER_KEYS:
        loader = cfg.get(key, None)
        if (isinstance(loader, dict) and loader.get('num_workers', 0) == 0
                and loader.get('persistent_workers', False)):
            loader['persistent_workers'] = False
    return cfg


# -------------------------------------------------------------- distributed
def _require_env(names: List[str], launcher: str) -> None:
    missing = [n for n in names if n not in os.environ]
    if missing:
        start = ('tools/dist_train.sh CONFIG NPROC (or torchrun '
                 '--nproc_per_node=NPROC tools/train.py CONFIG --launcher '
                 'pytorch)' if launcher == 'pytorch' else
                 'tools/slurm_train.sh PARTITION JOB CONFIG')
        raise TrainToolError(
            f'--launcher {launcher}: the environment variables '
            f'{", ".join(missing)} are not set; start the job with {start}, '
            f'or use --launcher none for a single process.')


def _slurm_env_to_torch_env(port: Optional[int]) -> None:
    """Set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT from SLURM's."""
    _require_env(['SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'], 'slurm')
    os.environ['RANK'] = os.environ['SLURM_PROCID']
    os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        os.environ['MASTER_ADDR'] = subprocess.getoutput(
            f'scontrol show hostname {os.environ["SLURM_NODELIST"]} '
            f'| head -n1')


def init_cpu_process_group(cfg: Config, launcher: str) -> None:
    """Initialise a gloo process group from the launcher's environment.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device``, so on a
    machine without CUDA the group is created here; the Runner then skips
    its own ``init_dist`` because a group already exists.

    Args:
        cfg (Config): The config; ``env_cfg.dist_cfg`` (``timeout`` in
            seconds, slurm ``port``) is read and its ``backend`` set to
            ``'gloo'``.
        launcher (str): ``'pytorch'`` or ``'slurm'``.
    """
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if launcher == 'slurm':
        _slurm_env_to_torch_env(dist_cfg.get('port', None))
    _require_env(['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'],
                 launcher)
    kwargs = {}
    if dist_cfg.get('timeout', None) is not None:
        kwargs['timeout'] = timedelta(seconds=dist_cfg['timeout'])
    torch_dist.init_process_group(
        backend='gloo',
        init_method='env://',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


def prepare_distributed(cfg: Config, launcher: str) -> bool:
    """Set up ``cfg`` (and on CPU the process group) for a launched job.

    Returns:
        bool: Whether a process group was initialised here (and should be
        destroyed after training).

    Raises:
        TrainToolError: On a CPU-only machine, if the config asks for SyncBN.
    """
    # Registers DeviceAwareDistributedDataParallel.
    import hlss_plugin.engine.model_wrappers  # noqa: F401
    if cfg.get('model_wrapper_cfg', None) is None:
        # The arguments mmengine's Runner uses without a model_wrapper_cfg.
        cfg.model_wrapper_cfg = dict(
            type=DEVICE_AWARE_DDP,
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    if torch.cuda.is_available():
        if launcher == 'pytorch':
            _require_env(['RANK', 'WORLD_SIZE', 'LOCAL_RANK'], launcher)
        return False  # mmengine's init_dist with env_cfg.dist_cfg (nccl)
    sync_bn = find_sync_bn(cfg)
    if sync_bn:
        raise TrainToolError(
            f'SyncBN needs CUDA, but this machine has no GPU and trains with '
            f'gloo on the CPU; the config asks for it in: '
            f'{", ".join(sync_bn)}. Use plain BatchNorm: drop sync_bn '
            f"(--cfg-options sync_bn=None) and set norm types to 'BN' / "
            f"'BN1d' (e.g. --cfg-options {sync_bn[-1]}=BN).")
    if torch_dist.is_available() and torch_dist.is_initialized():
        return False
    init_cpu_process_group(cfg, launcher)
    return True


# --------------------------------------------------------------------- main
def build_runner(cfg: Config):
    """Build mmengine's Runner (or ``cfg.runner_type``) from ``cfg``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


def report_skipped_patches(runner) -> int:
    """Print how many bad patches training skipped (summed over ranks).

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


def main(argv: Optional[List[str]] = None) -> None:
    """Parse ``argv``, build the runner and train."""
    args = parse_args(argv)
    owns_group = False
    clean = False  # every rank reached the end
    runner = None
    try:
        if not osp.isfile(args.config):
            raise TrainToolError(f'config file {args.config!r} not found.')
        cfg = merge_args(Config.fromfile(args.config), args)
        if args.launcher != 'none':
            owns_group = prepare_distributed(cfg, args.launcher)
        # SyncBN that a module builds by default (not named in the config)
        # is refused by DeviceAwareDistributedDataParallel.
        runner = build_runner(cfg)
        guard_resume(runner)
        runner.train()
        report_skipped_patches(runner)
        clean = True
    except (TrainToolError, ResumeError, PreflightError) as err:
        sys.exit(f'tools/train.py: error: {err}')
    finally:
        # Frees the DDP wrapper, which holds the backend, before the group.
        runner = None  # noqa: F841
        if owns_group:
            close_process_group(clean)


if __name__ == '__main__':
    main()
