"""Heads registered into ``mmpretrain.registry.MODELS``."""
from .hierarchical_contrastive_head import HierarchicalContrastiveHead
from .hierarchical_text_aligned_head import HierarchicalTextAlignedHead
from .vicreg_head import VICRegHead

__all__ = [
    'HierarchicalTextAlignedHead', 'HierarchicalContrastiveHead', 'VICRegHead'
]
