"""Hooks registered into ``mmpretrain.registry.HOOKS``."""
from .channels_last_hook import ChannelsLastHook
from .hierarchical_batch_check_hook import HierarchicalBatchCheckHook
from .plain_checkpoint_hook import PlainCheckpointHook
from .eval_buffer_sync_hook import EvalBufferSyncHook
from .preflight_hook import PreflightError, PreflightHook
from .knn_curve_hook import KNNCurveHook, read_curve

__all__ = [
    'HierarchicalBatchCheckHook', 'PlainCheckpointHook', 'ChannelsLastHook',
    'KNNCurveHook', 'read_curve', 'EvalBufferSyncHook', 'PreflightHook',
    'PreflightError'
]
