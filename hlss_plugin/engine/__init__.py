"""Runner-side pieces: hooks and checkpoint helpers."""
from .hooks import PlainCheckpointHook
from .plain_state import PLAIN_TAG, from_plain, to_plain

__all__ = ['PlainCheckpointHook', 'PLAIN_TAG', 'from_plain', 'to_plain']
