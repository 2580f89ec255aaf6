"""HLSS model, CLIP backbone, necks, heads, losses and text towers."""
from .algorithms import (HLSS, BackboneEmbedder, HiDisc,
                         HLSSAuxWrapper)
from .backbones import CLIPResNet
from .data_preprocessors import SRHBatchAugmentPreprocessor
from .heads import (HierarchicalContrastiveHead, HierarchicalTextAlignedHead,
                    VICRegHead)
from .initializers import HLSSPretrainedInit  # noqa: F401 (registers it)
from .losses import HierarchicalAlignmentLoss, HierarchicalSupConLoss
from .necks import IdentityNeck
from .text_towers import (BaseTextTower, HFCLIPTextTower, HFSentenceTextTower,
                          PrecomputedTextTower)

__all__ = [
    'HLSS', 'CLIPResNet', 'IdentityNeck', 'HierarchicalTextAlignedHead',
    'HierarchicalAlignmentLoss', 'HierarchicalSupConLoss', 'BaseTextTower',
    'HFCLIPTextTower', 'HFSentenceTextTower', 'PrecomputedTextTower',
    'HiDisc', 'HierarchicalContrastiveHead', 'VICRegHead', 'HLSSAuxWrapper',
    'BackboneEmbedder', 'SRHBatchAugmentPreprocessor'
]
