"""Evaluation: hierarchical kNN metric and the functions behind it.

Importing this package registers :class:`HierarchicalKNNMetric` in
``mmpretrain.registry.METRICS``.
"""
from .functional import (aggregate_scores, classification_metrics,
                         hierarchical_metrics, knn_scores)
from .metrics import HierarchicalKNNMetric

__all__ = [
    'aggregate_scores', 'classification_metrics', 'hierarchical_metrics',
    'knn_scores', 'HierarchicalKNNMetric'
]
