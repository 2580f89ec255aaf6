"""Optimizer wrapper that trains under bf16 autocast on the CPU."""
from contextlib import contextmanager
from typing import Union

import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import OPTIM_WRAPPERS
from torch import nn


@OPTIM_WRAPPERS.register_module()
class CPUAutocastOptimWrapper(OptimWrapper):
    """:class:`~mmengine.optim.OptimWrapper` whose ``optim_context`` runs the
    forward pass under ``torch.autocast('cpu', dtype=torch.bfloat16)``.

    mmengine 0.10.7's ``AmpOptimWrapper`` refuses to be built without a
    GPU/NPU/MLU/MUSA device, although ``torch.autocast`` supports bf16 on
    the CPU (fast on CPUs with AMX/AVX512-BF16). This wrapper is the CPU
    counterpart of ``AmpOptimWrapper(dtype='bfloat16')``; it is what
    :class:`AmpFallbackOptimWrapperConstructor` builds on a machine without
    an accelerator. There is no loss scaling: bf16 has float32's exponent
    range, so gradients do not underflow the way fp16 ones do (the
    GradScaler of ``AmpOptimWrapper`` is a no-op for bf16 in practice).
    Parameters, gradients and optimizer state stay float32.

    Args:
        dtype (str | torch.dtype): Autocast dtype; only ``'bfloat16'`` (what
            CPU autocast supports through mmengine's ``autocast``).
            Defaults to ``'bfloat16'``.
        **kwargs: Passed to :class:`~mmengine.optim.OptimWrapper`
            (``optimizer``, ``accumulative_counts``, ``clip_grad``).

    Example:
        >>> model = nn.Linear(4, 2)
        >>> wrapper = CPUAutocastOptimWrapper(
        ...     optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
        >>> with wrapper.optim_context(model):
        ...     model(torch.rand(3, 4)).dtype
        torch.bfloat16
    """

    def __init__(self, dtype: Union[str, torch.dtype] = 'bfloat16',
                 **kwargs):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(
                f'CPUAutocastOptimWrapper: dtype must be "bfloat16" (CPU '
                f'autocast supports bf16 only), got {dtype!r}. Use '
                f'OptimWrapper for float32 training.')
        super().__init__(**kwargs)
        self.cast_dtype = torch.bfloat16

    @contextmanager
    def optim_context(self, model: nn.Module):
        """:meth:`OptimWrapper.optim_context` plus CPU bf16 autocast."""
        from mmengine.runner.amp import autocast
        with super().optim_context(model), autocast(
                device_type='cpu', dtype=self.cast_dtype):
            yield
