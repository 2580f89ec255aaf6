"""The sections of the demo's report (``tools/misc/demo.py``): the batch's
hierarchy and its image grid, the losses per level and term, the kNN
metrics of the trained and untrained model and the attribute explanations.

Each section function returns Markdown lines; :func:`save_grid` writes the
batch's PNG.
"""
import copy
import json
import os.path as osp
from typing import List

from .runner import build_runner
from .test_args import find_metric

__all__ = ['batch_table', 'explanation_section', 'knn_plots', 'knn_section',
           'loss_table', 'save_grid']


def loss_table(scalars_path: str) -> List[str]:
    """Markdown rows: mean loss per term in the first and last epoch.

    Args:
        scalars_path (str): mmengine's ``vis_data/scalars.json`` of the run.

    Returns:
        list[str]: A Markdown table (loss × first / last epoch), or one line
        saying that no training scalars were logged.
    """
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


def batch_table(batch: dict, dataset, cfg) -> List[str]:
    """Markdown lines describing the batch's hierarchy.

    Args:
        batch (dict): A collated batch: ``inputs`` (a list of V view
            tensors of shape (B, C, H, W)) and ``data_samples``.
        dataset: The hierarchical train dataset (for its class names).
        cfg (Config): The demo config (``patients_per_batch``,
            ``slides_per_patient``, ``patches_per_slide``).

    Returns:
        list[str]: One summary line and a table of patient × class × slide
        with the patches' file names.
    """
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


def save_grid(batch: dict, path: str, classes) -> None:
    """Save the views as a grid: one row per patient.

    Args:
        batch (dict): A collated batch (see :func:`batch_table`).
        path (str): The PNG to write.
        classes (Sequence[str]): Class names, indexed by ``gt_label``.
    """
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
            stem = osp.splitext(osp.basename(sample.img_path))[0]
            ax.set_title(f'{sample.slide.split("/")[-1]}·{stem[-2:]}·v{v}',
                         fontsize=6)
        axes[row][0].set_ylabel(
            f'{sample.patient}\n{classes[int(sample.gt_label)]}', fontsize=7)
    fig.suptitle('one hierarchical batch: rows = patients; columns = '
                 'slide·patch·view', fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def knn_section(cfg, runner, work_dir: str) -> List[str]:
    """kNN metrics of the trained model beside the untrained backbone.

    Args:
        cfg (Config): The training config (its ``val_evaluator`` is the
            hierarchical kNN metric).
        runner (Runner): The runner after ``train()``.
        work_dir (str): The demo's work dir; the untrained model's run goes
            to ``WORK_DIR/untrained``, the plots to ``WORK_DIR``.

    Returns:
        list[str]: A table of level × metric (untrained, trained) and the
        plots as Markdown images.
    """
    k = cfg.val_evaluator.k
    trained = runner.val()
    plots = knn_plots(runner, work_dir)
    untrained_cfg = copy.deepcopy(cfg)
    untrained_cfg.work_dir = osp.join(work_dir, 'untrained')
    untrained_cfg.load_from = None
    untrained = build_runner(untrained_cfg).val()
    lines = ['', '## kNN evaluation (train split = bank, val split = '
             f'queries; k = {k}, T = {cfg.val_evaluator.temperature})', '',
             '| level | metric | untrained | trained |', '|---|---|---|---|']
    for key in trained:
        level, name = key.split('/')
        lines.append(f'| {level} | {name} | {untrained[key]:.1f} | '
                     f'{trained[key]:.1f} |')
    lines += [''] + [f'![{osp.splitext(osp.basename(p))[0]}]'
                     f'({osp.relpath(p, work_dir)})' for p in plots]
    return lines


def knn_plots(runner, work_dir: str) -> List[str]:
    """Confusion matrices and t-SNE of the trained model (the plots of
    ``tools/test.py``).

    Args:
        runner (Runner): The runner after ``val()``.
        work_dir (str): Where the PNGs go.

    Returns:
        list[str]: The PNG paths.
    """
    from hlss_plugin.evaluation.reporting import plot_confusions, plot_tsne
    results = find_metric(runner.val_evaluator).last_results
    plots = plot_confusions(results, work_dir)
    tsne = plot_tsne(results, work_dir, max_points=2000)
    return plots + ([tsne] if tsne else [])


def explanation_section(cfg, checkpoint: str) -> List[str]:
    """Top attributes per level from the text-aligned heads (val split).

    Args:
        cfg (Config): The training config (its train data root is used).
        checkpoint (str): The trained checkpoint.

    Returns:
        list[str]: The explanations as Markdown (``##`` headings).
    """
    from hlss_plugin.interpret import explain, markdown_lines
    data_root = cfg.train_dataloader.dataset.data_root
    result = explain(cfg, checkpoint, data_root=data_root, split='val',
                     top_k=5, max_patches=112)
    return [''] + markdown_lines(result, examples=2, heading='##')
