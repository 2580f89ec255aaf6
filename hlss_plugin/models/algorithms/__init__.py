"""Self-supervised algorithms registered into ``mmpretrain.registry.MODELS``
(the helpers they share live in :mod:`hlss_plugin.models.utils`)."""
from .backbone_embedder import BackboneEmbedder
from .hidisc import HiDisc
from .hlss import HLSS
from .hlss_aux_wrapper import HLSSAuxWrapper

__all__ = ['BackboneEmbedder', 'HLSS', 'HiDisc', 'HLSSAuxWrapper']
