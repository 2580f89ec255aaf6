"""Models: losses (and, as they land, text towers, heads and HLSS)."""
from .losses import HierarchicalAlignmentLoss, HierarchicalSupConLoss

__all__ = ['HierarchicalAlignmentLoss', 'HierarchicalSupConLoss']
