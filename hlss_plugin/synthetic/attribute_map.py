"""Ground truth for explanations: generator attributes → SRH text attributes.

The synthetic generator (:mod:`hlss_plugin.synthetic.morphology`) draws every
patch from twelve numbers (cellularity, nuclear size, ...). The HLSS heads
score images against the named attributes of
``hlss_plugin/text/srh_attributes.json``. :data:`ATTRIBUTE_MAP` says, per
hierarchy level, which text attributes describe a generator attribute that
is clearly *high* or clearly *low*; :func:`ground_truth_sets` turns the
generator values of a set of items into the text attributes that should be
among the top-ranked ones.

Mapping choices (only morphology the renderer actually draws, and only text
attributes that name that morphology):

- Diagnoses, grades and behaviour (``'meningioma'``, ``'WHO grade 4'``...)
  are never ground truth: one generator value does not imply a diagnosis.
- A low value maps only where the text names the absence itself (``'low
  cell density'``, ``'small nuclei'``, ``'scant cytoplasm'``, ``'loss of
  myelin background'``, ``'bland cytology'``...); low elongation, alignment,
  necrosis... are the unremarkable default and map to nothing.
- ``signal`` (acquisition brightness) is not morphology and is unmapped
  (:data:`UNMAPPED`).
- ``nuclear_size`` and ``cytoplasm`` have no slide- or patient-level text
  attribute; ``elongation`` and ``alignment`` both map to ``'spindle-cell
  fascicles'`` at slide level (fascicles are aligned spindle cells).

Thresholds (:func:`ground_truth_sets`): a generator value is *clearly high*
when its z-score over the evaluated items of the same level (all classes of
the split together) exceeds ``threshold`` (0.5 by default), *clearly low*
when it is below ``-threshold``. Class differences therefore dominate; an
attribute that does not vary over the items (standard deviation 0) is
never ground truth.
"""
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from .morphology import ATTRIBUTE_NAMES

#: Generator attributes that are not morphology (never ground truth).
UNMAPPED = ('signal', )

#: Default z-score threshold of :func:`ground_truth_sets`.
DEFAULT_THRESHOLD = 0.5

_H, _L = 'high', 'low'

#: ``{level: {generator attribute: {'high': names, 'low': names}}}``; names
#: are attributes of that level in ``srh_attributes.json``.
ATTRIBUTE_MAP: Dict[str, Dict[str, Dict[str, Tuple[str, ...]]]] = {
    'patch': {
        'cellularity': {_H: ('high cell density', ),
                        _L: ('low cell density', )},
        'nuclear_size': {_H: ('enlarged nuclei', ), _L: ('small nuclei', )},
        'pleomorphism': {_H: ('nuclear pleomorphism',
                              'irregular nuclear contours'),
                         _L: ('monotonous round nuclei', )},
        'elongation': {_H: ('spindle-shaped nuclei', ), _L: ()},
        'alignment': {_H: ('aligned nuclei', ), _L: ()},
        'fibres': {_H: ('myelinated axons', 'lipid-rich neuropil'), _L: ()},
        'necrosis': {_H: ('acellular necrotic material', 'nuclear debris'),
                     _L: ()},
        'vascularity': {_H: ('capillary segment', ), _L: ()},
        'clustering': {_H: ('cohesive epithelioid cluster',
                            'epithelioid cells'), _L: ()},
        'whorls': {_H: ('concentric cell wrapping', ), _L: ()},
        'cytoplasm': {_H: ('abundant cytoplasm', ),
                      _L: ('scant cytoplasm', )},
    },
    'slide': {
        'cellularity': {_H: ('solid sheets', ), _L: ()},
        'elongation': {_H: ('spindle-cell fascicles', ), _L: ()},
        'alignment': {_H: ('spindle-cell fascicles', ), _L: ()},
        'fibres': {_H: ('white matter tracts', ),
                   _L: ('loss of myelin background', )},
        'necrosis': {_H: ('geographic necrosis',
                          'pseudopalisading necrosis'), _L: ()},
        'vascularity': {_H: ('high vascularity',
                             'microvascular proliferation'), _L: ()},
        'clustering': {_H: ('cohesive epithelioid nests', ), _L: ()},
        'whorls': {_H: ('whorled architecture', ), _L: ()},
    },
    'patient': {
        'cellularity': {_H: ('high overall cellularity', ),
                        _L: ('low overall cellularity', )},
        'pleomorphism': {_H: ('marked overall atypia', ),
                         _L: ('bland cytology', )},
        'fibres': {_H: ('myelin-rich specimens', ), _L: ()},
        'necrosis': {_H: ('necrosis-prone tumour', ), _L: ()},
        'vascularity': {_H: ('hypervascular tumour', ), _L: ()},
        'clustering': {_H: ('epithelial differentiation', ), _L: ()},
        'whorls': {_H: ('meningothelial differentiation', ), _L: ()},
    },
}  # yapf: disable


