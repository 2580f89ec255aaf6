"""Metrics registered into ``mmpretrain.registry.METRICS``."""
from .hierarchical_classification_metric import \
    HierarchicalClassificationMetric
from .hierarchical_knn_metric import HierarchicalKNNMetric

__all__ = ['HierarchicalClassificationMetric', 'HierarchicalKNNMetric']
