"""The README's demo: synthetic OpenSRH data → HLSS training → report.

Runs offline on the embedded defaults (2 CPU cores, a few minutes):

1. writes a synthetic OpenSRH-layout dataset (7 classes × 8 patients ×
   2 slides × 12 patches of 128 px: the data of ``tools/benchmarks/benchmark.py
   --preset cpu``) unless it already exists,
2. builds the training dataloader of ``configs/mmpretrain/hlss_srh_tiny.py``
   exactly as an mmengine Runner does (``HierarchicalSampler`` + SRH
   pipeline), draws one batch and draws it to ``WORK_DIR/batch.png``,
3. trains HLSS with that config (ResNet-18, the embedded MiniLM text tower,
   patch/slide/patient heads) with mmengine's Runner at the CPU preset's
   setting (64 px views, 40 epochs, kNN k = 20, seed 0), saving checkpoints
   in ``WORK_DIR/train``,
4. evaluates with the hierarchical kNN metric (train split = bank, val split
   = queries) beside the same metric for the untrained backbone, and
   explains val patches, slides and patients by their top attributes,
5. writes ``WORK_DIR/report.md``: data, the batch's hierarchy, losses per
   level and term at the first and last epoch, kNN metrics, explanations,
   checkpoint and timings.

The steps live in :mod:`hlss_plugin.apis.demo` (:func:`run_demo`) and the
report's sections in :mod:`hlss_plugin.apis.demo_report`.

Example:
    python tools/misc/demo.py --work-dir work_dirs/demo
"""
import argparse
import os.path as osp
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

from hlss_plugin.apis import run_demo  # noqa: E402
from hlss_plugin.utils.arg_checks import (non_negative_int,  # noqa: E402
                                          positive_int)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default=None,
                        help='synthetic data folder (default: '
                        'WORK_DIR/synthetic_srh); generated if missing')
    parser.add_argument('--patients-per-class', type=positive_int, default=8)
    parser.add_argument('--slides', type=positive_int, default=2)
    parser.add_argument('--patches', type=positive_int, default=12)
    parser.add_argument('--size', type=positive_int, default=128,
                        help='patch size of the generated data (px)')
    parser.add_argument('--crop-size', type=positive_int, default=64,
                        help='training view and kNN centre crop size (px)')
    parser.add_argument('--k', type=positive_int, default=20,
                        help='kNN neighbours (default 20: the bank holds '
                        '840 patches)')
    parser.add_argument('--seed', type=non_negative_int, default=0)
    parser.add_argument('--num-workers', type=non_negative_int, default=1)
    parser.add_argument('--max-epochs', type=positive_int, default=40,
                        help='training length in epochs (default 40: the '
                        'CPU preset\'s budget)')
    parser.add_argument('--skip-train', action='store_true',
                        help='only generate data and show a batch')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    run_demo(args)


if __name__ == '__main__':
    main()
