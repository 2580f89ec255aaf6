"""Samplers registered into ``mmpretrain.registry.DATA_SAMPLERS``."""
from .hierarchical_sampler import HierarchicalSampler

__all__ = ['HierarchicalSampler']
