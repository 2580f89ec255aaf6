"""Runner-side pieces: hooks, model wrappers and checkpoint helpers."""
from .hooks import HierarchicalBatchCheckHook, PlainCheckpointHook
from .loops import EmbeddingTestLoop, EmbeddingValLoop
from .model_wrappers import DeviceAwareDistributedDataParallel
from .optim_wrappers import (AmpFallbackOptimWrapperConstructor,
                             CPUAutocastOptimWrapper)
from .plain_state import PLAIN_TAG, from_plain, to_plain

__all__ = [
    'HierarchicalBatchCheckHook', 'PlainCheckpointHook',
    'DeviceAwareDistributedDataParallel', 'PLAIN_TAG', 'from_plain',
    'to_plain', 'AmpFallbackOptimWrapperConstructor',
    'CPUAutocastOptimWrapper', 'EmbeddingValLoop', 'EmbeddingTestLoop'
]
