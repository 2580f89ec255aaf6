"""DDP wrapper that also trains CPU models (gloo) under mmengine's Runner."""
from typing import Optional

import torch
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmpretrain.registry import MODEL_WRAPPERS
from torch import nn


def _parameter_device(module: nn.Module) -> Optional[torch.device]:
    """The one device holding all of ``module``'s parameters, else ``None``.

    ``None`` also for a module without parameters or with parameters on
    several devices; DDP itself then reports what is wrong.
    """
    devices = {p.device for p in module.parameters()}
    return devices.pop() if len(devices) == 1 else None


def _refuse_sync_bn(module: nn.Module) -> None:
    """Raise a ``ValueError`` naming the SyncBatchNorm layers of a CPU
    module (DDP's own message does not say which or how to fix it)."""
    names = [
        name or type(module).__name__
        for name, m in module.named_modules()
        if isinstance(m, nn.SyncBatchNorm)
        or type(m).__name__ == 'SyncBatchNorm'
    ]
    if names:
        shown = ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')
        raise ValueError(
            f'DeviceAwareDistributedDataParallel: the module is on the CPU '
            f'but has {len(names)} SyncBatchNorm layers ({shown}), which '
            f'need CUDA. Build them with a plain norm_cfg '
            f"(type='BN' / 'BN1d'; some modules default to SyncBN, e.g. "
            f"MMPretrain's NonLinearNeck) and drop `sync_bn` from the "
            f'config.')


class DeviceAwareDistributedDataParallel(MMDistributedDataParallel):
    """:class:`~mmengine.model.MMDistributedDataParallel` that accepts CPU
    modules.

    mmengine 0.10.7's ``Runner.wrap_model`` always passes
    ``device_ids=[int(os.environ['LOCAL_RANK'])]`` to a DDP wrapper, and
    :class:`torch.nn.parallel.DistributedDataParallel` refuses ``device_ids``
    for a CPU module. This wrapper drops ``device_ids`` and ``output_device``
    (sets them to ``None``, which is what DDP expects for CPU modules) when
    all of the module's parameters are on the CPU, e.g. when training with
    the gloo backend on a machine without GPUs. For a module on a GPU (or any
    other device) the arguments pass unchanged, so it behaves exactly like
    :class:`~mmengine.model.MMDistributedDataParallel`.

    SyncBatchNorm only works on GPUs; for a CPU module that has any, a
    ``ValueError`` names the layers and the fix.

    Gradients are averaged over ranks by DDP as usual, on every device.

    Registration: in ``mmpretrain.registry.MODEL_WRAPPERS`` and also in
    mmengine's root ``MODEL_WRAPPERS``. mmengine 0.10.7's
    ``Runner.wrap_model`` looks the type up with the *root* registry's
    ``get``, which does not search child registries such as mmpretrain's
    (even with ``default_scope='mmpretrain'``), so a plain
    ``type='DeviceAwareDistributedDataParallel'`` would otherwise resolve to
    ``None`` there.

    Args:
        module (nn.Module): The model to wrap; its parameters must all be on
            one device.
        detect_anomalous_params (bool): See
            :class:`~mmengine.model.MMDistributedDataParallel`. Defaults to
            False.
        **kwargs: Passed to :class:`torch.nn.parallel.DistributedDataParallel`
            (``device_ids`` and ``output_device`` are replaced by ``None``
            for a CPU module).

    Raises:
        ValueError: If the module is on the CPU and has SyncBatchNorm layers.

    Example:
        >>> # In a config (tools/train.py sets this for --launcher pytorch):
        >>> model_wrapper_cfg = dict(type='DeviceAwareDistributedDataParallel',
        ...                          broadcast_buffers=False)
        >>> # Directly, inside an initialised gloo process group:
        >>> # ddp = DeviceAwareDistributedDataParallel(model, device_ids=[0])
        >>> # ddp.device_ids  -> None for a CPU model
    """

    def __init__(self,
                 module: nn.Module,
                 detect_anomalous_params: bool = False,
                 **kwargs) -> None:
        device = _parameter_device(module)
        if device is not None and device.type == 'cpu':
            _refuse_sync_bn(module)
            dropped = {k: kwargs[k] for k in ('device_ids', 'output_device')
                       if kwargs.get(k) is not None}
            if dropped:
                print_log(
                    f'DeviceAwareDistributedDataParallel: the module is on '
                    f'the CPU, so {dropped} are replaced by None.',
                    logger='current')
            kwargs['device_ids'] = None
            kwargs['output_device'] = None
        super().__init__(
            module=module,
            detect_anomalous_params=detect_anomalous_params,
            **kwargs)


MODEL_WRAPPERS.register_module(module=DeviceAwareDistributedDataParallel)
# Lets ``Runner.wrap_model`` find the plain name (see the class docstring).
MMENGINE_MODEL_WRAPPERS.register_module(
    module=DeviceAwareDistributedDataParallel)
