"""Necks registered into ``mmpretrain.registry.MODELS``."""
from .identity_neck import IdentityNeck

__all__ = ['IdentityNeck']
