"""Process-group set-up for launched tools (``--launcher pytorch|slurm``).

mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device``, so on a
machine without CUDA the tools initialise a gloo process group themselves
(:func:`init_cpu_process_group`) before the Runner is built; the Runner
then skips its own ``init_dist`` because a group already exists. On CUDA
machines mmengine's launcher code runs as usual (nccl). At the end, the
tools close a group they own with
:func:`hlss_plugin.utils.dist.close_process_group`.
"""
import os
import subprocess
from datetime import timedelta
from typing import List, Optional

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

from ..utils.config import walk_config
from .tool_error import ToolError

__all__ = [
    'DEVICE_AWARE_DDP', 'SYNC_BN_TYPES', 'find_sync_bn', 'require_env',
    'slurm_env_to_torch_env', 'init_cpu_process_group',
    'prepare_distributed'
]

DEVICE_AWARE_DDP = 'DeviceAwareDistributedDataParallel'
#: Norm layer types that build SyncBatchNorm (mmcv's NORM_LAYERS names).
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm', 'nn.SyncBatchNorm')


def find_sync_bn(cfg: Config) -> List[str]:
    """Config keys that ask for SyncBatchNorm (``sync_bn`` or a norm type).

    Args:
        cfg (Config): The config.

    Returns:
        list[str]: e.g. ``['sync_bn', 'model.neck.norm_cfg.type']``.

    Example:
        >>> find_sync_bn(Config(dict(model=dict(neck=dict(
        ...     norm_cfg=dict(type='SyncBN'))))))
        ['model.neck.norm_cfg.type']
    """
    found = ['sync_bn'] if cfg.get('sync_bn', None) is not None else []
    for container, key, path in walk_config(cfg._cfg_dict.get('model', {}),
                                            'model'):
        if (key == 'type' and isinstance(container, dict)
                and container[key] in SYNC_BN_TYPES):
            found.append(path)
    return found


def require_env(names: List[str], launcher: str) -> None:
    """Check that the launcher set the environment variables ``names``.

    Args:
        names (list[str]): e.g. ``['RANK', 'WORLD_SIZE']``.
        launcher (str): ``'pytorch'`` or ``'slurm'`` (names the start
            command in the message).

    Raises:
        ToolError: Naming the missing variables and how to start the job.
    """
    missing = [n for n in names if n not in os.environ]
    if missing:
        start = ('tools/dist_train.sh CONFIG NPROC (or torchrun '
                 '--nproc_per_node=NPROC tools/train.py CONFIG --launcher '
                 'pytorch)' if launcher == 'pytorch' else
                 'tools/slurm_train.sh PARTITION JOB CONFIG WORK_DIR')
        raise ToolError(
            f'--launcher {launcher}: the environment variables '
            f'{", ".join(missing)} are not set; start the job with {start}, '
            f'or use --launcher none for a single process.')


def slurm_env_to_torch_env(port: Optional[int] = None) -> None:
    """Set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT from Slurm's.

    Args:
        port (int, optional): ``MASTER_PORT`` (``env_cfg.dist_cfg.port``);
            default: the environment's, else 29500.

    Raises:
        ToolError: Outside a Slurm task (no ``SLURM_PROCID`` ...).
    """
    require_env(['SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'], 'slurm')
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

    Args:
        cfg (Config): The config; ``env_cfg.dist_cfg`` (``timeout`` in
            seconds, slurm ``port``) is read and its ``backend`` set to
            ``'gloo'``.
        launcher (str): ``'pytorch'`` or ``'slurm'``.

    Raises:
        ToolError: When the launcher's environment variables are missing.
    """
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    if launcher == 'slurm':
        slurm_env_to_torch_env(dist_cfg.get('port', None))
    require_env(['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'],
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

    Without a ``model_wrapper_cfg`` the model is wrapped in
    ``DeviceAwareDistributedDataParallel`` with the arguments mmengine's
    Runner uses by default. On a machine without CUDA, SyncBN is refused
    and a gloo group is initialised here.

    Args:
        cfg (Config): The config (changed in place).
        launcher (str): ``'pytorch'`` or ``'slurm'``.

    Returns:
        bool: Whether a process group was initialised here (and should be
        destroyed after training).

    Raises:
        ToolError: On a CPU-only machine, if the config asks for SyncBN;
            when the launcher's environment variables are missing.

    Example:
        >>> owns_group = prepare_distributed(cfg, 'pytorch')  # doctest: +SKIP
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
            require_env(['RANK', 'WORLD_SIZE', 'LOCAL_RANK'], launcher)
        return False  # mmengine's init_dist with env_cfg.dist_cfg (nccl)
    sync_bn = find_sync_bn(cfg)
    if sync_bn:
        raise ToolError(
            f'SyncBN needs CUDA, but this machine has no GPU and trains with '
            f'gloo on the CPU; the config asks for it in: '
            f'{", ".join(sync_bn)}. Use plain BatchNorm: drop sync_bn '
            f"(--cfg-options sync_bn=None) and set norm types to 'BN' / "
            f"'BN1d' (e.g. --cfg-options {sync_bn[-1]}=BN).")
    if torch_dist.is_available() and torch_dist.is_initialized():
        return False
    init_cpu_process_group(cfg, launcher)
    return True
