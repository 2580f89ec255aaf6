"""Optimizer-wrapper constructor that keeps ``AmpOptimWrapper`` configs
usable on machines without an accelerator."""
from typing import Optional

import torch
from mmengine.device import (is_cuda_available, is_mlu_available,
                             is_musa_available, is_npu_available)
from mmengine.logging import print_log
from mmengine.optim import (AmpOptimWrapper, DefaultOptimWrapperConstructor,
                            OptimWrapper)
from mmpretrain.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from .cpu_autocast_optim_wrapper import CPUAutocastOptimWrapper

#: ``AmpOptimWrapper`` arguments that have no CPU counterpart.
_AMP_ONLY_KEYS = ('type', 'dtype', 'loss_scale', 'use_fsdp')


def amp_device_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can be built here (the same
    device test as its constructor: CUDA, NPU, MLU or MUSA)."""
    return bool(is_cuda_available() or is_npu_available()
                or is_mlu_available() or is_musa_available())


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class AmpFallbackOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """:class:`~mmengine.optim.DefaultOptimWrapperConstructor` that replaces
    ``AmpOptimWrapper`` by a CPU equivalent when no accelerator is present.

    With a GPU (or NPU/MLU/MUSA) it builds exactly what the config says,
    e.g. ``AmpOptimWrapper(dtype='bfloat16')``. Without one (where
    mmengine's ``AmpOptimWrapper`` stops with an assertion) it logs what it
    does and builds

    * :class:`CPUAutocastOptimWrapper` (bf16 autocast on the CPU, no loss
      scaling) for ``dtype='bfloat16'``;
    * a plain float32 :class:`~mmengine.optim.OptimWrapper` for any other
      dtype (CPU autocast has no float16), with a warning.

    So one config trains on both kinds of machine. Any other wrapper type
    passes through unchanged; ``paramwise_cfg`` works as in the default
    constructor.

    Example:
        >>> optim_wrapper = dict(
        ...     type='AmpOptimWrapper', dtype='bfloat16',
        ...     constructor='AmpFallbackOptimWrapperConstructor',
        ...     optimizer=dict(type='AdamW', lr=1e-3))
        >>> wrapper = build_optim_wrapper(model, optim_wrapper)  # on a CPU
        >>> type(wrapper).__name__
        'CPUAutocastOptimWrapper'
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        fallback = self.fallback_cfg()
        if fallback is None:
            return super().__call__(model)
        original = self.optim_wrapper_cfg
        self.optim_wrapper_cfg = fallback
        try:
            return super().__call__(model)
        finally:
            self.optim_wrapper_cfg = original

    def fallback_cfg(self) -> Optional[dict]:
        """The wrapper config to use instead of the configured one, or
        ``None`` to build the configured one."""
        wrapper_type = self.optim_wrapper_cfg.get('type', 'OptimWrapper')
        is_amp = (wrapper_type is AmpOptimWrapper or (
            isinstance(wrapper_type, str)
            and wrapper_type.split('.')[-1] == 'AmpOptimWrapper'))
        if not is_amp or amp_device_available():
            return None
        dtype = self.optim_wrapper_cfg.get('dtype')
        cfg = {k: v for k, v in self.optim_wrapper_cfg.items()
               if k not in _AMP_ONLY_KEYS}
        if dtype in ('bfloat16', torch.bfloat16):
            cfg['type'] = CPUAutocastOptimWrapper
            print_log(
                'AmpFallbackOptimWrapperConstructor: no GPU/NPU/MLU/MUSA '
                'device, so mmengine\'s AmpOptimWrapper cannot be built; '
                'training with bf16 autocast on the CPU '
                '(CPUAutocastOptimWrapper, no loss scaling).',
                logger='current')
        else:
            cfg['type'] = OptimWrapper
            print_log(
                f'AmpFallbackOptimWrapperConstructor: no GPU/NPU/MLU/MUSA '
                f'device and CPU autocast supports only bfloat16 (config '
                f'dtype={dtype!r}); training in float32 with OptimWrapper. '
                f"Set dtype='bfloat16' for mixed precision on the CPU.",
                logger='current', level=30)
        return cfg
