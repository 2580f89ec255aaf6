"""Evaluation: hierarchical kNN metric and the functions behind it.

Importing this package registers :class:`HierarchicalKNNMetric` in
``mmpretrain.registry.METRICS``.
"""
from .functional import (aggregate_scores, classification_metrics,
                         hierarchical_metrics, knn_scores)
from .metrics import HierarchicalKNNMetric
from .reporting import (dump_embeddings, plot_confusions, plot_tsne,
                        write_metrics)

__all__ = [
    'aggregate_scores', 'classification_metrics', 'hierarchical_metrics',
    'knn_scores', 'HierarchicalKNNMetric', 'dump_embeddings',
    'plot_confusions', 'plot_tsne', 'write_metrics'
]
