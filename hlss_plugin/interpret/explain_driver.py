"""``explain``: top-k attributes of every patch, slide and patient of a
split, for a checkpoint and an untrained model of its config.

:func:`explain` runs a config + checkpoint over a dataset split with a
deterministic pipeline (the config's loading / third-channel transforms,
:func:`~hlss_plugin.interpret.explain_config.eval_pipeline`), a center crop
at the config's view size, then the model's own data preprocessor in its
evaluation mode (for ``hlss_srh_fast.py``'s
``SRHBatchAugmentPreprocessor``: third channel and normalisation of the raw
``uint16`` patches, no augmentation). On synthetic data
(``meta/synthetic_attributes.json`` in the data root) it also scores the
top-k lists against the generator's ground truth
(:mod:`hlss_plugin.synthetic.attribute_map`) with precision@k, for the
checkpoint and for an untrained model of the same config (random init, the
same text-initialised heads), next to the chance level of a random ranking.
:func:`~hlss_plugin.interpret.report.write_report` writes ``explain.md``
and ``explain.json``.
"""
import os.path as osp
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from .attribute_explainer import AttributeExplainer
from .explain_config import load_config, view_size_from_config
from .explain_data import (LEVEL_ORDER, build_dataset, load_images,
                           patch_records, select_patches, synthetic_truth)
from .explain_error import ExplainError
from .load_checkpoint import build_models
from .scoring import chance_precision, precision_at_k


def explain(cfg,
            checkpoint: str,
            data_root: Optional[str] = None,
            split: Union[str, Sequence[str]] = 'val',
            top_k: int = 5,
            max_patches: Optional[int] = None,
            batch_size: int = 32,
            view_size: Optional[Union[int, Tuple[int, int]]] = None,
            threshold: float = 0.5,
            seed: int = 0) -> dict:
    """Top-k attributes of every patch, slide and patient of a split.

    Args:
        cfg (str | Config): An HLSS config (path or loaded).
        checkpoint (str): Checkpoint of that config (mmengine's, as
            ``tools/train.py`` writes, or ``{'state_dict': ...}``).
        data_root (str, optional): Replaces the dataset's ``data_root``.
        split (str | list[str]): Split name or patient ids. Defaults to
            ``'val'``.
        top_k (int): Attributes per item; at most the smallest level's
            attribute count. Defaults to 5.
        max_patches (int, optional): Use at most this many patches, evenly
            spaced over the split (slides / patients aggregate over those).
        batch_size (int): Patches per forward pass. Defaults to 32.
        view_size (int | tuple, optional): Center-crop size; defaults to
            the config's training view size (:func:`view_size_from_config`).
        threshold (float): Ground-truth z-score threshold (synthetic data;
            see :func:`~hlss_plugin.synthetic.attribute_map.
            ground_truth_sets`). Defaults to 0.5.
        seed (int): Seed of the untrained model's random init. Defaults
            to 0.

    Returns:
        dict: ``config``, ``checkpoint``, ``data_root``, ``split``,
        ``top_k``, ``view_size``, ``num_patches``, ``synthetic`` (bool),
        ``threshold`` and ``levels``: ``{level: {'attributes': names,
        'items': [...], 'distinct_top_k': {...}, 'precision_at_k': {...} |
        None}}``. Each item has
        ``id``, ``class``, ``num_patches``, ``top_k`` (``[[name,
        similarity], ...]``), ``untrained_top_k`` (names) and
        ``ground_truth`` (names, or None off synthetic data);
        ``distinct_top_k`` counts the different top-k sets per model (1:
        the ranking does not depend on the image); ``precision_at_k``
        holds ``trained``, ``untrained``, ``chance``,
        ``items_with_ground_truth`` and ``items`` (None off synthetic
        data).

    Raises:
        ExplainError: Not an HLSS config, checkpoint not matching it, empty
            split, ``top_k`` out of range, bad ``max_patches``.
    """
    cfg = load_config(cfg)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ExplainError(f'top_k must be a positive int, got {top_k!r}.')
    if max_patches is not None and (not isinstance(max_patches, int)
                                    or max_patches < 1):
        raise ExplainError(f'max_patches must be a positive int or None, '
                           f'got {max_patches!r}.')
    trained, untrained, _ = build_models(cfg, checkpoint, seed)
    explainers = dict(trained=AttributeExplainer(trained, batch_size),
                      untrained=AttributeExplainer(untrained, batch_size))
    levels = [lv for lv in LEVEL_ORDER if lv in trained.levels] + [
        lv for lv in trained.levels if lv not in LEVEL_ORDER]
    sizes = {lv: trained.heads[lv].num_attributes for lv in levels}
    if top_k > min(sizes.values()):
        raise ExplainError(f'top_k={top_k} is larger than the number of '
                           f'attributes of a level ({sizes}); use --top-k '
                           f'<= {min(sizes.values())}.')

    dataset, root = build_dataset(cfg, data_root, split)
    indices = select_patches(len(dataset), max_patches)
    if view_size is None:
        view_size = view_size_from_config(cfg)
    images = load_images(dataset, indices, view_size)
    records = patch_records(dataset, indices, root)
    truth = synthetic_truth(root, records, threshold)
    sims = {name: e.similarities(images) for name, e in explainers.items()}

    result = dict(config=cfg.filename, checkpoint=osp.abspath(checkpoint),
                  data_root=osp.abspath(root), split=split, top_k=top_k,
                  view_size=view_size, num_patches=len(indices),
                  synthetic=truth is not None, threshold=threshold,
                  levels={})
    for level in levels:
        result['levels'][level] = explain_level_items(
            level, explainers, sims, records, truth, top_k)
    return result


