#!/usr/bin/env python
"""Train self-supervised methods on one budget and compare them by kNN.

Run from the repository root::

    python tools/benchmark.py --data-root DIR --methods hlss simclr ...
        --budget EPOCHS --work-dir DIR [--preset cpu] [--make-data]
        [--backbone {resnet18,resnet50}] [--crop-size 96]
        [--patients-per-batch 4] [--seeds N | --seed-list S ... | --seed S]
        [--workers 2] [--k 200] [--eval-every E] [--dry-run]

Methods (``random`` is the untrained backbone, a floor): see
:data:`METHOD_CONFIGS`, plus ablation variants of the HLSS heads
(``hlss_no_ha``, ``hlss:bridge=mlp``, ...; see
:mod:`hlss_plugin.utils.benchmark_variants`). Every method is trained on the
same budget: the same number of epochs of the same ``HierarchicalSampler``
(P patients × 2 slides × 2 patches per batch, 2 views each; same seed,
hence the same patches in the same order), the same backbone
(``--backbone``: ResNet depth and every channel count that follows its
width, see ``hlss_plugin.utils.benchmark_overrides``), the same view size
(``--crop-size``: ``SRHAugment`` crop and kNN centre crop), the same
optimiser settings of the configs and the same warm-up + cosine schedule
rescaled to the budget. Images seen = iterations × batch size × views is
printed before and recorded after training. Validation is off while
training; one checkpoint is written at the end.

``--seeds N`` trains and evaluates every method with seeds ``0 .. N-1``
(``randomness.seed`` and the sampler's seed: model init, augmentation and
patch order; ``random`` gets a different init per seed) and reports
mean ± std over seeds. ``--preset NAME`` takes its defaults from
:data:`hlss_plugin.utils.benchmark_presets.PRESETS` (flags given override
them); ``--make-data`` writes the preset's synthetic data set when the data
root does not exist. ``--eval-every E`` adds a ``KNNCurveHook`` to every
training run: the kNN evaluation below, loss terms and collapse
diagnostics every ``E`` epochs and at epoch 0 (``curve.jsonl`` in the run's
work dir; ``curves.png``).

Each method and seed trains in its own subprocess (this script with
``--run-one``; log in ``WORK_DIR/<method>/seed<S>/train.log``), so a crash
or a leak in one run cannot touch the others. Then every checkpoint is
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
  that spread (:mod:`hlss_plugin.utils.benchmark_report`),
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
from hlss_plugin.utils.benchmark_presets import (  # noqa: E402
    PRESETS, data_spec, resolve_seeds, resolve_settings)
from hlss_plugin.utils.benchmark_report import (  # noqa: E402
    LEVELS, finalize, knn_split_stats, plot_accuracy,
    plot_curves, render_markdown)
from hlss_plugin.utils.benchmark_variants import (  # noqa: E402
    MethodSpec, apply_variant, parse_method)
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
RUN_ONE = '--run-one'
#: Where --make-data writes when --data-root is not given.
DATA_DIR_NAME = 'synthetic_srh'
#: Config keys the Runner reads; changes to other (top-level helper
#: variables) are applied too but not listed by --dry-run.
RUNNER_KEYS = ('model', 'train_dataloader', 'val_dataloader',
               'test_dataloader', 'val_evaluator', 'test_evaluator',
               'train_cfg', 'val_cfg', 'test_cfg', 'param_scheduler',
               'optim_wrapper', 'default_hooks', 'custom_hooks',
               'randomness', 'work_dir', 'visualizer')
#: Settings resolved from flags, the preset and the defaults.
SETTING_FLAGS = ('backbone', 'crop_size', 'patients_per_batch', 'budget',
                 'k', 'workers', 'eval_every', 'seeds')


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
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None).

    The settings of :data:`SETTING_FLAGS` are resolved from the flags, the
    ``--preset`` and the defaults
    (:func:`~hlss_plugin.utils.benchmark_presets.resolve_settings`);
    ``args.sources`` says where each came from and ``args.seeds`` is the
    list of seeds.
    """
    parser = argparse.ArgumentParser(
        description='Train self-supervised methods on one budget and '
        'compare them with the hierarchical kNN metric.')
    parser.add_argument('--preset', choices=sorted(PRESETS), default=None,
                        help='named defaults (hlss_plugin/utils/'
                        'benchmark_presets.py); flags given override them')
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
    parser.add_argument('--budget', type=int, default=None,
                        metavar='EPOCHS', help='epochs for every method '
                        '(required unless the preset sets it)')
    parser.add_argument('--work-dir', required=True, metavar='DIR',
                        help='folder for runs and the benchmark report')
    parser.add_argument('--backbone', choices=sorted(BACKBONES),
                        default=None, help='default: resnet18')
    parser.add_argument('--crop-size', type=int, default=None, metavar='PX',
                        help='training view and kNN centre crop size '
                        '(default: 96)')
    parser.add_argument('--patients-per-batch', type=int, default=None,
                        metavar='P', help='default: 4')
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument('--seeds', type=int, default=None, metavar='N',
                       help='train and evaluate with seeds 0..N-1; report '
                       'mean ± std (default: 1, seed 0)')
    seeds.add_argument('--seed-list', type=int, nargs='+', default=None,
                       metavar='S', help='these seeds')
    seeds.add_argument('--seed', type=int, default=None,
                       help='one seed (same as --seed-list S)')
    parser.add_argument('--workers', type=int, default=None,
                        help='dataloader workers (default: 2)')
    parser.add_argument('--k', type=int, default=None,
                        help='kNN neighbours, clipped to the bank size '
                        '(default: 200)')
    parser.add_argument('--eval-every', type=int, default=None, metavar='E',
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
    args = parser.parse_args(argv)
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


def resolve_methods(
        names: List[str]) -> List[Tuple[MethodSpec, Optional[str]]]:
    """``[(spec, config path or None for random)]`` in the given order.

    Raises:
        BenchmarkError: For an unknown or repeated name (a variant and its
            named form count as the same), bad variant options or a missing
            config file; the message lists the valid names.
    """
    methods = []
    seen: Dict[Any, str] = {}
    unknown, repeated = [], []
    for name in names:
        if name == RANDOM:
            spec = MethodSpec(RANDOM, RANDOM)
        else:
            try:
                spec = parse_method(name, METHOD_CONFIGS)
            except ValueError as err:
                if ':' in name or any(name.startswith(b + '_')
                                      for b in METHOD_CONFIGS):
                    raise BenchmarkError(str(err)) from None
                unknown.append(name)
                continue
        if spec.key in seen:
            repeated.append(name if seen[spec.key] == name
                            else f'{name} (= {seen[spec.key]})')
            continue
        seen[spec.key] = name
        methods.append(spec)
    if unknown:
        raise BenchmarkError(
            f'unknown method(s) {", ".join(unknown)}; valid names: '
            f'{", ".join([RANDOM, *METHOD_CONFIGS])} (and HLSS variants, '
            f'e.g. hlss_no_ha or hlss:bridge=mlp; see docs/benchmark.md).')
    if repeated:
        raise BenchmarkError(f'method(s) given twice: '
                             f'{", ".join(sorted(repeated))}.')
    dirs = [s.dir_name for s in methods]
    clash = sorted({d for d in dirs if dirs.count(d) > 1})
    if clash:
        raise BenchmarkError(f'methods share the folder name(s) {clash}; '
                             f'rename one of them.')
    out = []
    for spec in methods:
        path = None
        if spec.base != RANDOM:
            path = osp.join(CONFIG_DIR, METHOD_CONFIGS[spec.base])
            if not osp.isfile(path):
                present = [RANDOM] + [
                    n for n, f in METHOD_CONFIGS.items()
                    if osp.isfile(osp.join(CONFIG_DIR, f))]
                raise BenchmarkError(
                    f'method {spec.name}: config '
                    f'{osp.relpath(path, REPO_ROOT)} not found; methods '
                    f'with a config here: {", ".join(present)}.')
        out.append((spec, path))
    return out


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


def run_dir(args: argparse.Namespace, spec: MethodSpec, seed: int) -> str:
    """``WORK_DIR/<method folder>/seed<seed>``."""
    return osp.join(args.work_dir, spec.dir_name, f'seed{seed}')


def curve_hook(args: argparse.Namespace, depth: int, k: int) -> dict:
    """The ``KNNCurveHook`` config of ``--eval-every``: the final kNN
    evaluation's data, metric and shared preprocessor."""
    eval_cfg = build_eval_config(args, depth, args.work_dir, None, k, 0)
    _, preprocessor = shared_parts(depth)
    return dict(type='KNNCurveHook', interval=args.eval_every,
                dataloader=eval_cfg.test_dataloader.to_dict(),
                evaluator=eval_cfg.test_evaluator.to_dict(),
                data_preprocessor=preprocessor)


def prepare_train_config(spec: MethodSpec, path: str,
                         args: argparse.Namespace, depth: int, seed: int,
                         budget: Optional[dict] = None,
                         hook: Optional[dict] = None):
    """Load ``path`` and apply the benchmark's overrides for one seed.

    Args:
        spec (MethodSpec): The method (variant options are applied).
        path (str): Its config file.
        args (Namespace): Resolved command line.
        depth (int): ResNet depth.
        seed (int): ``randomness.seed`` and the training sampler's seed.
        budget (dict, optional): :func:`train_budget` of an earlier seed
            (computed when None).
        hook (dict, optional): A ``KNNCurveHook`` config to add.

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
    changes.update(apply_variant(cfg, spec.options))
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
    # The Runner passes randomness.seed to a sampler without its own seed;
    # set it anyway so a config's explicit sampler seed cannot win.
    if isinstance(loader.get('sampler', None), dict):
        _set(loader.sampler, 'seed', seed, 'train_dataloader.sampler.seed',
             changes)
    if budget is None:
        budget = train_budget(cfg, seed)
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
         dict(seed=seed, deterministic=False, diff_rank_seed=False),
         'randomness', changes)
    if hook is not None:
        hooks = list(cfg.get('custom_hooks', None) or [])
        changes['custom_hooks'] = (
            f'{len(hooks)} hook(s)',
            f'{len(hooks)} + KNNCurveHook(interval={hook["interval"]})')
        cfg.custom_hooks = hooks + [copy.deepcopy(hook)]
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    work_dir = osp.join(run_dir(args, spec, seed), 'train')
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


def build_eval_config(args: argparse.Namespace, depth: int, out_dir: str,
                      checkpoint: Optional[str], k: int,
                      seed: int) -> Config:
    """The kNN evaluation config: identical for every method but for the
    checkpoint (and the seed, which only matters for ``random``'s init)."""
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
    cfg.work_dir = osp.join(out_dir, 'knn')
    cfg.experiment_name = f'benchmark_knn_{time.time_ns()}'
    cfg.randomness = dict(seed=seed)
    cfg.log_level = 'WARNING'
    cfg.env_cfg = dict(cudnn_benchmark=False,
                       dist_cfg=dict(backend='nccl'))
    cfg.default_hooks = dict(logger=dict(type='LoggerHook', interval=50))
    cfg.visualizer = dict(type='UniversalVisualizer',
                          vis_backends=[dict(type='LocalVisBackend')])
    return cfg


def knn_data(cfg: Config) -> Dict[str, Any]:
    """Sizes and chance levels of an evaluation config's kNN data
    (:func:`~hlss_plugin.utils.benchmark_report.knn_split_stats`)."""
    from mmpretrain.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset_cfg['pipeline'] = []
    dataset = DATASETS.build(dataset_cfg)
    dataset.full_init()
    items = (dataset.get_data_info(i) for i in range(len(dataset)))
    return knn_split_stats(items, len(dataset.metainfo.get('classes') or ())
                           or 1)


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


def _runner_part(cfg: Config) -> dict:
    """What a training run depends on: the Runner's keys, less the work
    dir (helper variables of the config file are left out)."""
    return {key: cfg.get(key) for key in RUNNER_KEYS if key != 'work_dir'}


def _reusable(config_path: str, cfg: Config, result_path: str,
              out_dir: str) -> Optional[dict]:
    """The result of a finished run in ``out_dir`` that trained exactly what
    ``cfg`` trains (same Runner keys but the work dir), else None."""
    if not (osp.isfile(config_path) and osp.isfile(result_path)):
        return None
    try:
        old = Config.fromfile(config_path)
    except Exception:
        return None
    if _runner_part(old) != _runner_part(cfg):
        return None
    with open(result_path) as f:
        result = json.load(f)
    # the run's files live in its own folder (which may have moved since
    # the result was written): never follow a path out of it
    for key in ('checkpoint', 'curve'):
        path = result.get(key)
        here = path and osp.join(out_dir, 'train', osp.basename(path))
        result[key] = here if here and osp.isfile(here) else None
    return result if result.get('checkpoint') else None


def run_training(out_dir: str, name: str, cfg: Config, seed: int,
                 reuse: bool = False) -> dict:
    """Train ``cfg`` in a subprocess; returns its result (or the error).

    With ``reuse`` a finished run in ``out_dir`` whose dumped config has the
    same Runner keys (model, data, schedule, hooks, seed; not the work dir)
    is returned as it is (``reused=True``).
    """
    os.makedirs(out_dir, exist_ok=True)
    config_path = osp.join(out_dir, f'{name}_benchmark_config.py')
    result_path = osp.join(out_dir, 'train_result.json')
    log_path = osp.join(out_dir, 'train.log')
    if reuse:
        result = _reusable(config_path, cfg, result_path, out_dir)
        if result is not None:
            result.update(wall_s=result.get('wall_s', 0.0), log=log_path,
                          reused=True)
            return result
    cfg.dump(config_path)
    if osp.exists(result_path):
        os.remove(result_path)
    env = dict(os.environ)
    env.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    env['PYTHONHASHSEED'] = str(seed)
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
    result['wall_s'] = wall
    with open(result_path, 'w') as f:
        json.dump(result, f)
    result.update(log=log_path)
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
    """Child process: train one dumped config and write its result json.

    ``train_time_s`` excludes the time a ``KNNCurveHook`` spent evaluating
    (``curve_eval_s``).
    """
    import hlss_plugin  # noqa: F401
    from hlss_plugin.engine.hooks import KNNCurveHook
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
    curves = [h for h in runner.hooks if isinstance(h, KNNCurveHook)]
    eval_s = sum(h.eval_seconds for h in curves)
    device = str(next(runner.model.parameters()).device)
    with open(result_path, 'w') as f:
        json.dump(dict(train_time_s=seconds - eval_s, curve_eval_s=eval_s,
                       curve=curves[0].path if curves else None,
                       iterations=int(runner.iter), epochs=int(runner.epoch),
                       checkpoint=checkpoint, device=device), f, indent=2)


# --------------------------------------------------------------- evaluation
def evaluate(cfg: Config, init: bool) -> Tuple[dict, dict]:
    """Run the kNN test loop of ``cfg``.

    Args:
        cfg (Config): From :func:`build_eval_config`.
        init (bool): Initialise the weights first (the untrained backbone,
            as every method starts).

    Returns:
        tuple[dict, dict]: ``{level: {metric key: fraction in [0, 1]}}`` and
        the :func:`~hlss_plugin.evaluation.functional.embedding_diagnostics`
        of the evaluated (bank + query) embeddings.
    """
    from hlss_plugin.evaluation.functional import embedding_diagnostics
    runner = train_tool.build_runner(cfg)
    if init:
        runner.model.init_weights()
    metrics = runner.test()
    nested: Dict[str, Dict[str, float]] = {}
    for key, value in metrics.items():
        level, name = key.split('/', 1)
        nested.setdefault(level, {})[name] = float(value) / 100.0
    results = test_tool.find_metric(runner.test_loop.evaluator).last_results
    if results.get('missing_classes'):
        warnings.warn(f'kNN: query classes without bank patches: '
                      f'{results["missing_classes"]}')
    return nested, embedding_diagnostics(results['feats'])


def read_curve_file(path: Optional[str]) -> Optional[List[dict]]:
    """The records of a run's ``curve.jsonl`` (None without one)."""
    from hlss_plugin.engine.hooks import read_curve
    if not path or not osp.isfile(path):
        return None
    return read_curve(path)


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


def write_outputs(report: dict, work_dir: str) -> List[str]:
    """Write ``benchmark.md``, ``benchmark.json``, ``benchmark.png`` and,
    with learning curves, ``curves.png``."""
    finalize(report)
    paths = [osp.join(work_dir, f'benchmark.{ext}')
             for ext in ('md', 'json', 'png')]
    with open(paths[0], 'w') as f:
        f.write(render_markdown(report))
    with open(paths[1], 'w') as f:
        json.dump(report, f, indent=2)
    plot_accuracy(report, paths[2])
    curves = plot_curves(report, osp.join(work_dir, 'curves.png'))
    return paths + ([curves] if curves else [])


# --------------------------------------------------------------------- main
def _show(value: Any) -> str:
    if isinstance(value, dict) and 'type' in value:
        keys = [k for k in ('begin', 'end', 'T_max', 'by_epoch',
                            'loss_weight', 'detach') if k in value]
        return (f'{value["type"]}(' + ', '.join(f'{k}={value[k]}'
                                                for k in keys) + ')')
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + '...'


def print_settings(args: argparse.Namespace) -> None:
    """The resolved settings and where each came from (``--dry-run``)."""
    print(f'[settings] preset: {args.preset or "none"}')
    for name in SETTING_FLAGS:
        print(f'  {name}: {getattr(args, name)!r} ({args.sources[name]})')
    if args.make_data:
        print(f'  make-data: {data_spec(vars(args))!r} -> {args.data_root}'
              + (' (exists: used as it is)' if osp.isdir(args.data_root)
                 else ''))


def print_plan(plans: List[dict], settings: dict) -> None:
    """The resolved overrides of every method (``--dry-run``)."""
    for plan in plans:
        print(f'[{plan["method"]}] {plan["config"] or "untrained backbone"}'
              + (f' + {dict(plan["options"])}' if plan['options'] else ''))
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
                  f'x {b["views"]} views = {plan["images_seen"]} (per seed)')
    print(f'[seeds] {settings["seeds"]} (overrides shown for seed '
          f'{settings["seeds"][0]})')
    print(f'[kNN] BackboneEmbedder(ResNet-{settings["depth"]} + '
          f'GlobalAveragePooling), k={settings["k"]}, centre crop '
          f'{settings["crop_size"]} px, bank {settings["bank_patches"]} / '
          f'queries {settings["query_patches"]} patches'
          + (f'; curves every {settings["eval_every"]} epoch(s)'
             if settings['eval_every'] else ''))


def make_data(args: argparse.Namespace) -> Optional[dict]:
    """``--make-data``: write the synthetic set when the root is missing."""
    if not args.make_data or osp.isdir(args.data_root):
        return None
    from hlss_plugin.synthetic import make_synthetic_srh
    spec = data_spec(vars(args))
    print(f'[benchmark] writing synthetic data {spec} to {args.data_root}',
          flush=True)
    make_synthetic_srh(args.data_root, **spec)
    return spec


def plan_methods(methods, args, depth: int, hook: Optional[dict],
                 shared_preprocessor: dict) -> List[dict]:
    """Resolve every method's config (first seed) and budget."""
    plans = []
    for spec, path in methods:
        plan = dict(method=spec.name, spec=spec, options=list(spec.options),
                    config=path and osp.relpath(path, REPO_ROOT),
                    error=None, notes=[])
        if path is not None:
            try:
                cfg, changes, budget = prepare_train_config(
                    spec, path, args, depth, args.seeds[0], hook=hook)
                plan.update(path=path, changes=changes, budget=budget,
                            images_seen=args.budget
                            * budget['iters_per_epoch']
                            * budget['batch_size'] * budget['views'])
                own = cfg.model.get('data_preprocessor', None)
                if own is not None and own.to_dict() != shared_preprocessor:
                    plan['notes'].append(
                        f'{spec.name} trains with data_preprocessor '
                        f'{own.to_dict()} but is evaluated with the shared '
                        f'one {shared_preprocessor}.')
            except Exception as err:  # recorded; the others still run
                plan['error'] = f'config: {type(err).__name__}: {err}'
        plans.append(plan)
    return plans


def run_seed(plan: dict, seed: int, args, depth: int, k: int,
             hook: Optional[dict]) -> dict:
    """Train (unless random) and evaluate one method with one seed."""
    spec = plan['spec']
    out_dir = run_dir(args, spec, seed)
    run = dict(seed=seed, error=None, images_seen=0, iterations=0,
               train_time_s=0.0, checkpoint=None, metrics=None,
               diagnostics=None)
    if plan['config'] is not None:
        print(f'[benchmark] {spec.name} seed {seed}: training {args.budget} '
              f'epochs, {plan["images_seen"]} images seen '
              f'({plan["config"]})', flush=True)
        try:
            cfg, _, _ = prepare_train_config(spec, plan['path'], args, depth,
                                             seed, budget=plan['budget'],
                                             hook=hook)
        except Exception as err:
            run['error'] = f'config: {type(err).__name__}: {err}'
            return run
        result = run_training(out_dir, spec.dir_name, cfg, seed,
                              reuse=args.reuse)
        if result.get('reused'):
            print(f'[benchmark] {spec.name} seed {seed}: reused the finished '
                  f'training in {out_dir}', flush=True)
        run.update(train_wall_s=result['wall_s'], log=result['log'])
        if 'error' in result:
            run['error'] = result['error']
            return run
        b = plan['budget']
        run.update(iterations=result['iterations'],
                   images_seen=result['iterations'] * b['batch_size']
                   * b['views'],
                   train_time_s=result['train_time_s'],
                   curve_eval_s=result.get('curve_eval_s', 0.0),
                   checkpoint=result['checkpoint'],
                   device=result['device'], curve_path=result.get('curve'),
                   curve=read_curve_file(result.get('curve')))
    print(f'[benchmark] {spec.name} seed {seed}: kNN evaluation', flush=True)
    try:
        cfg = build_eval_config(args, depth, out_dir, run['checkpoint'], k,
                                seed)
        run['metrics'], run['diagnostics'] = evaluate(
            cfg, init=run['checkpoint'] is None)
    except Exception as err:  # keep the other runs' results
        run['error'] = (f'kNN evaluation failed: {type(err).__name__}: '
                        f'{err}')
    return run


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmark; returns the exit status (1 if a run failed)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [RUN_ONE]:
        run_one(*argv[1:3])
        return 0
    args = parse_args(argv)
    try:
        methods = resolve_methods(args.methods)
        if not osp.isdir(args.data_root) and not args.make_data:
            raise BenchmarkError(
                f'--data-root {args.data_root}: no such folder (add '
                f'--make-data to write a synthetic one there, or make it '
                f'with `python tools/make_synthetic_srh.py '
                f'{args.data_root}`).')
    except BenchmarkError as err:
        sys.exit(f'tools/benchmark.py: error: {err}')
    if args.dry_run:
        print_settings(args)
        if not osp.isdir(args.data_root):
            print(f'[data] {args.data_root} does not exist yet; run without '
                  f'--dry-run to write it, then the per-method budgets can '
                  f'be shown.')
            return 0
    else:
        make_data(args)
    test_tool._register()
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    depth = BACKBONES[args.backbone]
    _, shared_preprocessor = shared_parts(depth)
    try:
        data = knn_data(build_eval_config(args, depth, args.work_dir, None,
                                          args.k, args.seeds[0]))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'tools/benchmark.py: error: the kNN evaluation data '
                 f'(bank = train split, queries = val split of '
                 f'{args.data_root}) cannot be loaded: {err}')
    k = min(args.k, data['bank']['patches'])
    hook = curve_hook(args, depth, k) if args.eval_every else None
    plans = plan_methods(methods, args, depth, hook, shared_preprocessor)

    trained = [p for p in plans if p.get('budget')]
    first = trained[0]['budget'] if trained else dict(
        iters_per_epoch=0, batch_size=0, views=0, train_patches=0)
    settings = dict(
        data_root=args.data_root, preset=args.preset,
        sources=args.sources, budget_epochs=args.budget,
        backbone=args.backbone, depth=depth, crop_size=args.crop_size,
        patients_per_batch=args.patients_per_batch, seeds=args.seeds,
        workers=args.workers, k_requested=args.k, k=k,
        eval_every=args.eval_every,
        bank_patches=data['bank']['patches'],
        query_patches=data['query']['patches'], classes=data['classes'],
        knn_data=data, iters_per_epoch=first['iters_per_epoch'],
        batch_size=first['batch_size'], views=first['views'],
        train_patches=first['train_patches'],
        images_seen=args.budget * first['iters_per_epoch']
        * first['batch_size'] * first['views'])
    notes = []
    if k < args.k:
        message = (f'k = {args.k} is larger than the kNN bank '
                   f'({data["bank"]["patches"]} patches); using k = {k}.')
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
        entry = dict(method=plan['method'], base=plan['spec'].base,
                     options=plan['options'], config=plan['config'],
                     error=plan['error'], notes=plan['notes'], runs=[])
        report['methods'].append(entry)
        if plan['error'] is not None:
            print(f'[benchmark] {plan["method"]}: FAILED: {plan["error"]}',
                  flush=True)
            write_outputs(report, args.work_dir)
            continue
        for seed in args.seeds:
            run = run_seed(plan, seed, args, depth, k, hook)
            entry['runs'].append(run)
            if run['error'] is not None:
                print(f'[benchmark] {plan["method"]} seed {seed}: FAILED: '
                      f'{run["error"]}', flush=True)
            else:
                acc = ', '.join(f'{lv} acc {run["metrics"][lv]["acc"]:.3f}'
                                for lv in LEVELS)
                print(f'[benchmark] {plan["method"]} seed {seed}: {acc}',
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
