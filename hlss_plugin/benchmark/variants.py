"""Method variants for ablations in ``tools/benchmarks/benchmark.py``.

A variant is a base method (a key of
:data:`hlss_plugin.benchmark.methods.METHOD_CONFIGS`) plus
options that change its HLSS level heads (every
``HierarchicalTextAlignedHead`` under ``model``: HLSS and the
``*_hlss`` wrappers). Two spellings, parsed by :func:`parse_method`:

* options: ``<base>:<option>=<value>[,<option>=<value>...]``, e.g.
  ``hlss:ha=off``, ``simclr_hlss:bridge=mlp,ha_weight=0.5``;
* named: ``<base>_<suffix>`` with a suffix of :data:`NAMED_SUFFIXES`
  (``hlss_no_ha``, ``hlss_mlp_bridge``, ``hlss_ha_published``,
  ``hlss_frozen_rows``, ``hlss_no_hvc``, ``hlss_centred``) or
  ``<base>_ha_w<x>`` (HA loss weight ``x``, e.g. ``hlss_ha_w0.5``).

Options (:data:`OPTIONS`):

=============  ==============================================================
``ha``         ``off``: no HA loss; ``published``: the detached published HA
               (``hlss_ha_published`` of
               ``_base_/models/hlss_level_heads.py``); ``trained``:
               ``hlss_ha_trained`` (the shipped default)
``hvc``        ``off``: no HVC loss; ``on``: ``hlss_hvc``
``ha_weight``  a number > 0: ``loss_weight`` of every HA loss
``bridge``     ``mlp``: ``bridge_hidden`` = :data:`MLP_BRIDGE_HIDDEN`;
               an int: that hidden size; ``linear``: ``bridge_hidden=None``
``rows``       ``frozen``: ``trainable=False`` (text rows fixed);
               ``trainable``: ``trainable=True``
``center``     ``on`` / ``off``: ``center_text`` of every head (the
               attribute embeddings centred before normalising, or not)
=============  ==============================================================

:func:`apply_variant` applies them to a loaded config and returns
``{config key: (old, new)}`` like the other benchmark overrides.
"""
import copy
import math
import re
from typing import Any, Dict, Iterable, List, NamedTuple, Tuple

from mmengine.config import Config

from ..utils.config import walk_config

__all__ = ['OPTIONS', 'NAMED_SUFFIXES', 'MLP_BRIDGE_HIDDEN', 'HEAD_TYPE',
           'MethodSpec', 'parse_method', 'apply_variant', 'find_heads']

Changes = Dict[str, Tuple[Any, Any]]

#: The head type whose settings variants change.
HEAD_TYPE = 'HierarchicalTextAlignedHead'
#: Hidden size of ``bridge=mlp`` (Linear-BN-ReLU-Linear).
MLP_BRIDGE_HIDDEN = 2048
#: Option -> its allowed words (``ha_weight`` takes a number, ``bridge`` an
#: int too).
OPTIONS: Dict[str, Tuple[str, ...]] = {
    'ha': ('off', 'published', 'trained'),
    'hvc': ('off', 'on'),
    'ha_weight': ('<number > 0>', ),
    'bridge': ('mlp', 'linear', '<hidden size>'),
    'rows': ('frozen', 'trainable'),
    'center': ('on', 'off'),
}
#: Named variant suffix -> its options.
NAMED_SUFFIXES: Dict[str, Dict[str, str]] = {
    'no_ha': dict(ha='off'),
    'no_hvc': dict(hvc='off'),
    'mlp_bridge': dict(bridge='mlp'),
    'ha_published': dict(ha='published'),
    'frozen_rows': dict(rows='frozen'),
    'centred': dict(center='on'),
}
_WEIGHT_SUFFIX = re.compile(r'^ha_w(?P<w>\d+(?:\.\d+)?)$')
#: Top-level config variables (from hlss_level_heads.py) the loss options
#: copy.
_LOSS_VARIABLES = dict(ha=dict(published='hlss_ha_published',
                               trained='hlss_ha_trained'),
                       hvc=dict(on='hlss_hvc'))


class MethodSpec(NamedTuple):
    """A parsed ``--methods`` entry.

    Attributes:
        name (str): As given on the command line.
        base (str): The base method.
        options (tuple): Sorted ``(option, value)`` pairs (empty for a plain
            method).
    """
    name: str
    base: str
    options: Tuple[Tuple[str, str], ...] = ()

    @property
    def key(self) -> Tuple[str, Tuple[Tuple[str, str], ...]]:
        """What makes two specs the same run (``hlss_no_ha`` ==
        ``hlss:ha=off``)."""
        return self.base, self.options

    @property
    def dir_name(self) -> str:
        """A folder name: ``name`` with anything but ``[A-Za-z0-9_.-]`` as
        ``_`` (``hlss:ha=off`` -> ``hlss_ha_off``)."""
        return re.sub(r'[^A-Za-z0-9_.-]+', '_', self.name).strip('_')


