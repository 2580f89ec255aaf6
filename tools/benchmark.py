#!/usr/bin/env python
"""Train self-supervised methods on one budget and compare them by kNN.

Run from the repository root::

    python tools/benchmark.py --data-root DIR --methods hlss simclr ...
        --budget EPOCHS --work-dir DIR [--backbone {resnet18,resnet50}]
        [--crop-size 96] [--patients-per-batch 4] [--seed 0] [--workers 2]
        [--k 200] [--dry-run]

Methods (``random`` is the untrained backbone, a floor): see
:data:`METHOD_CONFIGS`. Every method is trained on the same budget: the
same number of epochs of the same ``HierarchicalSampler`` (P patients × 2
slides × 2 patches per batch, 2 views each; same seed, hence the same
patches in the same order), the same backbone (``--backbone``: ResNet depth
and every channel count that follows its width, see
``hlss_plugin.utils.benchmark_overrides``), the same view size
(``--crop-size``: ``SRHAugment`` crop and kNN centre crop), the same
optimiser settings of the configs and the same warm-up + cosine schedule
rescaled to the budget. Images seen = iterations × batch size × views is
printed before and recorded after training. Validation is off while
training; one checkpoint is written at the end.

Each method trains in its own subprocess (this script with
``--run-one``; log in ``WORK_DIR/<method>/train.log``), so a crash or a
leak in one method cannot touch the others. Then every checkpoint is
evaluated in this process with the same kNN setting: a ``BackboneEmbedder``
(backbone + global average pooling, loaded from the checkpoint whatever the
method's key layout) over ``HierarchicalKNNDataset`` (bank = train split,
queries = val split, centre crop of ``--crop-size``) with
``HierarchicalKNNMetric`` (``k`` clipped to the bank size, with a warning).

Written to ``WORK_DIR`` (updated after every method, so a crash keeps what
was done):

* ``benchmark.md``: the command line, machine (CPU count, torch, device),
  the budget, and a table of method, images seen, training time and
  patch / slide / patient accuracy and mean class accuracy (fractions in
  [0, 1]); a failed method is listed with its error,
* ``benchmark.json``: the same numbers (all kNN metrics, as fractions),
* ``benchmark.png``: patch / slide / patient accuracy per method.

A method that fails to train or evaluate is recorded and the others go
on; the exit status is then 1. ``--dry-run`` prints each method's resolved
config overrides and the budget, and trains nothing.
"""
import argparse
import copy
import glob
import importlib.util
import json
import os
import os.path as osp
import platform
import re
import shlex
import subprocess
import sys
import time
import warnings
from typing import Any, Dict, List, Optional, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402

from hlss_plugin.utils.benchmark_overrides import (  # noqa: E402
    rescale_schedule, set_backbone_depth, set_crop_size,
    set_patients_per_batch)
from hlss_plugin.utils.config import (  # noqa: E402
    set_data_root, walk_config)

