"""Small helpers shared across hlss_plugin."""
from . import dist
from .checkpoint import read_state_dict
from .paths import resolve_under_root

__all__ = ['dist', 'read_state_dict', 'resolve_under_root']
