"""Visual backbones registered into ``mmpretrain.registry.MODELS``."""
from .clip_resnet import CLIPResNet

__all__ = ['CLIPResNet']