def _check_option(method: str, option: str, value: str) -> str:
    """The normalised value of one option, or a ValueError."""
    if option not in OPTIONS:
        valid = ', '.join(f'{k}={"|".join(v)}' for k, v in OPTIONS.items())
        raise ValueError(f'method {method}: unknown variant option '
                         f'{option!r}; options: {valid}.')
    if option == 'ha_weight':
        try:
            weight = float(value)
        except ValueError:
            weight = math.nan
        if not math.isfinite(weight) or weight <= 0:
            raise ValueError(f'method {method}: ha_weight must be a number '
                             f'> 0, got {value!r}.')
        return repr(weight)
    if option == 'bridge' and value.isdigit():
        if int(value) < 1:
            raise ValueError(f'method {method}: bridge hidden size must be '
                             f'>= 1, got {value!r}.')
        return str(int(value))
    if value not in OPTIONS[option]:
        raise ValueError(f'method {method}: {option}={value!r} is not '
                         f'allowed; use {" | ".join(OPTIONS[option])}.')
    return value


def parse_method(name: str, bases: Iterable[str]) -> MethodSpec:
    """Parse a ``--methods`` entry into its base method and options.

    Args:
        name (str): ``<base>``, ``<base>:<opt>=<val>[,...]`` or a named
            variant ``<base>_<suffix>`` (see the module docstring).
        bases (Iterable[str]): Valid base method names.

    Returns:
        MethodSpec: The parsed entry.

    Raises:
        ValueError: For an unknown base, option or value, an option given
            twice, or options that leave the heads without a loss; the
            message lists what is valid.

    Example:
        >>> parse_method('hlss_no_ha', ['hlss', 'simclr']).options
        (('ha', 'off'),)
        >>> parse_method('hlss:bridge=mlp,ha_weight=2', ['hlss']).options
        (('bridge', 'mlp'), ('ha_weight', '2.0'))
    """
    bases = list(bases)
    if not isinstance(name, str) or not name:
        raise ValueError(f'a method name must be a non-empty string, got '
                         f'{name!r}.')
    options: Dict[str, str] = {}
    if ':' in name:
        base, _, text = name.partition(':')
        if base not in bases:
            raise ValueError(f'method {name}: unknown base method {base!r}; '
                             f'valid bases: {", ".join(bases)}.')
        for item in text.split(','):
            option, eq, value = item.partition('=')
            option, value = option.strip(), value.strip()
            if not eq or not option or not value:
                raise ValueError(
                    f'method {name}: {item!r} is not <option>=<value>; write '
                    f'e.g. {base}:ha=off or {base}:bridge=mlp,ha_weight=0.5.')
            if option in options:
                raise ValueError(f'method {name}: option {option!r} given '
                                 f'twice.')
            options[option] = _check_option(name, option, value)
    elif name in bases:
        base = name
    else:
        base = None
        for candidate in sorted(bases, key=len, reverse=True):
            if not name.startswith(candidate + '_'):
                continue
            suffix = name[len(candidate) + 1:]
            match = _WEIGHT_SUFFIX.match(suffix)
            if suffix in NAMED_SUFFIXES:
                base, options = candidate, dict(NAMED_SUFFIXES[suffix])
            elif match:
                base = candidate
                weight = _check_option(name, 'ha_weight', match['w'])
                options = dict(ha_weight=weight)
            if base is not None:
                break
        if base is None:
            suffixes = ', '.join([*NAMED_SUFFIXES, 'ha_w<x>'])
            raise ValueError(
                f'unknown method {name!r}: not a base method '
                f'({", ".join(bases)}), a named variant <base>_<suffix> '
                f'(suffixes: {suffixes}) or <base>:<option>=<value>.')
    if options.get('ha') == 'off' and options.get('hvc') == 'off':
        raise ValueError(f'method {name}: ha=off and hvc=off leave the heads '
                         f'without a loss; keep one of them.')
    if options.get('ha') == 'off' and 'ha_weight' in options:
        raise ValueError(f'method {name}: ha_weight has no effect with '
                         f'ha=off; drop one of them.')
    return MethodSpec(name, base, tuple(sorted(options.items())))


