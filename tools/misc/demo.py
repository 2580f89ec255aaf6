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

Example:
    python tools/misc/demo.py --work-dir work_dirs/demo
"""
import argparse
import os
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

from hlss_plugin.utils.arg_checks import (non_negative_int,  # noqa: E402
                                          positive_int)

CONFIG = 'configs/mmpretrain/hlss_srh_tiny.py'


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


def ensure_data(args, data_root):
    """Generate the synthetic set unless ``data_root`` already holds one."""
    from hlss_plugin.synthetic import make_synthetic_srh
    if osp.isfile(osp.join(data_root, 'meta', 'opensrh.json')):
        return 'reused', 0.0
    start = time.perf_counter()
    make_synthetic_srh(data_root, patients_per_class=args.patients_per_class,
                       slides=args.slides, patches=args.patches,
                       size=args.size, seed=args.seed)
    return 'generated', time.perf_counter() - start


def load_config(data_root, args):
    """The demo config, pointed at ``data_root``, at the demo's crop size,
    kNN ``k``, seed and workers."""
    from mmengine.config import Config

    from hlss_plugin.benchmark.overrides import set_crop_size
    from hlss_plugin.utils.config import set_data_root
    cfg = Config.fromfile(CONFIG)
    set_data_root(cfg, data_root)
    set_crop_size(cfg, args.crop_size)
    cfg.val_evaluator.k = cfg.test_evaluator.k = args.k
    cfg.randomness = dict(seed=args.seed, deterministic=False)
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].num_workers = args.num_workers
        cfg[loader].persistent_workers = args.num_workers > 0
    return cfg


def build_loader(cfg, seed):
    """Build the config's train dataloader the way mmengine's Runner does."""
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    init_default_scope('mmpretrain')
    return Runner.build_dataloader(cfg.train_dataloader, seed=seed)


def train(cfg, work_dir, max_epochs, iters_per_epoch):
    """Train with mmengine's Runner, the config's warm-up + cosine rescaled
    to ``max_epochs`` (as ``tools/benchmarks/benchmark.py`` does); returns
    (runner, seconds)."""
    from mmengine.runner import Runner

    from hlss_plugin.benchmark.overrides import rescale_schedule
    cfg.work_dir = work_dir
    if max_epochs is not None:
        rescale_schedule(cfg, max_epochs, iters_per_epoch)
    # the demo evaluates explicitly afterwards, beside the untrained model
    cfg.train_cfg.val_interval = cfg.train_cfg.max_epochs + 1
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    return runner, time.perf_counter() - start


def loss_table(scalars_path):
    """Markdown rows: mean loss per term in the first and last epoch."""
    import json
    rows = {}
    with open(scalars_path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    records = [r for r in records if 'epoch' in r and 'loss' in r]
    if not records:
        return ['(no training scalars were logged)']
    first, last = records[0]['epoch'], records[-1]['epoch']
    for r in records:
        for key, value in r.items():
            if key.startswith('loss'):
                rows.setdefault(key, {}).setdefault(r['epoch'],
                                                    []).append(value)
    lines = [f'| loss | epoch {first} | epoch {last} |', '|---|---|---|']
    for key, by_epoch in rows.items():
        a = sum(by_epoch[first]) / len(by_epoch[first])
        b = sum(by_epoch[last]) / len(by_epoch[last])
        lines.append(f'| {key} | {a:.3f} | {b:.3f} |')
    return lines


def batch_table(batch, dataset, cfg):
    """Markdown lines describing the batch's hierarchy."""
    samples = batch['data_samples']
    views = batch['inputs']
    lines = [
        f'- batch: {len(samples)} patches = {cfg.patients_per_batch} patients'
        f' × {cfg.slides_per_patient} slides × {cfg.patches_per_slide} '
        f'patches; {len(views)} views each, view tensor '
        f'{tuple(views[0].shape)} {views[0].dtype}, values in '
        f'[{float(views[0].min()):.3f}, {float(views[0].max()):.3f}]',
        '', '| patient | class | slide | patches (file names) |',
        '|---|---|---|---|'
    ]
    classes = dataset.metainfo['classes']
    rows = {}
    for s in samples:
        key = (s.patient, classes[int(s.gt_label)], s.slide)
        rows.setdefault(key, []).append(osp.basename(s.img_path))
    for (patient, label, slide), names in rows.items():
        lines.append(f'| {patient} | {label} | {slide} | '
                     f'{", ".join(names)} |')
    return lines


