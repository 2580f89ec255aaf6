"""Hierarchical datasets, samplers and transforms."""
from .base_hierarchical_dataset import BaseHierarchicalDataset
from .hierarchical_knn_dataset import HierarchicalKNNDataset
from .hierarchical_manifest_dataset import HierarchicalManifestDataset
from .hierarchy import Hierarchy
from .opensrh_dataset import OpenSRHDataset
from .samplers import HierarchicalSampler
from .tcga_dataset import TCGADataset
from .transforms import (CenterCropTensor, LoadH5Patch, LoadPatchImage,
                         LoadSRHPatch, SRHThirdChannel)

__all__ = [
    'BaseHierarchicalDataset', 'CenterCropTensor', 'HierarchicalKNNDataset',
    'HierarchicalManifestDataset', 'Hierarchy',
    'OpenSRHDataset', 'HierarchicalSampler', 'TCGADataset', 'LoadH5Patch',
    'LoadPatchImage', 'LoadSRHPatch', 'SRHThirdChannel'
]
