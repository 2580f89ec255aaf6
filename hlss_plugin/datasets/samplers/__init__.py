"""Samplers registered into ``mmpretrain.registry.DATA_SAMPLERS``."""
from .hierarchical_batch_sampler import HierarchicalBatchSampler
from .hierarchical_sampler import HierarchicalSampler

__all__ = ['HierarchicalSampler', 'HierarchicalBatchSampler']
