"""Self-supervised algorithms registered into ``mmpretrain.registry.MODELS``."""
from .hierarchy_ids import hierarchy_ids
from .hlss import HLSS

__all__ = ['HLSS', 'hierarchy_ids']
