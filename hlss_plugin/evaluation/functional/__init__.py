"""Framework-free evaluation functions (plain torch)."""
from .hierarchical_scores import (AGGREGATIONS, LEVELS, aggregate_scores,
                                  average_precision, check_aggregation,
                                  classification_metrics, group_labels,
                                  hierarchical_metrics, metric_keys,
                                  patch_probabilities, topk_key)
from .knn import (knn_chunk_sizes, knn_memory_bytes, knn_scores,
                  knn_tiles)
from .embedding_diagnostics import (effective_rank, embedding_diagnostics,
                                    normalized_std)

__all__ = [
    'AGGREGATIONS', 'LEVELS', 'aggregate_scores', 'average_precision',
    'check_aggregation', 'classification_metrics', 'group_labels',
    'hierarchical_metrics', 'metric_keys', 'patch_probabilities',
    'topk_key', 'knn_chunk_sizes', 'knn_memory_bytes', 'knn_scores',
    'knn_tiles', 'effective_rank', 'embedding_diagnostics', 'normalized_std'
]
