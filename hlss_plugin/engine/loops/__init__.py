"""Loops registered into ``mmpretrain.registry.LOOPS``."""
from .embedding_test_loop import EmbeddingTestLoop
from .embedding_val_loop import EmbeddingValLoop

__all__ = ['EmbeddingValLoop', 'EmbeddingTestLoop']
