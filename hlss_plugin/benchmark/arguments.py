"""The benchmark's settings: flags, preset and defaults resolved into one
namespace."""
import argparse
import os.path as osp

from .methods import BACKBONES
from .presets import resolve_seeds, resolve_settings

__all__ = ['DATA_DIR_NAME', 'SETTING_FLAGS', 'resolve_args']

#: Settings resolved from flags, the preset and the defaults.
SETTING_FLAGS = ('backbone', 'crop_size', 'patients_per_batch', 'budget',
                 'k', 'workers', 'eval_every', 'seeds')
#: Where --make-data writes when --data-root is not given.
DATA_DIR_NAME = 'synthetic_srh'


def resolve_args(parser: argparse.ArgumentParser,
                 args: argparse.Namespace) -> argparse.Namespace:
    """Resolve the settings of :data:`SETTING_FLAGS` in ``args`` (in place).

    Each comes from its flag, else the ``--preset``, else the defaults
    (:func:`~hlss_plugin.benchmark.presets.resolve_settings`);
    ``args.sources`` says where each came from and ``args.seeds`` becomes
    the list of seeds (from ``--seeds N``, ``--seed-list`` or ``--seed``).
    ``work_dir`` and ``data_root`` become absolute (``data_root`` defaults
    to ``WORK_DIR/synthetic_srh`` with ``--make-data``).

    Args:
        parser (argparse.ArgumentParser): The tool's parser (for its
            errors, which exit with status 2).
        args (argparse.Namespace): ``parser.parse_args()``'s result.

    Returns:
        argparse.Namespace: ``args``.

    Example:
        >>> args = resolve_args(parser, parser.parse_args(
        ...     ['--methods', 'random', '--work-dir', 'w', '--budget', '1',
        ...      '--make-data']))  # doctest: +SKIP
        >>> args.sources['budget']  # doctest: +SKIP
        'flag'
    """
    seeds_given = (args.seed_list if args.seed_list is not None else
                   [args.seed] if args.seed is not None else args.seeds)
    explicit = {name: getattr(args, name) for name in SETTING_FLAGS
                if name != 'seeds'}
    explicit['seeds'] = seeds_given
    try:
        values, sources = resolve_settings(explicit, args.preset)
        values['seeds'] = resolve_seeds(values['seeds'])
    except ValueError as err:
        parser.error(str(err))
    for name, value in values.items():
        setattr(args, name, value)
    args.sources = sources
    if args.budget is None:
        parser.error('--budget is required (or a --preset that sets it).')
    for name in ('budget', 'crop_size', 'patients_per_batch', 'k'):
        value = getattr(args, name)
        if not isinstance(value, int) or value < 1:
            parser.error(f'--{name.replace("_", "-")} must be an int >= 1, '
                         f'got {value!r} ({sources[name]}).')
    if args.backbone not in BACKBONES:
        parser.error(f'--backbone must be one of {sorted(BACKBONES)}, got '
                     f'{args.backbone!r} ({sources["backbone"]}).')
    if not isinstance(args.workers, int) or args.workers < 0:
        parser.error(f'--workers must be >= 0, got {args.workers!r}.')
    if args.eval_every is not None and (not isinstance(args.eval_every, int)
                                        or args.eval_every < 0):
        parser.error(f'--eval-every must be >= 0 (0: off), got '
                     f'{args.eval_every!r}.')
    args.eval_every = args.eval_every or None
    args.work_dir = osp.abspath(args.work_dir)
    if args.data_root is None:
        if not args.make_data:
            parser.error('--data-root is required (or --make-data, which '
                         'writes a synthetic set to WORK_DIR/'
                         f'{DATA_DIR_NAME}).')
        args.data_root = osp.join(args.work_dir, DATA_DIR_NAME)
    args.data_root = osp.abspath(args.data_root)
    return args
