"""Each benchmark run's training config and the shared kNN config."""
import argparse
import copy
import os.path as osp
import time
from typing import Any, Dict, List, Optional, Tuple

from mmengine.config import Config

from ..apis.tool_error import ToolError
from ..apis.train_args import merge_args
from ..utils.config import set_data_root, walk_config
from .budget import train_budget
from .methods import CONFIG_DIR
from .overrides import (rescale_schedule, set_backbone_depth, set_crop_size,
                        set_patients_per_batch)
from .report import knn_split_stats
from .variants import MethodSpec, apply_variant

__all__ = ['EVAL_BASE', 'RUNNER_KEYS', 'SHARED_BASE', 'build_eval_config',
           'curve_hook', 'knn_data', 'prepare_train_config', 'run_dir',
           'shared_parts']

#: Backbone, data preprocessor and evaluation data shared by every method.
SHARED_BASE = osp.join(CONFIG_DIR, '_base_', 'srh_pretrain.py')
EVAL_BASE = osp.join(CONFIG_DIR, '_base_', 'datasets', 'opensrh_knn_eval.py')
#: Config keys the Runner reads; changes to other (top-level helper
#: variables) are applied too but not listed by --dry-run.
RUNNER_KEYS = ('model', 'train_dataloader', 'val_dataloader',
               'test_dataloader', 'val_evaluator', 'test_evaluator',
               'train_cfg', 'val_cfg', 'test_cfg', 'param_scheduler',
               'optim_wrapper', 'default_hooks', 'custom_hooks',
               'randomness', 'work_dir', 'visualizer')


def _set(container: dict, key: str, value: Any, path: str,
         changes: Dict[str, Tuple[Any, Any]]) -> None:
    old = container.get(key, None)
    if old != value:
        container[key] = value
        changes[path] = (copy.deepcopy(old), value)


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
        cfg = merge_args(cfg, train_args)
    except ToolError as err:
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
    (:func:`~hlss_plugin.benchmark.report.knn_split_stats`)."""
    from mmpretrain.registry import DATASETS
    dataset_cfg = copy.deepcopy(cfg.test_dataloader.dataset)
    dataset_cfg['pipeline'] = []
    dataset = DATASETS.build(dataset_cfg)
    dataset.full_init()
    items = (dataset.get_data_info(i) for i in range(len(dataset)))
    return knn_split_stats(items, len(dataset.metainfo.get('classes') or ())
                           or 1)
