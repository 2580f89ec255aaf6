"""Model wrappers registered into ``mmpretrain.registry.MODEL_WRAPPERS``."""
from .device_aware_ddp import DeviceAwareDistributedDataParallel

__all__ = ['DeviceAwareDistributedDataParallel']
