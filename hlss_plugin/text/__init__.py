"""Language side of HLSS: histology attribute lists per hierarchy level."""
from .attributes import (ATTRIBUTE_LEVELS, SHIPPED_ATTRIBUTE_FILES,
                         attribute_file_path, load_attributes,
                         validate_attributes)

__all__ = [
    'ATTRIBUTE_LEVELS', 'SHIPPED_ATTRIBUTE_FILES', 'attribute_file_path',
    'load_attributes', 'validate_attributes'
]
