"""Hooks registered into ``mmpretrain.registry.HOOKS``."""
from .channels_last_hook import ChannelsLastHook
from .hierarchical_batch_check_hook import HierarchicalBatchCheckHook
from .plain_checkpoint_hook import PlainCheckpointHook

__all__ = [
    'HierarchicalBatchCheckHook', 'PlainCheckpointHook', 'ChannelsLastHook'
]