def explain_level_items(level: str, explainers: Mapping[str,
                                                         AttributeExplainer],
                        sims: Mapping[str, Mapping[str, torch.Tensor]],
                        records: Sequence[Mapping[str, str]],
                        truth: Optional[Mapping[str, Mapping[str, list]]],
                        k: int) -> dict:
    """Items, top-k lists and precision@k of one level.

    Args:
        level (str): ``'patch'``, ``'slide'`` or ``'patient'``; slides and
            patients aggregate the patches whose record names them.
        explainers (Mapping[str, AttributeExplainer]): ``'trained'`` and
            ``'untrained'``.
        sims (Mapping): ``{model name: {level: (N, A)}}`` per-patch
            similarities, rows in ``records`` order.
        records (Sequence[Mapping]): Per patch ``id``, ``patient``,
            ``slide`` and ``cls`` (class name).
        truth (Mapping, optional): ``{level: {item id: names}}`` or None.
        k (int): Attributes per item.

    Returns:
        dict: ``attributes``, ``items``, ``distinct_top_k`` (how many
        different top-k sets each model gives; 1 means the ranking ignores
        the image) and ``precision_at_k`` (None without ``truth``).
    """
    if level == 'patch':
        groups, id_of = None, (lambda r: r['id'])
    elif level == 'slide':
        groups, id_of = [r['slide'] for r in records], (lambda r: r['slide'])
    else:
        groups = [r['patient'] for r in records]
        id_of = lambda r: r['patient']  # noqa: E731
    ranked = {}
    for name, explainer in explainers.items():
        keys, ranked[name] = explainer.explain_level(level, sims[name][level],
                                                     groups, k)
    first = {}
    for r in records:
        first.setdefault(id_of(r), r)
    counts: Dict[str, int] = {}
    for r in records:
        counts[id_of(r)] = counts.get(id_of(r), 0) + 1
    items = []
    for pos, key in enumerate(keys):
        record = records[key] if groups is None else first[key]
        item_id = id_of(record)
        gt = None if truth is None else truth[level].get(item_id, [])
        items.append({
            'id': item_id,
            'class': record['cls'],
            'num_patches': counts[item_id],
            'top_k': [[n, round(s, 6)] for n, s in ranked['trained'][pos]],
            'untrained_top_k': [n for n, _ in ranked['untrained'][pos]],
            'ground_truth': gt,
        })
    names = explainers['trained'].attribute_names(level)
    precision = None
    if truth is not None:
        gts = [it['ground_truth'] for it in items]
        trained_p, n = precision_at_k(
            [[a for a, _ in it['top_k']] for it in items], gts, k)
        untrained_p, _ = precision_at_k(
            [it['untrained_top_k'] for it in items], gts, k)
        precision = dict(trained=trained_p, untrained=untrained_p,
                         chance=chance_precision(gts, names),
                         items_with_ground_truth=n, items=len(items))
    distinct = dict(
        trained=len({frozenset(a for a, _ in it['top_k']) for it in items}),
        untrained=len({frozenset(it['untrained_top_k']) for it in items}))
    return dict(attributes=names, items=items, distinct_top_k=distinct,
                precision_at_k=precision)
