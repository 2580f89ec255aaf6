"""Heads registered into ``mmpretrain.registry.MODELS``."""
from .hierarchical_text_aligned_head import HierarchicalTextAlignedHead

__all__ = ['HierarchicalTextAlignedHead']
