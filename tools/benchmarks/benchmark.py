#!/usr/bin/env python
"""Train self-supervised methods on one budget and compare them by kNN.

Run from the repository root::

    python tools/benchmarks/benchmark.py --data-root DIR --methods hlss ...
        --budget EPOCHS --work-dir DIR [--preset cpu] [--make-data]
        [--backbone {resnet18,resnet50}] [--crop-size 96]
        [--patients-per-batch 4] [--seeds N | --seed-list S ... | --seed S]
        [--workers 2] [--k 200] [--eval-every E] [--dry-run]

Methods (``random`` is the untrained backbone, a floor): see
:data:`METHOD_CONFIGS`, plus ablation variants of the HLSS heads
(``hlss_no_ha``, ``hlss:bridge=mlp``, ...; see
:mod:`hlss_plugin.benchmark.variants`). Every method is trained on the
same budget: the same number of epochs of the same ``HierarchicalSampler``
(P patients × 2 slides × 2 patches per batch, 2 views each; same seed,
hence the same patches in the same order), the same backbone
(``--backbone``: ResNet depth and every channel count that follows its
width, see ``hlss_plugin.benchmark.overrides``), the same view size
(``--crop-size``: ``SRHAugment`` crop and kNN centre crop), the same
optimiser settings of the configs and the same warm-up + cosine schedule
rescaled to the budget. Images seen = iterations × batch size × views is
printed before and recorded after training. Validation is off while
training; one checkpoint is written at the end.

``--seeds N`` trains and evaluates every method with seeds ``0 .. N-1``
(``randomness.seed`` and the sampler's seed: model init, augmentation and
patch order; ``random`` gets a different init per seed) and reports
mean ± std over seeds. ``--preset NAME`` takes its defaults from
:data:`hlss_plugin.benchmark.presets.PRESETS` (flags given override
them); ``--make-data`` writes the preset's synthetic data set when the data
root does not exist. ``--eval-every E`` adds a ``KNNCurveHook`` to every
training run: the kNN evaluation below, loss terms and collapse
diagnostics every ``E`` epochs and at epoch 0 (``curve.jsonl`` in the run's
work dir; ``curves.png``).

Each method and seed trains in its own subprocess
(:func:`hlss_plugin.benchmark.runs.run_one`; log in
``WORK_DIR/<method>/seed<S>/train.log``), so a crash or a leak in one run cannot touch the others. Then every checkpoint is
evaluated in this process with the same kNN setting: a ``BackboneEmbedder``
(backbone + global average pooling, loaded from the checkpoint whatever the
method's key layout) over ``HierarchicalKNNDataset`` (bank = train split,
queries = val split, centre crop of ``--crop-size``) with
``HierarchicalKNNMetric`` (``k`` clipped to the bank size, with a warning),
plus the effective rank and normalised std of the embeddings.

Written to ``WORK_DIR`` (updated after every run, so a crash keeps what was
done):

* ``benchmark.md``: the command line, machine, settings, the kNN data
  (query / bank patches, slides, patients) with chance levels, and a table
  of method × mean ± std (percent) of patch / slide / patient accuracy and
  mean class accuracy, ``≈`` on a mean within the seed spread of
  ``random``'s, and the levels where a method beats ``random`` by more than
  that spread (:mod:`hlss_plugin.benchmark.report`),
* ``benchmark.json``: the same with every kNN metric and per-seed numbers
  (fractions in [0, 1]) and curves,
* ``benchmark.png``: accuracy per method; ``curves.png`` with
  ``--eval-every``.

A run that fails to train or evaluate is recorded and the others go on; the
exit status is then 1. ``--dry-run`` prints the resolved settings (and
where each came from), each method's config overrides and the budget, and
trains nothing.
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

from hlss_plugin.benchmark import (BACKBONES, METHOD_CONFIGS,  # noqa: E402
                                   PRESETS, RANDOM, resolve_args,
                                   run_benchmark)
from hlss_plugin.utils.arg_checks import (non_negative_int,  # noqa: E402
                                          positive_int)


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None).

    The settings are resolved from the flags, the ``--preset`` and the
    defaults (:func:`hlss_plugin.benchmark.resolve_args`): ``args.sources``
    says where each came from and ``args.seeds`` is the list of seeds.
    """
    parser = argparse.ArgumentParser(
        description='Train self-supervised methods on one budget and '
        'compare them with the hierarchical kNN metric.')
    parser.add_argument('--preset', choices=sorted(PRESETS), default=None,
                        help='named defaults (hlss_plugin/benchmark/'
                        'presets.py); flags given override them')
    parser.add_argument('--data-root', metavar='DIR', default=None,
                        help='OpenSRH-layout data (meta/, studies/)')
    parser.add_argument('--make-data', action='store_true',
                        help='write the preset\'s synthetic data set to '
                        '--data-root (default: WORK_DIR/synthetic_srh) '
                        'when it does not exist')
    parser.add_argument('--methods', required=True, nargs='+',
                        metavar='METHOD',
                        help=f'any of: {RANDOM}, {", ".join(METHOD_CONFIGS)}'
                        f'; HLSS variants as <base>_no_ha, <base>_ha_w0.5, '
                        f'<base>:ha=off,bridge=mlp, ... (docs/benchmark.md)')
    parser.add_argument('--budget', type=positive_int, default=None,
                        metavar='EPOCHS', help='epochs for every method '
                        '(required unless the preset sets it)')
    parser.add_argument('--work-dir', required=True, metavar='DIR',
                        help='folder for runs and the benchmark report')
    parser.add_argument('--backbone', choices=sorted(BACKBONES),
                        default=None, help='default: resnet18')
    parser.add_argument('--crop-size', type=positive_int, default=None,
                        metavar='PX',
                        help='training view and kNN centre crop size '
                        '(default: 96)')
    parser.add_argument('--patients-per-batch', type=positive_int,
                        default=None, metavar='P', help='default: 4')
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument('--seeds', type=positive_int, default=None, metavar='N',
                       help='train and evaluate with seeds 0..N-1; report '
                       'mean ± std (default: 1, seed 0)')
    seeds.add_argument('--seed-list', type=non_negative_int, nargs='+',
                       default=None, metavar='S', help='these seeds')
    seeds.add_argument('--seed', type=non_negative_int, default=None,
                       help='one seed (same as --seed-list S)')
    parser.add_argument('--workers', type=non_negative_int, default=None,
                        help='dataloader workers (default: 2)')
    parser.add_argument('--k', type=positive_int, default=None,
                        help='kNN neighbours, clipped to the bank size '
                        '(default: 200)')
    parser.add_argument('--eval-every', type=non_negative_int, default=None,
                        metavar='E',
                        help='kNN evaluation, losses and collapse '
                        'diagnostics every E epochs while training, and at '
                        'epoch 0 (default: off; 0 turns a preset\'s off)')
    parser.add_argument('--reuse', action='store_true',
                        help='keep a method/seed run whose folder already '
                        'holds a finished training of the identical config '
                        '(it is evaluated again, not retrained): add '
                        'methods or seeds to an earlier benchmark')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the resolved settings and overrides; '
                        'train nothing')
    return resolve_args(parser, parser.parse_args(argv))


def main(argv=None) -> int:
    """Run the benchmark; returns the exit status (1 if a run failed)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return run_benchmark(parse_args(argv), argv)


if __name__ == '__main__':
    sys.exit(main())
