"""HLSS model, CLIP backbone, necks, heads, losses and text towers."""
from .algorithms import HLSS
from .backbones import CLIPResNet
from .heads import HierarchicalTextAlignedHead
from .losses import HierarchicalAlignmentLoss, HierarchicalSupConLoss
from .necks import IdentityNeck
from .text_towers import (BaseTextTower, HFCLIPTextTower, HFSentenceTextTower,
                          PrecomputedTextTower)

__all__ = [
    'HLSS', 'CLIPResNet', 'IdentityNeck', 'HierarchicalTextAlignedHead',
    'HierarchicalAlignmentLoss', 'HierarchicalSupConLoss', 'BaseTextTower',
    'HFCLIPTextTower', 'HFSentenceTextTower', 'PrecomputedTextTower'
]