def find_heads(cfg: Config) -> List[Tuple[dict, str]]:
    """Every :data:`HEAD_TYPE` config under ``cfg.model`` with its key path.

    Example:
        >>> cfg = Config(dict(model=dict(heads=dict(patch=dict(
        ...     type='HierarchicalTextAlignedHead')))))
        >>> [path for _, path in find_heads(cfg)]
        ['model.heads.patch']
    """
    model = cfg.get('model', None)
    if not isinstance(model, dict):
        return []
    return [(container[key], path)
            for container, key, path in walk_config(model, 'model')
            if isinstance(container[key], dict)
            and container[key].get('type') == HEAD_TYPE]


def _loss_config(cfg: Config, option: str, value: str) -> dict:
    variable = _LOSS_VARIABLES[option][value]
    loss = cfg.get(variable, None)
    if not isinstance(loss, dict):
        raise ValueError(
            f'config {cfg.filename or ""}: {option}={value} copies the '
            f'top-level variable {variable!r} of _base_/models/'
            f'hlss_level_heads.py, which this config does not have; add that '
            f'file to its _base_ list.')
    return copy.deepcopy(loss.to_dict() if hasattr(loss, 'to_dict')
                         else dict(loss))


def apply_variant(cfg: Config,
                  options: Iterable[Tuple[str, str]]) -> Changes:
    """Apply variant options to every HLSS level head of ``cfg``.

    ``ha`` and ``hvc`` are applied before ``ha_weight``, so
    ``ha=published,ha_weight=0.5`` weighs the published HA.

    Args:
        cfg (Config): The loaded method config, changed in place.
        options (Iterable[tuple[str, str]]): ``MethodSpec.options``.

    Returns:
        dict: ``{key: (old, new)}``, e.g.
        ``{'model.heads.patch.ha_loss': ({...}, None), ...}``.

    Raises:
        ValueError: When the config has no HLSS heads (the method is not
            HLSS or a ``*_hlss`` wrapper), a loss variable is missing, or
            ``ha_weight`` meets a head without an HA loss.

    Example:
        >>> cfg = Config(dict(model=dict(heads=dict(patch=dict(
        ...     type='HierarchicalTextAlignedHead', trainable=True)))))
        >>> apply_variant(cfg, [('rows', 'frozen')])
        {'model.heads.patch.trainable': (True, False)}
    """
    options = dict(options)
    if not options:
        return {}
    heads = find_heads(cfg)
    if not heads:
        raise ValueError(
            f'config {cfg.filename or ""}: variant options '
            f'{", ".join(f"{k}={v}" for k, v in options.items())} change '
            f'HLSS level heads ({HEAD_TYPE}), and this method has none; use '
            f'them with hlss or a *_hlss method.')
    changes: Changes = {}

    def put(head: dict, path: str, key: str, value: Any) -> None:
        old = head.get(key, None)
        if old != value:
            changes[f'{path}.{key}'] = (copy.deepcopy(old), value)
            head[key] = value

    for head, path in heads:
        for option in ('ha', 'hvc'):
            value = options.get(option)
            if value is None:
                continue
            loss = (None if value == 'off' else
                    _loss_config(cfg, option, value))
            put(head, path, f'{option}_loss', loss)
        if 'ha_weight' in options:
            ha = head.get('ha_loss', None)
            if not isinstance(ha, dict):
                raise ValueError(
                    f'config {cfg.filename or ""}: {path} has no ha_loss '
                    f'config, so ha_weight cannot be set; give ha=trained '
                    f'or ha=published with it.')
            ha = copy.deepcopy(ha.to_dict() if hasattr(ha, 'to_dict')
                               else dict(ha))
            ha['loss_weight'] = float(options['ha_weight'])
            put(head, path, 'ha_loss', ha)
        if 'bridge' in options:
            value = options['bridge']
            hidden = (MLP_BRIDGE_HIDDEN if value == 'mlp' else
                      None if value == 'linear' else int(value))
            put(head, path, 'bridge_hidden', hidden)
        if 'rows' in options:
            put(head, path, 'trainable', options['rows'] == 'trainable')
        if 'center' in options:
            put(head, path, 'center_text', options['center'] == 'on')
        # a missing key keeps the head's default loss; None drops it
        if all(key in head and head[key] is None
               for key in ('hvc_loss', 'ha_loss')):
            raise ValueError(f'config {cfg.filename or ""}: {path} is left '
                             f'without hvc_loss and ha_loss; keep one.')
    return changes
