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
``tools/train.py`` (whose helpers are reused; CPU runs use gloo).

The checkpoint's ``state_dict`` is checked against the model first, strictly:
missing, unexpected or differently shaped keys stop the run with the list
(mmengine's own loading only warns). Checkpoints are read with
``torch.load(weights_only=True)``.

Written to the work dir (rank 0):

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
import csv
import importlib.util
import json
import os
import os.path as osp
import re
import sys
from typing import Dict, List, Optional

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from mmengine.config import Config, DictAction  # noqa: E402

from hlss_plugin.engine.hooks import PreflightError  # noqa: E402
from hlss_plugin.utils.checkpoint import (read_state_dict,  # noqa: E402
                                          state_dict_mismatch)
from hlss_plugin.utils.dist import close_process_group  # noqa: E402


def _load_train_tool():
    """``tools/train.py`` as a module (``tools`` is not a package)."""
    spec = importlib.util.spec_from_file_location(
        'hlss_tools_train', osp.join(REPO_ROOT, 'tools', 'train.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool = _load_train_tool()
ToolError = train_tool.TrainToolError
TEST_KEYS = ('test_dataloader', 'test_evaluator', 'test_cfg')
EVAL_BASE = 'configs/mmpretrain/_base_/datasets/opensrh_knn_eval.py'
METRIC_TYPE = 'HierarchicalKNNMetric'


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
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
    parser.add_argument('--tsne-max', type=int, default=5000, metavar='N',
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


def _register() -> None:
    """Register the evaluation pieces even where ``hlss_plugin`` does not
    import them yet."""
    import hlss_plugin  # noqa: F401
    import hlss_plugin.datasets.hierarchical_knn_dataset  # noqa: F401
    import hlss_plugin.datasets.transforms.center_crop_tensor  # noqa: F401
    import hlss_plugin.evaluation  # noqa: F401


def prepare_config(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command line to ``cfg`` for testing (in place).

    Training settings are dropped (not needed to test, and an
    ``AmpOptimWrapper`` would stop a CPU run); the checkpoint is loaded by
    the runner after :func:`check_checkpoint`.

    Raises:
        ToolError: When the config lacks test settings or the checkpoint
            does not exist.
    """
    missing = [key for key in TEST_KEYS if cfg.get(key, None) is None]
    if missing:
        raise ToolError(
            f'the config {args.config} has no {", ".join(missing)}; add '
            f'\'{EVAL_BASE}\' (as \'_base_/datasets/opensrh_knn_eval.py\') '
            f'to its _base_ list, or define them.')
    if not osp.isfile(args.checkpoint):
        raise ToolError(f'checkpoint {args.checkpoint!r} not found.')
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper',
                'param_scheduler'):
        cfg[key] = None
    train_args = argparse.Namespace(
        config=args.config, work_dir=args.work_dir, resume=None, amp=False,
        data_root=args.data_root, cfg_options=args.cfg_options,
        launcher=args.launcher)
    cfg = train_tool.merge_args(cfg, train_args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    return cfg


def _state_dict(path: str) -> Dict[str, torch.Tensor]:
    try:
        state = read_state_dict(path)
    except (FileNotFoundError, ValueError) as err:
        raise ToolError(str(err)) from err
    return {re.sub(r'^module\.', '', k): v for k, v in state.items()}


def check_checkpoint(model: torch.nn.Module, path: str) -> None:
    """Check that ``path`` matches ``model`` exactly (strict loading).

    Args:
        model (nn.Module): The model built from the config (unwrapped).
        path (str): Checkpoint file.

    Raises:
        ToolError: Listing the missing, unexpected and differently shaped
            keys, with the likely cause.
    """
    mismatch = state_dict_mismatch(model.state_dict(), _state_dict(path))
    if mismatch:
        raise ToolError(
            f'checkpoint {path} does not match the model of the config '
            f'({mismatch}). Pass the config the checkpoint was '
            f'trained with (backbone depth, in_channels and heads must '
            f'agree).')


def find_metric(evaluator):
    """The evaluator's :class:`HierarchicalKNNMetric`."""
    for metric in evaluator.metrics:
        if type(metric).__name__ == METRIC_TYPE:
            return metric
    raise ToolError(f'test_evaluator has no {METRIC_TYPE}; set '
                    f'test_evaluator = dict(type="{METRIC_TYPE}") (see '
                    f'{EVAL_BASE}).')


# ----------------------------------------------------------------- outputs
def write_metrics(results: dict, keys, work_dir: str) -> Dict[str, dict]:
    """``metrics.json`` and ``metrics.csv``; returns the nested metrics."""
    nested = {level: {key: float(values[key]) for key in keys}
              for level, values in results['levels'].items()}
    with open(osp.join(work_dir, 'metrics.json'), 'w') as f:
        json.dump(nested, f, indent=2)
    with open(osp.join(work_dir, 'metrics.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['level', *keys])
        for level, values in nested.items():
            writer.writerow([level, *(f'{values[k]:.4f}' for k in keys)])
    return nested


def plot_confusions(results: dict, work_dir: str) -> List[str]:
    """One ``confusion_<level>.png`` per level; returns the paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    classes = results['classes']
    paths = []
    for level, values in results['levels'].items():
        counts = np.asarray(values['confusion'], dtype=np.int64)
        rows = counts.sum(1, keepdims=True)
        share = np.divide(counts, rows, out=np.zeros(counts.shape),
                          where=rows > 0)
        size = 1.2 + 0.6 * len(classes)
        fig, ax = plt.subplots(figsize=(size + 1.5, size))
        image = ax.imshow(share * 100, cmap='Blues', vmin=0, vmax=100)
        fig.colorbar(image, ax=ax, label='% of true class')
        ticks = np.arange(len(classes))
        ax.set_xticks(ticks, classes, rotation=45, ha='right')
        ax.set_yticks(ticks, classes)
        ax.set_xlabel('predicted')
        ax.set_ylabel('true')
        if len(classes) <= 20:
            for i in range(len(classes)):
                for j in range(len(classes)):
                    if counts[i, j]:
                        ax.text(j, i, str(counts[i, j]), ha='center',
                                va='center', fontsize=8,
                                color='white' if share[i, j] > 0.5
                                else 'black')
        ax.set_title(f'{level}-level kNN: acc {values["acc"]:.1f} %, '
                     f'mca {values["mca"]:.1f} %')
        fig.tight_layout()
        path = osp.join(work_dir, f'confusion_{level}.png')
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_tsne(results: dict, work_dir: str, max_points: int,
              seed: int = 0) -> Optional[str]:
    """``tsne.png``: query embeddings by class and by patient."""
    query = [i for i, role in enumerate(results['roles']) if role != 'bank']
    if max_points <= 0 or len(query) < 4:
        if max_points > 0:
            print(f'tools/test.py: {len(query)} query patches; t-SNE needs '
                  f'at least 4, no tsne.png written.')
        return None
    rng = np.random.default_rng(seed)
    if len(query) > max_points:
        query = sorted(rng.choice(query, max_points, replace=False))
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    feats = torch.nn.functional.normalize(results['feats'][query], dim=1)
    points = TSNE(n_components=2, init='pca', random_state=seed,
                  perplexity=min(30.0, (len(query) - 1) / 3.0)
                  ).fit_transform(feats.numpy().astype(np.float64))
    labels = results['labels'][query].numpy()
    patients = [results['patient'][i] or str(int(results['patient_idx'][i]))
                for i in query]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    cmap = plt.get_cmap('tab10' if len(results['classes']) <= 10 else
                        'tab20')
    for c, name in enumerate(results['classes']):
        mask = labels == c
        if mask.any():
            axes[0].scatter(points[mask, 0], points[mask, 1], s=8,
                            color=cmap(c % cmap.N), label=name)
    axes[0].legend(fontsize=7, markerscale=2)
    axes[0].set_title('query patches by class')
    names = sorted(set(patients))
    pcmap = plt.get_cmap('tab20')
    for p, name in enumerate(names):
        mask = np.array([q == name for q in patients])
        axes[1].scatter(points[mask, 0], points[mask, 1], s=8,
                        color=pcmap(p % pcmap.N), label=name)
    if len(names) <= 20:
        axes[1].legend(fontsize=6, markerscale=2)
    axes[1].set_title(f'query patches by patient ({len(names)})')
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f't-SNE of {len(query)} query embeddings')
    fig.tight_layout()
    path = osp.join(work_dir, 'tsne.png')
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def dump_embeddings(results: dict, split_names: Dict[str, str],
                    path: str) -> str:
    """Save every patch's embedding and metadata to ``path`` (.npz)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    roles = results['roles']

    def text(values):
        return np.array([str(v) for v in values], dtype=np.str_)

    np.savez(
        path,
        embeddings=results['feats'].numpy().astype(np.float32),
        labels=results['labels'].numpy().astype(np.int64),
        class_names=text(results['classes']),
        patient=text(results['patient']),
        slide=text(results['slide']),
        path=text(results['img_path']),
        split=text(split_names.get(r, r) for r in roles),
        role=text(roles),
        knn_id=results['ids'].numpy().astype(np.int64),
        patient_idx=results['patient_idx'].numpy().astype(np.int64),
        slide_idx=results['slide_idx'].numpy().astype(np.int64))
    return path if path.endswith('.npz') else path + '.npz'


# --------------------------------------------------------------------- main
def main(argv: Optional[List[str]] = None) -> Optional[Dict[str, dict]]:
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
        _register()
        cfg = prepare_config(Config.fromfile(args.config), args)
        if args.launcher != 'none':
            owns_group = train_tool.prepare_distributed(cfg, args.launcher)
        runner = train_tool.build_runner(cfg)
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
