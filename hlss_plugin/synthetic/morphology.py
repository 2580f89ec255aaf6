"""Morphological attributes of synthetic SRH tissue and their hierarchy.

Every synthetic patch is described by :data:`ATTRIBUTE_NAMES`, twelve numbers
in ``[0, 1]`` that a neuropathologist would name when telling the seven
OpenSRH classes apart (cellularity, nuclear size, atypia, fibres, necrosis,
vessels, clusters, whorls ...). Each class has a mean profile
(:data:`CLASS_PROFILES`); values are then sampled down the data hierarchy:

1. a patient draws its own profile around its class profile,
2. each slide of the patient perturbs the patient profile (including the
   slide-wide ``signal`` of the acquisition, which varies mostly here),
3. each patch of the slide perturbs the slide profile a little more.

Perturbations are Gaussian in logit space, so values stay inside ``(0, 1)``
and move less near the ends than in the middle. All sampled values are
rounded to 4 decimals, so the values written to the ground-truth file are
exactly the values the renderer used.
"""
from typing import Dict, Mapping

import numpy as np

#: The seven OpenSRH diagnostic classes, in OpenSRH order.
OPENSRH_CLASSES = ('hgg', 'lgg', 'mening', 'metast', 'normal', 'pitui',
                   'schwan')

#: Attribute name -> one-line description (what the renderer draws).
ATTRIBUTES: Dict[str, str] = {
    'cellularity':
    'nuclei per unit area: sparse glia in normal brain, dense sheets in '
    'high-grade glioma and pituitary adenoma',
    'nuclear_size':
    'mean nuclear radius (about 3 px at 0 to 8 px at 1)',
    'pleomorphism':
    'spread of nuclear size, shape and chromatin brightness (atypia)',
    'elongation':
    'nuclear aspect ratio: round (0) to spindle-shaped (1)',
    'alignment':
    'coherence of nuclear and fibre orientation (fascicles at 1, random '
    'at 0)',
    'fibres':
    'density of lipid-rich myelinated axons: thin bright streaks and a '
    'brighter background in CH2',
    'necrosis':
    'area fraction of acellular, low-texture necrosis sprinkled with '
    'nuclear debris',
    'vascularity':
    'vessel density and wall thickness (microvascular proliferation at 1)',
    'clustering':
    'fraction of cells in cohesive epithelioid clusters (metastatic '
    'carcinoma)',
    'whorls':
    'fraction of cells wrapped in concentric whorls (meningioma)',
    'cytoplasm':
    'amount of protein-rich cytoplasm around nuclei, bright in CH3',
    'signal':
    'acquisition brightness and contrast (laser power, focus); varies '
    'mostly between slides, not between classes',
}

#: Attribute names in the order used by the profile vectors.
ATTRIBUTE_NAMES = tuple(ATTRIBUTES)

_PROFILE_ROWS = {
    # cellularity, nuclear_size, pleomorphism, elongation, alignment,
    # fibres, necrosis, vascularity, clustering, whorls, cytoplasm, signal
    'hgg':    (.78, .65, .85, .35, .20, .12, .50, .72, .08, .03, .35, .50),
    'lgg':    (.45, .45, .35, .35, .30, .45, .03, .20, .04, .03, .22, .50),
    'mening': (.62, .50, .22, .55, .45, .05, .04, .30, .15, .80, .55, .50),
    'metast': (.70, .72, .65, .10, .10, .05, .30, .35, .85, .03, .75, .50),
    'normal': (.15, .30, .10, .25, .55, .88, .02, .15, .03, .02, .15, .50),
    'pitui':  (.88, .40, .08, .05, .05, .03, .03, .35, .25, .02, .60, .50),
    'schwan': (.55, .45, .25, .90, .85, .08, .03, .35, .03, .10, .40, .50),
}  # yapf: disable

#: Class name -> mean attribute profile, shape ``(len(ATTRIBUTE_NAMES),)``
#: (read-only; :func:`class_profile` returns a writable copy).
CLASS_PROFILES: Dict[str, np.ndarray] = {}
for _name, _row in _PROFILE_ROWS.items():
    CLASS_PROFILES[_name] = np.asarray(_row, dtype=np.float64)
    CLASS_PROFILES[_name].flags.writeable = False

LEVELS = ('patient', 'slide', 'patch')

# Standard deviation of the logit-space perturbation at each level. The
# acquisition ``signal`` barely depends on the patient and mostly on the slide.
_LOGIT_SD = {
    'patient': np.full(len(ATTRIBUTE_NAMES), 0.40),
    'slide': np.full(len(ATTRIBUTE_NAMES), 0.25),
    'patch': np.full(len(ATTRIBUTE_NAMES), 0.12),
}
_SIGNAL = ATTRIBUTE_NAMES.index('signal')
_LOGIT_SD['patient'][_SIGNAL] = 0.15
_LOGIT_SD['slide'][_SIGNAL] = 0.60
_LOGIT_SD['patch'][_SIGNAL] = 0.05

