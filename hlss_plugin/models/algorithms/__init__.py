"""Self-supervised algorithms registered into ``mmpretrain.registry.MODELS``."""
from .embedding_predict_mixin import EmbeddingPredictMixin
from .hierarchy_ids import hierarchy_ids
from .hlss import HLSS

__all__ = ['HLSS', 'EmbeddingPredictMixin', 'hierarchy_ids']
