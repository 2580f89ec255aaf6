"""Named sets of benchmark settings (``tools/benchmarks/benchmark.py
--preset NAME``).

A preset is a plain dict in :data:`PRESETS`; its keys are settings of
:data:`DEFAULTS` (the tool's flags with ``-`` as ``_``) plus an optional
``data`` dict, the synthetic data set ``--make-data`` writes (keyword
arguments of :func:`hlss_plugin.synthetic.make_synthetic_srh`).
:func:`resolve_settings` merges, for every setting, in this order of
precedence: a flag given on the command line, the preset, :data:`DEFAULTS`;
it also says where each value came from, which ``--dry-run`` prints.

To change what ``--preset cpu`` does, edit ``PRESETS['cpu']`` (or add a
preset next to it); nothing else needs to change.
"""
import copy
from typing import Any, Dict, Optional, Tuple

__all__ = ['DEFAULTS', 'DEFAULT_DATA', 'PRESETS', 'resolve_settings',
           'resolve_seeds', 'data_spec']

#: The tool's values when neither a flag nor the preset sets them. ``None``
#: for ``budget`` means the flag (or a preset) is required; ``eval_every``
#: None means no learning curves; ``seeds`` is a list of seeds or a count
#: ``N`` (seeds ``0 .. N-1``).
DEFAULTS: Dict[str, Any] = dict(
    backbone='resnet18',
    crop_size=96,
    patients_per_batch=4,
    budget=None,
    k=200,
    workers=2,
    eval_every=None,
    seeds=[0],
)

#: Synthetic data written by ``--make-data`` when the preset has no
#: ``data``: 7 classes x 4 patients x 2 slides x 8 patches of 128 px
#: (about 2/3 of the patients train: the kNN bank; the rest: the queries).
DEFAULT_DATA: Dict[str, Any] = dict(patients_per_class=4, slides=2,
                                    patches=8, size=128, seed=0)

#: Named presets. ``cpu``: meant for 2 CPU cores, one method training in at
#: most ~15 minutes. The values are starting points to calibrate by
#: experiment (time one method with ``--methods hlss`` and adjust
#: ``budget`` first, then ``data`` / ``crop_size``).
PRESETS: Dict[str, Dict[str, Any]] = {
    'cpu': dict(
        backbone='resnet18',
        crop_size=64,
        patients_per_batch=4,
        budget=40,
        k=20,
        workers=1,
        eval_every=10,
        seeds=[0, 1, 2],
        data=dict(patients_per_class=8, slides=2, patches=12, size=128,
                  seed=0),
    ),
}


def _check_keys(name: str, preset: dict) -> None:
    unknown = sorted(set(preset) - set(DEFAULTS) - {'data'})
    if unknown:
        raise ValueError(
            f'preset {name!r} sets unknown key(s) {unknown}; a preset may '
            f'set {sorted(DEFAULTS)} and data. Fix PRESETS[{name!r}] in '
            f'hlss_plugin/benchmark/presets.py.')


def resolve_settings(explicit: Dict[str, Any],
                     preset: Optional[str] = None,
                     presets: Optional[Dict[str, dict]] = None
                     ) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Merge command-line values, a preset and :data:`DEFAULTS`.

    Args:
        explicit (dict): Settings given on the command line (keys of
            :data:`DEFAULTS`; a value of None counts as not given).
        preset (str, optional): A key of ``presets``, or None.
        presets (dict, optional): Defaults to :data:`PRESETS`.

    Returns:
        tuple[dict, dict]: ``(values, sources)``: every key of
        :data:`DEFAULTS` (and ``data`` when the preset has it) with its
        value, and ``'flag'``, ``'preset <name>'`` or ``'default'`` for each.

    Raises:
        ValueError: For an unknown preset or setting; the message lists
            the valid names.

    Example:
        >>> values, sources = resolve_settings(dict(crop_size=32), 'cpu')
        >>> values['crop_size'], sources['crop_size']
        (32, 'flag')
        >>> values['backbone'], sources['backbone']
        ('resnet18', 'preset cpu')
    """
    presets = PRESETS if presets is None else presets
    unknown = sorted(k for k, v in explicit.items()
                     if v is not None and k not in DEFAULTS)
    if unknown:
        raise ValueError(f'unknown setting(s) {unknown}; valid: '
                         f'{sorted(DEFAULTS)}.')
    chosen: Dict[str, Any] = {}
    if preset is not None:
        if preset not in presets:
            raise ValueError(f'unknown preset {preset!r}; valid presets: '
                             f'{", ".join(sorted(presets)) or "none"}.')
        chosen = presets[preset]
        _check_keys(preset, chosen)
    values: Dict[str, Any] = {}
    sources: Dict[str, str] = {}
    for key, default in DEFAULTS.items():
        if explicit.get(key) is not None:
            values[key], sources[key] = explicit[key], 'flag'
        elif key in chosen:
            values[key], sources[key] = chosen[key], f'preset {preset}'
        else:
            values[key], sources[key] = default, 'default'
        values[key] = copy.deepcopy(values[key])
    if 'data' in chosen:
        values['data'] = copy.deepcopy(chosen['data'])
        sources['data'] = f'preset {preset}'
    return values, sources


def resolve_seeds(seeds) -> list:
    """A seed list from a count ``N`` (seeds ``0 .. N-1``) or a list.

    Raises:
        ValueError: For a count < 1, an empty list, a negative or repeated
            seed.

    Example:
        >>> resolve_seeds(3), resolve_seeds([5, 7])
        ([0, 1, 2], [5, 7])
    """
    if isinstance(seeds, bool):
        raise ValueError(f'seeds must be a count >= 1 or a list of seeds, '
                         f'got {seeds!r}.')
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f'the number of seeds must be >= 1 (--seeds N '
                             f'runs seeds 0..N-1), got {seeds}.')
        return list(range(seeds))
    seeds = list(seeds)
    if not seeds:
        raise ValueError('the seed list is empty; give at least one seed '
                         '(e.g. --seed-list 0 1 2).')
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int)
           or s < 0]
    if bad:
        raise ValueError(f'seeds must be integers >= 0, got {bad}.')
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ValueError(f'seed(s) {repeated} given twice; each seed runs '
                         f'once.')
    return seeds


def data_spec(values: Dict[str, Any]) -> Dict[str, Any]:
    """Keyword arguments of ``make_synthetic_srh`` for ``--make-data``: the
    preset's ``data`` over :data:`DEFAULT_DATA`.

    Example:
        >>> data_spec(dict(data=dict(patches=4)))['patches']
        4
    """
    spec = dict(DEFAULT_DATA)
    spec.update(values.get('data') or {})
    return spec
