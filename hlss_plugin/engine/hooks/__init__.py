"""Hooks registered into ``mmpretrain.registry.HOOKS``."""
from .hierarchical_batch_check_hook import HierarchicalBatchCheckHook
from .plain_checkpoint_hook import PlainCheckpointHook

__all__ = ['HierarchicalBatchCheckHook', 'PlainCheckpointHook']