CONFIG_DIR = osp.join(REPO_ROOT, 'configs', 'mmpretrain')
#: Method name -> config file in configs/mmpretrain/.
METHOD_CONFIGS = {
    'hlss': 'hlss_srh.py',
    'hidisc': 'hidisc_resnet50_srh.py',
    'simclr': 'simclr_resnet50_srh.py',
    'mocov3': 'mocov3_resnet50_srh.py',
    'byol': 'byol_resnet50_srh.py',
    'simsiam': 'simsiam_resnet50_srh.py',
    'barlowtwins': 'barlowtwins_resnet50_srh.py',
    'vicreg': 'vicreg_resnet50_srh.py',
    'simclr_hlss': 'simclr_hlss_srh.py',
    'mocov3_hlss': 'mocov3_hlss_srh.py',
    'byol_hlss': 'byol_hlss_srh.py',
}
#: The untrained backbone (no config, no training).
RANDOM = 'random'
BACKBONES = {'resnet18': 18, 'resnet50': 50}
#: Backbone, data preprocessor and evaluation data shared by every method.
SHARED_BASE = osp.join(CONFIG_DIR, '_base_', 'srh_pretrain.py')
EVAL_BASE = osp.join(CONFIG_DIR, '_base_', 'datasets', 'opensrh_knn_eval.py')
LEVELS = ('patch', 'slide', 'patient')
#: Metric keys shown in the markdown table (json has all of them).
TABLE_KEYS = ('acc', 'mca')
RUN_ONE = '--run-one'
#: Config keys the Runner reads; changes to other (top-level helper
#: variables) are applied too but not listed by --dry-run.
RUNNER_KEYS = ('model', 'train_dataloader', 'val_dataloader',
               'test_dataloader', 'val_evaluator', 'test_evaluator',
               'train_cfg', 'val_cfg', 'test_cfg', 'param_scheduler',
               'optim_wrapper', 'default_hooks', 'custom_hooks',
               'randomness', 'work_dir', 'visualizer')


class BenchmarkError(Exception):
    """A problem with the command line, reported without a traceback."""