def mapped_names(level: str) -> List[str]:
    """Every text attribute that can be ground truth at ``level``.

    Args:
        level (str): ``'patch'``, ``'slide'`` or ``'patient'``.

    Returns:
        list[str]: Distinct names in mapping order.

    Example:
        >>> 'high cell density' in mapped_names('patch')
        True
    """
    _check_level(level)
    names: List[str] = []
    for directions in ATTRIBUTE_MAP[level].values():
        for group in directions.values():
            names.extend(n for n in group if n not in names)
    return names


def ground_truth_sets(values: Sequence[Mapping[str, float]],
                      level: str,
                      threshold: float = DEFAULT_THRESHOLD
                      ) -> List[List[str]]:
    """Text attributes each item should show, from its generator values.

    For each generator attribute the values of all ``values`` items are
    z-scored (population standard deviation); an item whose z-score is
    above ``threshold`` gets the attribute's ``'high'`` names, below
    ``-threshold`` its ``'low'`` names.

    Args:
        values (Sequence[Mapping[str, float]]): One ``{attribute: value}``
            per item of this level (``meta/synthetic_attributes.json``
            entries), e.g. every slide of the split.
        level (str): ``'patch'``, ``'slide'`` or ``'patient'``.
        threshold (float): z-score threshold, > 0. Defaults to 0.5.

    Returns:
        list[list[str]]: Per item, the ground-truth text attributes in
        mapping order (possibly empty).

    Raises:
        ValueError: On an unknown level, a threshold <= 0 or an item that
            lacks a mapped attribute.

    Example:
        >>> items = [dict(cellularity=0.9), dict(cellularity=0.1)]
        >>> ground_truth_sets(items, 'patient')
        [['high overall cellularity'], ['low overall cellularity']]
    """
    _check_level(level)
    if not threshold > 0:
        raise ValueError(f'ground_truth_sets: threshold must be > 0 (a '
                         f'z-score, e.g. 0.5), got {threshold!r}.')
    sets: List[List[str]] = [[] for _ in values]
    if not values:
        return sets
    for attr, directions in ATTRIBUTE_MAP[level].items():
        missing = [i for i, v in enumerate(values) if attr not in v]
        if missing:
            raise ValueError(f'ground_truth_sets: item {missing[0]} has no '
                             f'generator attribute {attr!r} (it has '
                             f'{sorted(values[missing[0]])}); pass the '
                             f'"attributes" entries of '
                             f'meta/synthetic_attributes.json.')
        column = np.array([float(v[attr]) for v in values])
        std = column.std()
        if std == 0:
            continue
        z = (column - column.mean()) / std
        for i, score in enumerate(z):
            if score > threshold:
                group = directions[_H]
            elif score < -threshold:
                group = directions[_L]
            else:
                continue
            sets[i].extend(n for n in group if n not in sets[i])
    return sets


def _check_level(level: str) -> None:
    if level not in ATTRIBUTE_MAP:
        raise ValueError(f'unknown level {level!r}; the attribute map has '
                         f'{list(ATTRIBUTE_MAP)}.')


def _check_map() -> None:
    """Import-time sanity check of the table's own structure."""
    for level, table in ATTRIBUTE_MAP.items():
        for attr, directions in table.items():
            if attr not in ATTRIBUTE_NAMES or attr in UNMAPPED:
                raise ValueError(f'ATTRIBUTE_MAP[{level!r}] maps {attr!r}, '
                                 f'which is not a morphology attribute of '
                                 f'the generator.')
            if set(directions) != {_H, _L}:
                raise ValueError(f'ATTRIBUTE_MAP[{level!r}][{attr!r}] needs '
                                 f'exactly the keys "high" and "low".')


_check_map()
