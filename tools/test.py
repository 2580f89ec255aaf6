#!/usr/bin/env python
"""Evaluate a checkpoint with a config's test settings (hierarchical kNN).

Run from the repository root::

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--data-root DIR]
        [--dump-embeddings FILE.npz] [--tsne-max N]
        [--cfg-options KEY=VALUE ...] [--launcher {none,pytorch,slurm}]

The config needs ``test_dataloader``, ``test_evaluator`` and ``test_cfg``
(``configs/mmpretrain/_base_/datasets/opensrh_knn_eval.py`` provides them:
bank = train split, queries = val split, ``HierarchicalKNNMetric``).
``--data-root``, ``--cfg-options`` and ``--launcher`` work as in
``tools/train.py`` (the same :mod:`hlss_plugin.apis` functions; CPU runs
use gloo).

The checkpoint's ``state_dict`` is checked against the model first, strictly:
missing, unexpected or differently shaped keys stop the run with the list
(mmengine's own loading only warns) and point to the config saved in the
checkpoint's work dir. Checkpoints are read with
``torch.load(weights_only=True)``.

Written to the work dir (rank 0, :mod:`hlss_plugin.evaluation.reporting`):

* ``metrics.json``: ``{"patch": {"acc", "top2", "top3", "mca", "map"},
  "slide": {...}, "patient": {...}}`` in percent,
* ``metrics.csv``: one row per level,
* ``confusion_<level>.png``: confusion matrix per level (rows: true class),
* ``tsne.png``: a 2-D t-SNE map of the query embeddings (at most
  ``--tsne-max`` patches, default 5000; 0 skips it), coloured by class and
  by patient.

``--dump-embeddings FILE.npz`` saves, for every bank and query patch (no
pickled objects: strings are fixed-width unicode arrays): ``embeddings``
(N, C) float32, ``labels`` (N,) int64, ``class_names`` (K,), ``patient``,
``slide``, ``path``, ``split`` (the bank's / query's split name, e.g.
``train`` / ``val``), ``role`` (``bank`` / ``query``), ``knn_id``,
``patient_idx``, ``slide_idx``.
"""
import argparse
import os
import os.path as osp
import sys
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

from mmengine.config import Config, DictAction  # noqa: E402

from hlss_plugin.apis import (ToolError, build_runner,  # noqa: E402
                              check_checkpoint, find_metric,
                              prepare_distributed, prepare_test_config,
                              register_evaluation)
from hlss_plugin.engine.hooks import PreflightError  # noqa: E402
from hlss_plugin.evaluation.reporting import (dump_embeddings,  # noqa: E402
                                              plot_confusions, plot_tsne,
                                              write_metrics)
from hlss_plugin.utils.arg_checks import non_negative_int  # noqa: E402
from hlss_plugin.utils.dist import close_process_group  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Evaluate a checkpoint (hierarchical kNN accuracy).')
    parser.add_argument('config', help='config file path')
    parser.add_argument('checkpoint', help='checkpoint file (.pth)')
    parser.add_argument(
        '--work-dir',
        help='folder for logs, metrics and plots (default: the config\'s '
        'work_dir, else ./work_dirs/<config name>)')
    parser.add_argument('--data-root', metavar='DIR',
                        help='replace every data_root in the config by DIR')
    parser.add_argument('--dump-embeddings', metavar='FILE.npz',
                        help='save every patch\'s embedding and metadata')
    parser.add_argument('--tsne-max', type=non_negative_int, default=5000,
                        metavar='N',
                        help='query patches in the t-SNE map (0: no map)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config settings, e.g. test_evaluator.k=20')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None):
    """Parse ``argv``, test the checkpoint and write the outputs.

    Returns:
        dict | None: The nested metrics on rank 0, else None.
    """
    args = parse_args(argv)
    owns_group = False
    clean = False  # every rank reached the end
    runner = None
    try:
        if not osp.isfile(args.config):
            raise ToolError(f'config file {args.config!r} not found.')
        register_evaluation()
        cfg = prepare_test_config(Config.fromfile(args.config), args)
        if args.launcher != 'none':
            owns_group = prepare_distributed(cfg, args.launcher)
        runner = build_runner(cfg)
        from mmengine.model import is_model_wrapper
        model = (runner.model.module if is_model_wrapper(runner.model) else
                 runner.model)
        check_checkpoint(model, args.checkpoint)
        metric = find_metric(runner.test_loop.evaluator)
        metric.evaluator_key = 'test_evaluator'  # named in its messages
        runner.test()
        clean = True
        from mmengine.dist import is_main_process
        if not is_main_process():
            return None
        results = metric.last_results
        work_dir = runner.work_dir
        nested = write_metrics(results, metric.metric_keys, work_dir)
        written = [osp.join(work_dir, 'metrics.json'),
                   osp.join(work_dir, 'metrics.csv')]
        written += plot_confusions(results, work_dir)
        tsne = plot_tsne(results, work_dir, args.tsne_max)
        if tsne:
            written.append(tsne)
        if args.dump_embeddings:
            dataset = runner.test_loop.dataloader.dataset
            written.append(dump_embeddings(
                results, getattr(dataset, 'split_names', {}),
                args.dump_embeddings))
        if results['missing_classes']:
            print(f'tools/test.py: warning: query classes without bank '
                  f'patches: {results["missing_classes"]}')
        for level, values in nested.items():
            print(f'{level:>8}: ' + '  '.join(
                f'{k} {v:6.2f}' for k, v in values.items()))
        print('tools/test.py: wrote ' + ', '.join(written))
        return nested
    except (ToolError, PreflightError) as err:
        sys.exit(f'tools/test.py: error: {err}')
    finally:
        # Frees the DDP wrapper, which holds the backend, before the group.
        runner = None  # noqa: F841
        if owns_group:
            close_process_group(clean)


if __name__ == '__main__':
    main()