def _load_tool(name: str):
    """``tools/<name>.py`` as a module (``tools`` is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f'hlss_tools_{name}', osp.join(REPO_ROOT, 'tools', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool = _load_tool('train')
test_tool = _load_tool('test')


# ---------------------------------------------------------------- arguments
def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description='Train self-supervised methods on one budget and '
        'compare them with the hierarchical kNN metric.')
    parser.add_argument('--data-root', required=True, metavar='DIR',
                        help='OpenSRH-layout data (meta/, studies/)')
    parser.add_argument('--methods', required=True, nargs='+',
                        metavar='METHOD',
                        help=f'any of: {RANDOM}, '
                        f'{", ".join(METHOD_CONFIGS)}')
    parser.add_argument('--budget', required=True, type=int,
                        metavar='EPOCHS', help='epochs for every method')
    parser.add_argument('--work-dir', required=True, metavar='DIR',
                        help='folder for runs and the benchmark report')
    parser.add_argument('--backbone', choices=sorted(BACKBONES),
                        default='resnet18', help='default: resnet18')
    parser.add_argument('--crop-size', type=int, default=96, metavar='PX',
                        help='training view and kNN centre crop size '
                        '(default: 96)')
    parser.add_argument('--patients-per-batch', type=int, default=4,
                        metavar='P', help='default: 4')
    parser.add_argument('--seed', type=int, default=0, help='default: 0')
    parser.add_argument('--workers', type=int, default=2,
                        help='dataloader workers (default: 2)')
    parser.add_argument('--k', type=int, default=200,
                        help='kNN neighbours, clipped to the bank size '
                        '(default: 200)')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the resolved overrides; train nothing')
    args = parser.parse_args(argv)
    for name in ('budget', 'crop_size', 'patients_per_batch', 'k'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{getattr(args, name)}.')
    if args.workers < 0:
        parser.error(f'--workers must be >= 0, got {args.workers}.')
    if args.seed < 0:
        parser.error(f'--seed must be >= 0, got {args.seed}.')
    args.data_root = osp.abspath(args.data_root)
    args.work_dir = osp.abspath(args.work_dir)
    return args


def resolve_methods(names: List[str]) -> List[Tuple[str, Optional[str]]]:
    """``[(method, config path or None for random)]`` in the given order.

    Raises:
        BenchmarkError: For an unknown or repeated name, or a missing config
            file; the message lists the valid names.
    """
    valid = [RANDOM] + list(METHOD_CONFIGS)
    unknown = [n for n in names if n not in valid]
    if unknown:
        raise BenchmarkError(f'unknown method(s) {", ".join(unknown)}; valid '
                             f'names: {", ".join(valid)}.')
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BenchmarkError(f'method(s) given twice: {", ".join(repeated)}.')
    methods = []
    for name in names:
        path = None
        if name != RANDOM:
            path = osp.join(CONFIG_DIR, METHOD_CONFIGS[name])
            if not osp.isfile(path):
                present = [RANDOM] + [
                    n for n, f in METHOD_CONFIGS.items()
                    if osp.isfile(osp.join(CONFIG_DIR, f))]
                raise BenchmarkError(
                    f'method {name}: config {osp.relpath(path, REPO_ROOT)} '
                    f'not found; methods with a config here: '
                    f'{", ".join(present)}.')
        methods.append((name, path))
    return methods


# ------------------------------------------------------------------ configs
def _set(container: dict, key: str, value: Any, path: str,
         changes: Dict[str, Tuple[Any, Any]]) -> None:
    old = container.get(key, None)
    if old != value:
        container[key] = value
        changes[path] = (copy.deepcopy(old), value)


def count_views(cfg: Config) -> int:
    """Views per patch in the training pipeline (``MultiView``; 1 without)."""
    for step in cfg.train_dataloader.dataset.get('pipeline', []):
        if isinstance(step, dict) and step.get('type') == 'MultiView':
            views = step.get('num_views', 1)
            return int(sum(views) if isinstance(views, (list, tuple))
                       else views)
    return 1


def train_budget(cfg: Config, seed: int) -> Dict[str, int]:
    """Iterations per epoch, batch size and views of ``cfg``'s training.

    Builds the training dataset (no pipeline) and its sampler as the Runner
    would on one process.
    """
    from mmpretrain.registry import DATA_SAMPLERS, DATASETS
    loader = cfg.train_dataloader
    dataset_cfg = copy.deepcopy(loader.dataset)
    dataset_cfg['pipeline'] = []
    dataset = DATASETS.build(dataset_cfg)
    sampler = DATA_SAMPLERS.build(copy.deepcopy(loader.sampler),
                                  default_args=dict(dataset=dataset,
                                                    seed=seed))
    iters = getattr(sampler, 'num_batches', None)
    if iters is None:
        iters = len(sampler) // loader.batch_size
    return dict(iters_per_epoch=int(iters), batch_size=int(loader.batch_size),
                views=count_views(cfg), train_patches=len(dataset))


def prepare_train_config(name: str, path: str, args: argparse.Namespace,
                         depth: int):
    """Load ``path`` and apply the benchmark's overrides.

    Returns:
        tuple: ``(cfg, changes, budget)``: the config, ``{key: (old, new)}``
        and :func:`train_budget`'s numbers.

    Raises:
        ValueError: When an override does not apply to the config.
    """
    cfg = Config.fromfile(path)
    changes: Dict[str, Tuple[Any, Any]] = {}
    old_roots = {path: container[key] for container, key, path
                 in walk_config(cfg._cfg_dict, '') if key == 'data_root'}
    for key in set_data_root(cfg, args.data_root):
        changes[key] = (old_roots.get(key), args.data_root)
    changes.update(set_backbone_depth(cfg, depth))
    if not any(t.get('type') == 'SRHAugment'
               for t in _train_transforms(cfg)):
        raise ValueError(f'{osp.basename(path)}: the training pipeline has '
                         f'no SRHAugment; --crop-size cannot be applied.')
    changes.update(set_crop_size(cfg, args.crop_size))
    changes.update(set_patients_per_batch(cfg, args.patients_per_batch))
    loader = cfg.train_dataloader
    _set(loader, 'num_workers', args.workers, 'train_dataloader.num_workers',
         changes)
    _set(loader, 'persistent_workers', args.workers > 0,
         'train_dataloader.persistent_workers', changes)
    budget = train_budget(cfg, args.seed)
    changes.update(rescale_schedule(cfg, args.budget,
                                    budget['iters_per_epoch']))
    # No validation while training; one checkpoint at the end.
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg',
                'test_dataloader', 'test_evaluator', 'test_cfg'):
        if cfg.get(key, None) is not None:
            _set(cfg._cfg_dict, key, None, key, changes)
    ckpt = cfg.default_hooks.checkpoint
    for key, value in (('interval', args.budget), ('by_epoch', True),
                       ('max_keep_ckpts', 1), ('save_last', True),
                       ('save_best', None), ('rule', None)):
        _set(ckpt, key, value, f'default_hooks.checkpoint.{key}', changes)
    _set(cfg._cfg_dict, 'randomness',
         dict(seed=args.seed, deterministic=False, diff_rank_seed=False),
         'randomness', changes)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    work_dir = osp.join(args.work_dir, name, 'train')
    train_args = argparse.Namespace(
        config=path, work_dir=work_dir, resume=None, amp=False,
        data_root=None, cfg_options=None, launcher='none')
    try:
        cfg = train_tool.merge_args(cfg, train_args)
    except train_tool.TrainToolError as err:
        raise ValueError(str(err)) from err
    changes['work_dir'] = (None, work_dir)
    return cfg, changes, budget


def _train_transforms(cfg: Config) -> List[dict]:
    out = []

    def walk(node):
        if isinstance(node, dict):
            if 'type' in node:
                out.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)
    walk(cfg.train_dataloader.dataset.get('pipeline', []))
    return out


def shared_parts(depth: int) -> Tuple[dict, dict]:
    """The evaluation backbone (``depth``) and data preprocessor, from the
    baselines' shared base (HLSS's are the same)."""
    base = Config.fromfile(SHARED_BASE).model
    backbone = copy.deepcopy(base.backbone.to_dict())
    backbone['depth'] = depth
    return backbone, base.data_preprocessor.to_dict()


def build_eval_config(args: argparse.Namespace, depth: int, name: str,
                      checkpoint: Optional[str], k: int) -> Config:
    """The kNN evaluation config: identical for every method but for the
    checkpoint."""
    backbone, preprocessor = shared_parts(depth)
    cfg = Config.fromfile(EVAL_BASE)
    set_data_root(cfg, args.data_root)
    set_crop_size(cfg, args.crop_size)
    cfg.model = dict(type='BackboneEmbedder', backbone=backbone,
                     neck=dict(type='GlobalAveragePooling'),
                     data_preprocessor=preprocessor, checkpoint=checkpoint)
    cfg.test_dataloader.num_workers = args.workers
    cfg.test_dataloader.persistent_workers = False
    cfg.test_evaluator.k = k
    for key in ('val_dataloader', 'val_evaluator', 'val_cfg'):
        cfg[key] = None
    cfg.default_scope = 'mmpretrain'
    cfg.work_dir = osp.join(args.work_dir, name, 'knn')
    cfg.experiment_name = f'benchmark_knn_{name}_{time.time_ns()}'
    cfg.randomness = dict(seed=args.seed)
    cfg.log_level = 'WARNING'
    cfg.env_cfg = dict(cudnn_benchmark=False,
                       dist_cfg=dict(backend='nccl'))
    cfg.default_hooks = dict(logger=dict(type='LoggerHook', interval=50))
    cfg.visualizer = dict(type='UniversalVisualizer',
                          vis_backends=[dict(type='LocalVisBackend')])
    return cfg


def knn_split_sizes(cfg: Config) -> Dict[str, int]:
    """Patches in the kNN bank and query splits of an evaluation config."""
    from mmpretrain.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset_cfg['pipeline'] = []
    dataset = DATASETS.build(dataset_cfg)
    dataset.full_init()
    return dict(dataset.num_items,
                classes=len(dataset.metainfo.get('classes') or ()))


# ----------------------------------------------------------------- training
def _error_line(log_path: str) -> str:
    """The most telling line of a failed run's log."""
    try:
        with open(log_path, errors='replace') as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return 'no log written'
    for line in reversed(lines):
        if re.match(r'^([\w.]+(Error|Exception|Interrupt)\b|'
                    r'tools/\S+: error:)', line):
            return line
    return lines[-1] if lines else 'no output'


