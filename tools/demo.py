"""The README's demo: synthetic OpenSRH data → one hierarchical batch.

Runs offline on the embedded defaults:

1. writes a synthetic OpenSRH-layout dataset (7 classes × 6 patients ×
   2 slides × 12 patches) unless it already exists,
2. builds the training dataloader of
   ``configs/mmpretrain/_base_/datasets/opensrh_hierarchical.py`` exactly as
   an mmengine Runner does (``HierarchicalSampler`` + SRH pipeline),
3. draws one batch and writes ``WORK_DIR/report.md`` (the batch's
   patient → slide → patch → view layout, shapes, timings) and
   ``WORK_DIR/batch.png`` (the views as an image grid).

Example:
    python tools/demo.py --work-dir work_dirs/demo
"""
import argparse
import os
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

DATA_CFG = 'configs/mmpretrain/_base_/datasets/opensrh_hierarchical.py'


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default=None,
                        help='synthetic data folder (default: '
                        'WORK_DIR/synthetic_srh); generated if missing')
    parser.add_argument('--patients-per-class', type=int, default=6)
    parser.add_argument('--slides', type=int, default=2)
    parser.add_argument('--patches', type=int, default=12)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-workers', type=int, default=2)
    return parser.parse_args(argv)


def ensure_data(args, data_root):
    """Generate the synthetic set unless ``data_root`` already holds one."""
    from hlss_plugin.synthetic import make_synthetic_srh
    if osp.isfile(osp.join(data_root, 'meta', 'opensrh.json')):
        return 'reused', 0.0
    start = time.perf_counter()
    make_synthetic_srh(data_root, patients_per_class=args.patients_per_class,
                       slides=args.slides, patches=args.patches,
                       seed=args.seed)
    return 'generated', time.perf_counter() - start


def build_loader(data_root, num_workers, seed):
    """Build the config's train dataloader the way mmengine's Runner does."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import Runner
    cfg = Config.fromfile(DATA_CFG)
    cfg.train_dataloader.dataset.data_root = data_root
    cfg.train_dataloader.num_workers = num_workers
    cfg.train_dataloader.persistent_workers = num_workers > 0
    init_default_scope('mmpretrain')
    return cfg, Runner.build_dataloader(cfg.train_dataloader, seed=seed)


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


def main(argv=None):
    args = parse_args(argv)
    import hlss_plugin  # noqa: F401  registers everything
    os.makedirs(args.work_dir, exist_ok=True)
    data_root = args.data_root or osp.join(args.work_dir, 'synthetic_srh')
    how, gen_s = ensure_data(args, data_root)
    print(f'[demo] synthetic OpenSRH data {how} at {data_root}'
          + (f' in {gen_s:.1f} s' if gen_s else ''))

    cfg, loader = build_loader(data_root, args.num_workers, args.seed)
    dataset = loader.dataset
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
        f'- config: `{DATA_CFG}`; sampler yields {len(loader)} batches per '
        f'epoch; first batch took {first_s:.2f} s with '
        f'{args.num_workers} workers (includes worker start-up)',
    ]
    lines += batch_table(batch, dataset, cfg)
    grid = osp.join(args.work_dir, 'batch.png')
    save_grid(batch, grid, dataset.metainfo['classes'])
    lines += ['', f'![batch]({osp.basename(grid)})', '',
              'Training (HLSS model) and kNN evaluation are added to this '
              'demo by the model and evaluation issues.']
    report = osp.join(args.work_dir, 'report.md')
    with open(report, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    print(f'[demo] wrote {report} and {grid}')


if __name__ == '__main__':
    main()
