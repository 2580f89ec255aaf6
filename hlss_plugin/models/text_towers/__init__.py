"""Frozen text towers registered into ``mmpretrain.registry.MODELS``."""
from .base_text_tower import BaseTextTower
from .hf_clip_text_tower import HFCLIPTextTower
from .hf_sentence_text_tower import HFSentenceTextTower
from .precomputed_text_tower import PrecomputedTextTower

__all__ = [
    'BaseTextTower', 'HFCLIPTextTower', 'HFSentenceTextTower',
    'PrecomputedTextTower'
]