def run_training(name: str, cfg: Config, args: argparse.Namespace) -> dict:
    """Train ``cfg`` in a subprocess; returns its result (or the error)."""
    method_dir = osp.join(args.work_dir, name)
    os.makedirs(method_dir, exist_ok=True)
    config_path = osp.join(method_dir, f'{name}_benchmark_config.py')
    cfg.dump(config_path)
    result_path = osp.join(method_dir, 'train_result.json')
    if osp.exists(result_path):
        os.remove(result_path)
    log_path = osp.join(method_dir, 'train.log')
    env = dict(os.environ)
    env.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    env['PYTHONHASHSEED'] = str(args.seed)
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        proc = subprocess.run(
            [sys.executable, osp.abspath(__file__), RUN_ONE, config_path,
             result_path], cwd=REPO_ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not osp.isfile(result_path):
        return dict(error=f'training failed (exit {proc.returncode}): '
                    f'{_error_line(log_path)} (log: {log_path})',
                    wall_s=wall, log=log_path)
    with open(result_path) as f:
        result = json.load(f)
    result.update(wall_s=wall, log=log_path)
    return result


def _last_checkpoint(work_dir: str) -> Optional[str]:
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            path = f.read().strip()
        if osp.isfile(path):
            return path
    ckpts = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')),
                   key=lambda p: int(re.findall(r'\d+', osp.basename(p))[0]))
    return ckpts[-1] if ckpts else None


