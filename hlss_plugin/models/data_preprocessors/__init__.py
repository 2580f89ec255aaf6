"""Data preprocessors registered into ``mmpretrain.registry.MODELS``."""
from .srh_batch_augment_preprocessor import SRHBatchAugmentPreprocessor

__all__ = ['SRHBatchAugmentPreprocessor']
