"""Write a synthetic SRH dataset in the OpenSRH layout.

Example::

    python tools/misc/make_synthetic_srh.py data/synthetic_srh
    python tools/misc/make_synthetic_srh.py /tmp/tiny --patients-per-class 1 \\
        --slides 1 --patches 2 --size 64 --classes hgg,normal

Works from a source checkout without installing ``hlss_plugin``.
"""
import argparse
import os.path as osp
import sys
import time
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

from hlss_plugin.synthetic import OPENSRH_CLASSES, make_synthetic_srh  # noqa
from hlss_plugin.utils.arg_checks import (non_negative_int,  # noqa: E402
                                          positive_int)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    parser = argparse.ArgumentParser(
        description='Write a deterministic synthetic SRH dataset (two-channel '
        'uint16 TIFF patches, meta/opensrh.json, meta/train_val_split.json '
        'and ground-truth meta/synthetic_attributes.json) in the OpenSRH '
        'release layout.')
    parser.add_argument(
        'out',
        help='output folder (missing, empty or an '
        'earlier synthetic output)')
    parser.add_argument(
        '--patients-per-class',
        type=positive_int,
        default=6,
        help='patients per class (default: 6)')
    parser.add_argument(
        '--slides',
        type=positive_int,
        default=2,
        help='slides per patient (default: 2)')
    parser.add_argument(
        '--patches',
        type=positive_int,
        default=12,
        help='patches per slide (default: 12)')
    parser.add_argument(
        '--size',
        type=positive_int,
        default=300,
        help='patch size in pixels, >= 32 (default: 300)')
    parser.add_argument(
        '--seed',
        type=non_negative_int,
        default=0,
        help='random seed, >= 0 (default: 0)')
    parser.add_argument(
        '--classes',
        default=','.join(OPENSRH_CLASSES),
        help='comma-separated classes (default: all of '
        f'{",".join(OPENSRH_CLASSES)})')
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='write into a non-empty folder that is not an '
        'earlier synthetic output')
    return parser


def main(argv=None) -> int:
    """Run the tool; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(',') if c.strip()]
    start = time.perf_counter()
    try:
        summary = make_synthetic_srh(
            args.out,
            patients_per_class=args.patients_per_class,
            slides=args.slides,
            patches=args.patches,
            size=args.size,
            seed=args.seed,
            classes=classes,
            overwrite=args.overwrite)
    except ValueError as err:
        parser.error(str(err))
    seconds = time.perf_counter() - start
    print(
        f'wrote {summary["patches"]} patches of {summary["size"]}x'
        f'{summary["size"]} px ({summary["patients"]} patients: '
        f'{summary["train_patients"]} train / {summary["val_patients"]} val, '
        f'{summary["slides"]} slides, {len(summary["classes"])} classes) '
        f'to {summary["out_dir"]} in {seconds:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