def run_one(config_path: str, result_path: str) -> None:
    """Child process: train one dumped config and write its result json."""
    import hlss_plugin  # noqa: F401
    # Deterministic where an implementation exists; ops without one warn
    # instead of stopping (e.g. CUDA adaptive pooling backward).
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    cfg = Config.fromfile(config_path)
    runner = train_tool.build_runner(cfg)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    checkpoint = _last_checkpoint(runner.work_dir)
    if checkpoint is None:
        raise RuntimeError(f'training wrote no checkpoint in '
                           f'{runner.work_dir}.')
    device = str(next(runner.model.parameters()).device)
    with open(result_path, 'w') as f:
        json.dump(dict(train_time_s=seconds, iterations=int(runner.iter),
                       epochs=int(runner.epoch), checkpoint=checkpoint,
                       device=device), f, indent=2)


# --------------------------------------------------------------- evaluation
def evaluate(cfg: Config, init: bool) -> Dict[str, Dict[str, float]]:
    """Run the kNN test loop of ``cfg``.

    Args:
        cfg (Config): From :func:`build_eval_config`.
        init (bool): Initialise the weights first (the untrained backbone,
            as every method starts).

    Returns:
        dict: ``{level: {metric key: fraction in [0, 1]}}``.
    """
    runner = train_tool.build_runner(cfg)
    if init:
        runner.model.init_weights()
    metrics = runner.test()
    nested: Dict[str, Dict[str, float]] = {}
    for key, value in metrics.items():
        level, name = key.split('/', 1)
        nested.setdefault(level, {})[name] = float(value) / 100.0
    missing = test_tool.find_metric(
        runner.test_loop.evaluator).last_results.get('missing_classes')
    if missing:
        warnings.warn(f'kNN: query classes without bank patches: {missing}')
    return nested


# ------------------------------------------------------------------ outputs
def machine_info() -> Dict[str, Any]:
    """CPU count, versions and the device training and kNN run on."""
    import mmengine
    import mmpretrain
    device = 'cpu'
    if torch.cuda.is_available():
        device = f'cuda ({torch.cuda.get_device_name(0)})'
    return dict(cpu_count=os.cpu_count(), torch=torch.__version__,
                device=device, mmengine=mmengine.__version__,
                mmpretrain=mmpretrain.__version__,
                python=platform.python_version(),
                platform=platform.platform())


