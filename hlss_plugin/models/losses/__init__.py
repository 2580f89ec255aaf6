"""Losses registered into ``mmpretrain.registry.MODELS``."""
from .hierarchical_alignment_loss import HierarchicalAlignmentLoss
from .hierarchical_supcon_loss import HierarchicalSupConLoss

__all__ = ['HierarchicalAlignmentLoss', 'HierarchicalSupConLoss']
