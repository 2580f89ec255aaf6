"""Synthetic SRH data in the OpenSRH layout, with known ground truth."""
from .generator import (ATTRIBUTES_FILE, GENERATOR_VERSION, META_FILE,
                        SPLIT_FILE, make_synthetic_srh)
from .morphology import (ATTRIBUTE_NAMES, ATTRIBUTES, CLASS_PROFILES,
                         OPENSRH_CLASSES, as_dict, as_vector, class_profile,
                         perturb)
from .render import CH2, CH3, render_srh_patch

__all__ = [
    'make_synthetic_srh', 'render_srh_patch', 'ATTRIBUTES', 'ATTRIBUTE_NAMES',
    'CLASS_PROFILES', 'OPENSRH_CLASSES', 'as_dict', 'as_vector',
    'class_profile', 'perturb', 'CH2', 'CH3', 'META_FILE', 'SPLIT_FILE',
    'ATTRIBUTES_FILE', 'GENERATOR_VERSION'
]
