"""Helpers shared by the hierarchical algorithms (as MMPretrain keeps its
own in ``mmpretrain/models/utils``): level heads built from the attribute
texts, per-level ids of a batch, and the embedding ``predict`` mode."""
from .build_level_heads import (DEFAULT_ID_KEYS, build_level_heads,
                                level_heads_and_ids, resolve_id_keys)
from .embedding_predict_mixin import EmbeddingPredictMixin, attach_feats
from .hierarchy_ids import hierarchy_ids
from .level_batch import check_finite_loss, views_and_level_ids

__all__ = [
    'DEFAULT_ID_KEYS', 'EmbeddingPredictMixin', 'attach_feats',
    'build_level_heads', 'check_finite_loss', 'hierarchy_ids',
    'level_heads_and_ids', 'resolve_id_keys', 'views_and_level_ids'
]