def _cell(text: str) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def render_markdown(report: dict) -> str:
    """``benchmark.md``'s text."""
    s, m = report['settings'], report['machine']
    lines = [
        '# Self-supervised benchmark: hierarchical kNN', '',
        f'- command: `{report["command"]}`',
        f'- machine: {m["cpu_count"]} CPUs, torch {m["torch"]}, device '
        f'{m["device"]}; mmengine {m["mmengine"]}, mmpretrain '
        f'{m["mmpretrain"]}, Python {m["python"]} ({m["platform"]})',
        f'- data: `{s["data_root"]}`; {s["train_patches"]} training patches;'
        f' kNN bank (train split) {s["bank_patches"]} patches, queries (val '
        f'split) {s["query_patches"]} patches, {s["classes"]} classes',
        f'- budget: {s["budget_epochs"]} epochs × {s["iters_per_epoch"]} '
        f'iterations × {s["batch_size"]} patches ({s["patients_per_batch"]}'
        f' patients × slides × patches) × {s["views"]} views = '
        f'{s["images_seen"]} images seen per trained method; ResNet-'
        f'{s["depth"]}, {s["crop_size"]} px crops, seed {s["seed"]} '
        f'(deterministic algorithms where available), {s["workers"]} '
        f'workers; schedule: warm-up + cosine of each config rescaled to '
        f'the budget',
        f'- kNN: BackboneEmbedder (backbone + global average pooling), '
        f'k = {s["k"]}' + (f' (requested {s["k_requested"]}, clipped to the '
                           f'bank)' if s['k'] != s['k_requested'] else '')
        + f', centre crop {s["crop_size"]} px; accuracies are fractions '
        f'in [0, 1]', '']
    header = ['method', 'config', 'images seen', 'train time (s)']
    header += [f'{lv} {key}' for key in TABLE_KEYS for lv in LEVELS]
    header.append('status')
    lines += ['| ' + ' | '.join(header) + ' |',
              '|' + '---|' * len(header)]
    for entry in report['methods']:
        row = [entry['method'], entry['config'] or '(untrained backbone)',
               str(entry['images_seen']), f'{entry["train_time_s"]:.1f}']
        metrics = entry.get('metrics') or {}
        for key in TABLE_KEYS:
            for level in LEVELS:
                value = metrics.get(level, {}).get(key)
                row.append('—' if value is None else f'{value:.3f}')
        row.append('ok' if entry['error'] is None else
                   f'failed: {entry["error"]}')
        lines.append('| ' + ' | '.join(_cell(c) for c in row) + ' |')
    notes = [n for e in report['methods'] for n in e.get('notes', [])]
    notes += report.get('notes', [])
    if notes:
        lines += ['', 'Notes:', ''] + [f'- {_cell(n)}' for n in notes]
    lines += ['', '![kNN accuracy per method](benchmark.png)', '']
    return '\n'.join(lines)


