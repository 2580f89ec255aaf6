"""HLSS model, text-aligned heads, losses and frozen text towers."""
from .algorithms import HLSS
from .heads import HierarchicalTextAlignedHead
from .losses import HierarchicalAlignmentLoss, HierarchicalSupConLoss
from .text_towers import (BaseTextTower, HFCLIPTextTower, HFSentenceTextTower,
                          PrecomputedTextTower)

__all__ = [
    'HLSS', 'HierarchicalTextAlignedHead', 'HierarchicalAlignmentLoss',
    'HierarchicalSupConLoss', 'BaseTextTower', 'HFCLIPTextTower',
    'HFSentenceTextTower', 'PrecomputedTextTower'
]