def save_grid(batch, path, classes):
    """Save the views as a grid: one row per patient."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    samples = batch['data_samples']
    views = batch['inputs']
    patients = list(dict.fromkeys(s.patient for s in samples))
    per_patient = len(samples) // len(patients)
    cols = per_patient * len(views)
    fig, axes = plt.subplots(len(patients), cols,
                             figsize=(1.4 * cols, 1.6 * len(patients)),
                             squeeze=False)
    for i, sample in enumerate(samples):
        row, col0 = patients.index(sample.patient), (i % per_patient) * len(
            views)
        for v, view in enumerate(views):
            ax = axes[row][col0 + v]
            ax.imshow(view[i].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f'{sample.slide.split("/")[-1]}·'
                         f'{osp.splitext(osp.basename(sample.img_path))[0][-2:]}'
                         f'·v{v}', fontsize=6)
        axes[row][0].set_ylabel(
            f'{sample.patient}\n{classes[int(sample.gt_label)]}', fontsize=7)
    fig.suptitle('one hierarchical batch: rows = patients; columns = '
                 'slide·patch·view', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_section(cfg, args, iters_per_epoch):
    """Train and describe the run in markdown lines."""
    import glob
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
    lines += knn_section(cfg, runner, args)
    if ckpts:
        lines += explanation_section(cfg, ckpts[-1], args)
    return lines


def knn_section(cfg, runner, args):
    """kNN metrics of the trained model beside the untrained backbone."""
    import copy
    from mmengine.runner import Runner
    k = cfg.val_evaluator.k
    trained = runner.val()
    plots = knn_plots(runner, args.work_dir)
    untrained_cfg = copy.deepcopy(cfg)
    untrained_cfg.work_dir = osp.join(args.work_dir, 'untrained')
    untrained_cfg.load_from = None
    untrained = Runner.from_cfg(untrained_cfg).val()
    lines = ['', '## kNN evaluation (train split = bank, val split = '
             f'queries; k = {k}, T = {cfg.val_evaluator.temperature})', '',
             '| level | metric | untrained | trained |', '|---|---|---|---|']
    for key in trained:
        level, name = key.split('/')
        lines.append(f'| {level} | {name} | {untrained[key]:.1f} | '
                     f'{trained[key]:.1f} |')
    lines += [''] + [f'![{osp.splitext(osp.basename(p))[0]}]'
                     f'({osp.relpath(p, args.work_dir)})' for p in plots]
    return lines


def knn_plots(runner, work_dir):
    """Confusion matrices and t-SNE of the trained model (the plots of
    tools/test.py); returns the PNG paths."""
    from hlss_plugin.apis import find_metric
    from hlss_plugin.evaluation.reporting import plot_confusions, plot_tsne
    results = find_metric(runner.val_evaluator).last_results
    plots = plot_confusions(results, work_dir)
    tsne = plot_tsne(results, work_dir, max_points=2000)
    return plots + ([tsne] if tsne else [])


def explanation_section(cfg, checkpoint, args):
    """Top attributes per level from the text-aligned heads (val split)."""
    from hlss_plugin.interpret import explain, markdown_lines
    data_root = cfg.train_dataloader.dataset.data_root
    result = explain(cfg, checkpoint, data_root=data_root, split='val',
                     top_k=5, max_patches=112)
    return [''] + markdown_lines(result, examples=2, heading='##')


def main(argv=None):
    args = parse_args(argv)
    import hlss_plugin  # noqa: F401  registers everything
    os.makedirs(args.work_dir, exist_ok=True)
    data_root = args.data_root or osp.join(args.work_dir, 'synthetic_srh')
    how, gen_s = ensure_data(args, data_root)
    print(f'[demo] synthetic OpenSRH data {how} at {data_root}'
          + (f' in {gen_s:.1f} s' if gen_s else ''))

    cfg = load_config(data_root, args)
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
        f'- config: `{CONFIG}`; sampler yields {len(loader)} batches per '
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


if __name__ == '__main__':
    main()