def plot(report: dict, path: str) -> str:
    """``benchmark.png``: patch / slide / patient accuracy per method."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    entries = report['methods']
    x = np.arange(len(entries))
    width = 0.8 / len(LEVELS)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(entries) + 2), 4))
    for i, level in enumerate(LEVELS):
        values = [(e.get('metrics') or {}).get(level, {}).get('acc', np.nan)
                  for e in entries]
        ax.bar(x + (i - 1) * width, values, width, label=level)
    for j, entry in enumerate(entries):
        if entry['error'] is not None:
            ax.text(x[j], 0.02, 'failed', ha='center', rotation=90)
    classes = report['settings'].get('classes') or 0
    if classes:
        ax.axhline(1.0 / classes, color='grey', linestyle='--', linewidth=1,
                   label=f'chance (1/{classes})')
    ax.set_xticks(x, [e['method'] for e in entries])
    ax.set_ylim(0, 1)
    ax.set_ylabel('kNN accuracy')
    s = report['settings']
    ax.set_title(f'{s["budget_epochs"]} epochs, {s["images_seen"]} images '
                 f'seen, ResNet-{s["depth"]}, k = {s["k"]}', fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_outputs(report: dict, work_dir: str) -> List[str]:
    """Write ``benchmark.md``, ``benchmark.json`` and ``benchmark.png``."""
    paths = [osp.join(work_dir, f'benchmark.{ext}')
             for ext in ('md', 'json', 'png')]
    with open(paths[0], 'w') as f:
        f.write(render_markdown(report))
    with open(paths[1], 'w') as f:
        json.dump(report, f, indent=2)
    plot(report, paths[2])
    return paths


# --------------------------------------------------------------------- main
def _show(value: Any) -> str:
    if isinstance(value, dict) and 'type' in value:
        keys = [k for k in ('begin', 'end', 'T_max', 'by_epoch')
                if k in value]
        return (f'{value["type"]}(' + ', '.join(f'{k}={value[k]}'
                                                for k in keys) + ')')
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + '...'


def print_plan(plans: List[dict], settings: dict) -> None:
    """The resolved overrides of every method (``--dry-run``)."""
    for plan in plans:
        print(f'[{plan["method"]}] {plan["config"] or "untrained backbone"}')
        if plan.get('error'):
            print(f'  error: {plan["error"]}')
            continue
        for key, (old, new) in plan.get('changes', {}).items():
            if key.split('.')[0] in RUNNER_KEYS:
                print(f'  {key}: {_show(old)} -> {_show(new)}')
        if plan['config']:
            b = plan['budget']
            print(f'  images seen: {settings["budget_epochs"]} epochs x '
                  f'{b["iters_per_epoch"]} iterations x {b["batch_size"]} '
                  f'x {b["views"]} views = {plan["images_seen"]}')
    print(f'[kNN] BackboneEmbedder(ResNet-{settings["depth"]} + '
          f'GlobalAveragePooling), k={settings["k"]}, centre crop '
          f'{settings["crop_size"]} px, bank {settings["bank_patches"]} / '
          f'queries {settings["query_patches"]} patches')


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark; returns the exit status (1 if a method failed)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [RUN_ONE]:
        run_one(*argv[1:3])
        return 0
    args = parse_args(argv)
    try:
        methods = resolve_methods(args.methods)
        if not osp.isdir(args.data_root):
            raise BenchmarkError(
                f'--data-root {args.data_root}: no such folder (make a '
                f'synthetic one with `python tools/make_synthetic_srh.py '
                f'{args.data_root}`).')
    except BenchmarkError as err:
        sys.exit(f'tools/benchmark.py: error: {err}')
    test_tool._register()
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    depth = BACKBONES[args.backbone]
    _, shared_preprocessor = shared_parts(depth)

    plans = []
    for name, path in methods:
        plan = dict(method=name, config=path and osp.relpath(path, REPO_ROOT),
                    error=None, notes=[])
        if path is not None:
            try:
                cfg, changes, budget = prepare_train_config(name, path, args,
                                                            depth)
                plan.update(cfg=cfg, changes=changes, budget=budget,
                            images_seen=args.budget
                            * budget['iters_per_epoch']
                            * budget['batch_size'] * budget['views'])
                own = cfg.model.get('data_preprocessor', None)
                if own is not None and own.to_dict() != shared_preprocessor:
                    plan['notes'].append(
                        f'{name} trains with data_preprocessor {own.to_dict()}'
                        f' but is evaluated with the shared one '
                        f'{shared_preprocessor}.')
            except Exception as err:  # recorded; the others still run
                plan['error'] = f'config: {type(err).__name__}: {err}'
        plans.append(plan)

    trained = [p for p in plans if p.get('budget')]
    first = trained[0]['budget'] if trained else None
    if first is None:
        first = dict(iters_per_epoch=0, batch_size=0, views=0,
                     train_patches=0)
    try:
        sizes = knn_split_sizes(build_eval_config(args, depth, 'probe', None,
                                                  args.k))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'tools/benchmark.py: error: the kNN evaluation data '
                 f'(bank = train split, queries = val split of '
                 f'{args.data_root}) cannot be loaded: {err}')
    k = min(args.k, sizes['bank'])
    settings = dict(
        data_root=args.data_root, budget_epochs=args.budget,
        backbone=args.backbone, depth=depth, crop_size=args.crop_size,
        patients_per_batch=args.patients_per_batch, seed=args.seed,
        workers=args.workers, k_requested=args.k, k=k,
        bank_patches=sizes['bank'], query_patches=sizes['query'],
        classes=sizes['classes'],
        iters_per_epoch=first['iters_per_epoch'],
        batch_size=first['batch_size'], views=first['views'],
        train_patches=first['train_patches'],
        images_seen=args.budget * first['iters_per_epoch']
        * first['batch_size'] * first['views'])
    notes = []
    if k < args.k:
        message = (f'k = {args.k} is larger than the kNN bank '
                   f'({sizes["bank"]} patches); using k = {k}.')
        warnings.warn(message)
        notes.append(message)
    unequal = sorted({p['images_seen'] for p in trained})
    if len(unequal) > 1:
        notes.append(f'the trained methods do not see the same number of '
                     f'images ({unequal}); compare with care.')
    if args.dry_run:
        print_plan(plans, settings)
        for note in notes:
            print(f'note: {note}')
        return 1 if any(p['error'] for p in plans) else 0

    os.makedirs(args.work_dir, exist_ok=True)
    report = dict(command=' '.join(shlex.quote(a) for a in
                                   ['python', 'tools/benchmark.py', *argv]),
                  machine=machine_info(), settings=settings, notes=notes,
                  methods=[])
    for plan in plans:
        name = plan['method']
        entry = dict(method=name, config=plan['config'], error=plan['error'],
                     images_seen=0, iterations=0, train_time_s=0.0,
                     checkpoint=None, metrics=None, notes=plan['notes'])
        report['methods'].append(entry)
        if entry['error'] is None and plan['config'] is not None:
            print(f'[benchmark] {name}: training {args.budget} epochs, '
                  f'{plan["images_seen"]} images seen '
                  f'({plan["config"]})', flush=True)
            result = run_training(name, plan['cfg'], args)
            entry['train_wall_s'] = result['wall_s']
            entry['log'] = result['log']
            if 'error' in result:
                entry['error'] = result['error']
            else:
                b = plan['budget']
                entry.update(
                    iterations=result['iterations'],
                    images_seen=result['iterations'] * b['batch_size']
                    * b['views'],
                    train_time_s=result['train_time_s'],
                    checkpoint=result['checkpoint'],
                    device=result['device'])
        if entry['error'] is None:
            print(f'[benchmark] {name}: kNN evaluation', flush=True)
            try:
                cfg = build_eval_config(args, depth, name,
                                        entry['checkpoint'], k)
                entry['metrics'] = evaluate(
                    cfg, init=entry['checkpoint'] is None)
            except Exception as err:  # keep the other methods' results
                entry['error'] = (f'kNN evaluation failed: '
                                  f'{type(err).__name__}: {err}')
        if entry['error'] is not None:
            print(f'[benchmark] {name}: FAILED: {entry["error"]}',
                  flush=True)
        else:
            acc = entry['metrics']
            print(f'[benchmark] {name}: ' + ', '.join(
                f'{lv} acc {acc[lv]["acc"]:.3f}' for lv in LEVELS),
                flush=True)
        write_outputs(report, args.work_dir)
    paths = write_outputs(report, args.work_dir)
    print(render_markdown(report))
    print('[benchmark] wrote ' + ', '.join(paths))
    failed = [e['method'] for e in report['methods'] if e['error']]
    if failed:
        print(f'[benchmark] failed: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
