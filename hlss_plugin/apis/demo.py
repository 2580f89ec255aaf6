"""The README's demo (``tools/misc/demo.py``): synthetic OpenSRH data →
one hierarchical batch → HLSS training → ``WORK_DIR/report.md``.

:func:`run_demo` runs it from the tool's parsed arguments; the report's
sections are in :mod:`hlss_plugin.apis.demo_report`.
"""
import glob
import os
import os.path as osp
import time
from argparse import Namespace
from typing import List, Tuple

from .demo_report import (batch_table, explanation_section, knn_section,
                          loss_table, save_grid)
from .runner import build_runner

__all__ = ['DEMO_CONFIG', 'build_loader', 'ensure_data', 'load_demo_config',
           'run_demo', 'train', 'train_section']

#: The demo's training config (relative to the repository root).
DEMO_CONFIG = 'configs/mmpretrain/hlss_srh_tiny.py'


def ensure_data(args: Namespace, data_root: str) -> Tuple[str, float]:
    """Generate the synthetic set unless ``data_root`` already holds one.

    Args:
        args (Namespace): The demo's arguments (``patients_per_class``,
            ``slides``, ``patches``, ``size``, ``seed``).
        data_root (str): The OpenSRH-layout folder.

    Returns:
        tuple[str, float]: ``'reused'`` or ``'generated'`` and the seconds
        spent generating (0.0 when reused).
    """
    from hlss_plugin.synthetic import make_synthetic_srh
    if osp.isfile(osp.join(data_root, 'meta', 'opensrh.json')):
        return 'reused', 0.0
    start = time.perf_counter()
    make_synthetic_srh(data_root, patients_per_class=args.patients_per_class,
                       slides=args.slides, patches=args.patches,
                       size=args.size, seed=args.seed)
    return 'generated', time.perf_counter() - start


def load_demo_config(data_root: str, args: Namespace):
    """The demo config, pointed at ``data_root``, at the demo's crop size,
    kNN ``k``, seed and workers.

    Args:
        data_root (str): The OpenSRH-layout folder.
        args (Namespace): The demo's arguments (``crop_size``, ``k``,
            ``seed``, ``num_workers``).

    Returns:
        Config: The config of :data:`DEMO_CONFIG` with those overrides.
    """
    from mmengine.config import Config

    from hlss_plugin.benchmark.overrides import set_crop_size
    from hlss_plugin.utils.config import set_data_root
    cfg = Config.fromfile(DEMO_CONFIG)
    set_data_root(cfg, data_root)
    set_crop_size(cfg, args.crop_size)
    cfg.val_evaluator.k = cfg.test_evaluator.k = args.k
    cfg.randomness = dict(seed=args.seed, deterministic=False)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = args.num_workers
        cfg[loader].persistent_workers = args.num_workers > 0
    return cfg


def build_loader(cfg, seed: int):
    """Build the config's train dataloader the way mmengine's Runner does.

    Args:
        cfg (Config): The demo config.
        seed (int): The sampler's and workers' seed.

    Returns:
        DataLoader: The train dataloader.
    """
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope('mmpretrain')
    return Runner.build_dataloader(cfg.train_dataloader, seed=seed)


def train(cfg, work_dir: str, max_epochs: int, iters_per_epoch: int):
    """Train with mmengine's Runner, the config's warm-up + cosine rescaled
    to ``max_epochs`` (as ``tools/benchmarks/benchmark.py`` does).

    Validation is switched off: the demo evaluates afterwards, beside the
    untrained model.

    Args:
        cfg (Config): The demo config (changed in place).
        work_dir (str): The run's work dir (checkpoints, logs).
        max_epochs (int, optional): Training length; None keeps the
            config's schedule.
        iters_per_epoch (int): Batches per epoch of the train loader.

    Returns:
        tuple[Runner, float]: The runner after ``train()`` and the seconds
        training took.
    """
    from hlss_plugin.benchmark.overrides import rescale_schedule
    cfg.work_dir = work_dir
    if max_epochs is not None:
        rescale_schedule(cfg, max_epochs, iters_per_epoch)
    # the demo evaluates explicitly afterwards, beside the untrained model
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs + 1
    runner = build_runner(cfg)
    start = time.perf_counter()
    runner.train()
    return runner, time.perf_counter() - start