_EPS = 1e-4


def class_profile(class_name: str) -> np.ndarray:
    """Mean attribute profile of an OpenSRH class.

    Args:
        class_name (str): One of :data:`OPENSRH_CLASSES`.

    Returns:
        np.ndarray: ``(len(ATTRIBUTE_NAMES),)`` float64 values in ``(0, 1)``
        (a copy, safe to modify).

    Raises:
        ValueError: If the class is unknown.

    Example:
        >>> p = as_dict(class_profile('normal'))
        >>> p['fibres'], p['cellularity']
        (0.88, 0.15)
    """
    if class_name not in CLASS_PROFILES:
        raise ValueError(f'unknown class {class_name!r}; synthetic SRH knows '
                         f'{list(OPENSRH_CLASSES)}.')
    return CLASS_PROFILES[class_name].copy()


def perturb(values: np.ndarray, level: str,
            rng: np.random.Generator) -> np.ndarray:
    """Sample the profile of the next hierarchy level around ``values``.

    Args:
        values (np.ndarray): ``(len(ATTRIBUTE_NAMES),)`` parent profile in
            ``[0, 1]`` (the class profile for ``level='patient'``, the
            patient's for ``'slide'``, the slide's for ``'patch'``).
        level (str): ``'patient'``, ``'slide'`` or ``'patch'``; sets how far
            the child may move from its parent.
        rng (np.random.Generator): Source of randomness.

    Returns:
        np.ndarray: ``(len(ATTRIBUTE_NAMES),)`` float64 child profile in
        ``(0, 1)``, rounded to 4 decimals.

    Raises:
        ValueError: If ``level`` is unknown or ``values`` has the wrong shape.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> patient = perturb(class_profile('hgg'), 'patient', rng)
        >>> slide = perturb(patient, 'slide', rng)
        >>> slide.shape, bool(((slide > 0) & (slide < 1)).all())
        ((12,), True)
    """
    if level not in _LOGIT_SD:
        raise ValueError(f'level={level!r} is not one of {LEVELS}.')
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(ATTRIBUTE_NAMES), ):
        raise ValueError(f'expected a profile of shape '
                         f'({len(ATTRIBUTE_NAMES)},) ordered like '
                         f'ATTRIBUTE_NAMES, got shape {values.shape}.')
    clipped = np.clip(values, _EPS, 1 - _EPS)
    logit = np.log(clipped / (1 - clipped))
    logit = logit + _LOGIT_SD[level] * rng.standard_normal(logit.shape)
    child = 1.0 / (1.0 + np.exp(-logit))
    return np.clip(np.round(child, 4), _EPS, 1 - _EPS)


def as_dict(values: np.ndarray) -> Dict[str, float]:
    """Name a profile vector: ``{attribute: value rounded to 4 decimals}``.

    Args:
        values (np.ndarray): ``(len(ATTRIBUTE_NAMES),)`` profile.

    Returns:
        dict[str, float]: Attribute name to value, in
        :data:`ATTRIBUTE_NAMES` order.

    Example:
        >>> as_dict(class_profile('pitui'))['cellularity']
        0.88
    """
    return {
        name: round(float(v), 4)
        for name, v in zip(ATTRIBUTE_NAMES,
                           np.asarray(values).tolist())
    }


def as_vector(attributes: Mapping[str, float]) -> np.ndarray:
    """Inverse of :func:`as_dict`, with validation.

    Args:
        attributes (Mapping[str, float]): A value in ``[0, 1]`` for every
            name of :data:`ATTRIBUTE_NAMES` (extra keys are rejected).

    Returns:
        np.ndarray: ``(len(ATTRIBUTE_NAMES),)`` float64 profile.

    Raises:
        ValueError: If a name is missing or unknown or a value lies outside
            ``[0, 1]``.

    Example:
        >>> v = as_vector(as_dict(class_profile('lgg')))
        >>> bool(np.allclose(v, class_profile('lgg')))
        True
    """
    missing = [n for n in ATTRIBUTE_NAMES if n not in attributes]
    extra = [n for n in attributes if n not in ATTRIBUTES]
    if missing or extra:
        raise ValueError(f'attributes must have exactly the keys '
                         f'{list(ATTRIBUTE_NAMES)}; missing {missing}, '
                         f'unknown {extra}. Build them with as_dict().')
    vec = np.array([float(attributes[n]) for n in ATTRIBUTE_NAMES])
    bad = [n for n, v in zip(ATTRIBUTE_NAMES, vec) if not 0.0 <= v <= 1.0]
    if bad:
        out_of_range = {n: attributes[n] for n in bad}
        raise ValueError(f'attribute values must lie in [0, 1]; out of range: '
                         f'{out_of_range}.')
    return vec
