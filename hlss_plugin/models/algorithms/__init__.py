"""Self-supervised algorithms registered into ``mmpretrain.registry.MODELS``."""
from .backbone_embedder import BackboneEmbedder
from .build_level_heads import build_level_heads
from .embedding_predict_mixin import EmbeddingPredictMixin
from .hidisc import HiDisc
from .hierarchy_ids import hierarchy_ids
from .hlss import HLSS
from .hlss_aux_wrapper import HLSSAuxWrapper

__all__ = ['BackboneEmbedder', 'HLSS', 'HiDisc', 'EmbeddingPredictMixin',
           'hierarchy_ids',
           'HLSSAuxWrapper', 'build_level_heads']
