"""Small helpers shared across hlss_plugin."""
from . import dist
from .paths import resolve_under_root

__all__ = ['dist', 'resolve_under_root']
