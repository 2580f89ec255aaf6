"""Optimizer wrappers and constructors registered into MMPretrain."""
from .amp_fallback_optim_wrapper_constructor import (
    AmpFallbackOptimWrapperConstructor, amp_device_available)
from .cpu_autocast_optim_wrapper import CPUAutocastOptimWrapper

__all__ = [
    'AmpFallbackOptimWrapperConstructor', 'CPUAutocastOptimWrapper',
    'amp_device_available'
]