def train_section(cfg, args: Namespace, iters_per_epoch: int) -> List[str]:
    """Train, evaluate and explain; describe the run in Markdown lines.

    Args:
        cfg (Config): The demo config.
        args (Namespace): The demo's arguments (``work_dir``,
            ``max_epochs``).
        iters_per_epoch (int): Batches per epoch of the train loader.

    Returns:
        list[str]: The training, kNN and explanation sections.
    """
    work_dir = osp.join(args.work_dir, 'train')
    runner, seconds = train(cfg, work_dir, args.max_epochs,
                            iters_per_epoch)
    ckpts = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')),
                   key=lambda p: int(p.rsplit('_', 1)[1][:-4]))
    scalars = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                        'scalars.json')))
    lines = [
        '## HLSS training', '',
        f'- {runner.max_epochs} epochs, {runner.iter} iterations in '
        f'{seconds:.0f} s on this machine\'s CPU; heads: '
        + ', '.join(f'{lv} ({runner.model.heads[lv].num_attributes} '
                    f'attributes)' for lv in runner.model.levels),
        f'- last checkpoint: `{ckpts[-1] if ckpts else "none"}`', ''
    ]
    lines += loss_table(scalars[-1]) if scalars else ['(no scalars file)']
    lines += knn_section(cfg, runner, args.work_dir)
    if ckpts:
        lines += explanation_section(cfg, ckpts[-1])
    return lines


def run_demo(args: Namespace) -> str:
    """Run the demo: data, one batch and its grid, training, the report.

    Prints the report and where it was written.

    Args:
        args (Namespace): The arguments of ``tools/misc/demo.py``.

    Returns:
        str: The path of ``WORK_DIR/report.md``.
    """
    os.makedirs(args.work_dir, exist_ok=True)
    data_root = args.data_root or osp.join(args.work_dir, 'synthetic_srh')
    how, gen_s = ensure_data(args, data_root)
    print(f'[demo] synthetic OpenSRH data {how} at {data_root}'
          + (f' in {gen_s:.1f} s' if gen_s else ''))

    cfg = load_demo_config(data_root, args)
    loader = build_loader(cfg, args.seed)
    dataset = loader.dataset
    # kNN needs k <= bank size (the train split); small demo sets clip it
    cfg.val_evaluator.k = min(cfg.val_evaluator.k, len(dataset))
    hierarchy = dataset.get_hierarchy()
    start = time.perf_counter()
    batch = next(iter(loader))
    first_s = time.perf_counter() - start

    lines = [
        '# hlss_plugin demo report', '',
        f'- data: `{data_root}` ({how}'
        + (f' in {gen_s:.1f} s' if gen_s else '') + f'); train split: '
        f'{hierarchy.num_patients} patients, {hierarchy.num_slides} slides, '
        f'{hierarchy.num_items} patches, classes '
        f'{list(dataset.metainfo["classes"])}',
        f'- config: `{DEMO_CONFIG}`; sampler yields {len(loader)} batches per '
        f'epoch; first batch took {first_s:.2f} s with '
        f'{args.num_workers} workers (includes worker start-up)',
    ]
    lines += batch_table(batch, dataset, cfg)
    grid = osp.join(args.work_dir, 'batch.png')
    save_grid(batch, grid, dataset.metainfo['classes'])
    lines += ['', f'![batch]({osp.basename(grid)})', '']
    if not args.skip_train:
        lines += train_section(cfg, args, len(loader))
    report = osp.join(args.work_dir, 'report.md')
    with open(report, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    print(f'[demo] wrote {report} and {grid}')
    return report
