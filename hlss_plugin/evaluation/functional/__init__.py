"""Framework-free evaluation functions (plain torch)."""
from .hierarchical_scores import (LEVELS, aggregate_scores,
                                  average_precision, classification_metrics,
                                  group_labels, hierarchical_metrics,
                                  metric_keys, topk_key)
from .knn import (knn_chunk_sizes, knn_memory_bytes, knn_scores,
                  knn_tiles)

__all__ = [
    'LEVELS', 'aggregate_scores', 'average_precision',
    'classification_metrics', 'group_labels', 'hierarchical_metrics',
    'metric_keys', 'topk_key', 'knn_chunk_sizes', 'knn_memory_bytes',
    'knn_scores', 'knn_tiles'
]
