"""Hooks registered into ``mmpretrain.registry.HOOKS``."""
from .plain_checkpoint_hook import PlainCheckpointHook

__all__ = ['PlainCheckpointHook']
