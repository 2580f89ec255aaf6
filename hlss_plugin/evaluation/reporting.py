"""What ``tools/test.py`` writes from a hierarchical kNN evaluation.

All functions read :attr:`HierarchicalKNNMetric.last_results` (per-level
metrics and confusion matrices, every embedding and its patch metadata):

* :func:`write_metrics`: ``metrics.json`` / ``metrics.csv``,
* :func:`plot_confusions`: ``confusion_<level>.png``,
* :func:`plot_tsne`: ``tsne.png`` (scikit-learn's t-SNE),
* :func:`dump_embeddings`: an ``.npz`` of every bank and query patch.
"""
import csv
import json
import os
import os.path as osp
from typing import Dict, List, Optional

import numpy as np
import torch

__all__ = ['write_metrics', 'plot_confusions', 'plot_tsne',
           'dump_embeddings']


def write_metrics(results: dict, keys, work_dir: str) -> Dict[str, dict]:
    """Write ``metrics.json`` and ``metrics.csv`` to ``work_dir``.

    Args:
        results (dict): :attr:`HierarchicalKNNMetric.last_results`
            (``results['levels'][level][key]``, in percent).
        keys (Sequence[str]): Metric keys to write, e.g.
            ``('acc', 'top2', 'top3', 'mca', 'map')``.
        work_dir (str): Output folder.

    Returns:
        dict: ``{level: {key: value}}``, as in ``metrics.json``.

    Example:
        >>> write_metrics({'levels': {'patch': {'acc': 50.0}}}, ['acc'],
        ...               '.')  # doctest: +SKIP
        {'patch': {'acc': 50.0}}
    """
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
    """Draw one ``confusion_<level>.png`` per level (rows: true class,
    shaded by the share of the true class, counts written up to 20
    classes).

    Args:
        results (dict): :attr:`HierarchicalKNNMetric.last_results`
            (``classes``; per level ``confusion``, ``acc``, ``mca``).
        work_dir (str): Output folder.

    Returns:
        list[str]: The PNG paths.
    """
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
    """Draw ``tsne.png``: a 2-D t-SNE map (scikit-learn) of the query
    embeddings, coloured by class and by patient.

    Args:
        results (dict): :attr:`HierarchicalKNNMetric.last_results`
            (``feats`` (N, C), ``labels`` (N,), ``roles``, ``patient``...).
        work_dir (str): Output folder.
        max_points (int): At most this many query patches (a seeded random
            subset); 0 draws nothing.
        seed (int): Subset and t-SNE seed.

    Returns:
        str | None: The PNG path, or None (``max_points`` 0, or fewer than
        4 query patches).
    """
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
    """Save every patch's embedding and metadata to ``path`` (.npz).

    No pickled objects: strings are fixed-width unicode arrays. Keys:
    ``embeddings`` (N, C) float32, ``labels`` (N,) int64, ``class_names``
    (K,), ``patient``, ``slide``, ``path``, ``split`` (the bank's / query's
    split name), ``role`` (``bank`` / ``query``), ``knn_id``,
    ``patient_idx``, ``slide_idx``.

    Args:
        results (dict): :attr:`HierarchicalKNNMetric.last_results`.
        split_names (dict): ``{role: split name}``, e.g.
            ``{'bank': 'train', 'query': 'val'}``.
        path (str): Output file (numpy adds ``.npz`` when missing).

    Returns:
        str: The written file's path.
    """
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
