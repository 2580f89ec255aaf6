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
Attributes are ranked *relative* to a reference bank by default (each
model's z-score per attribute over up to ``max_reference_patches`` patches
of the ``reference_split``, :mod:`~hlss_plugin.interpret.ranking`); every
level also reports how many items get a distinct top-k set.
:func:`~hlss_plugin.interpret.report.write_report` writes ``explain.md``
and ``explain.json``.
"""
import os.path as osp
from typing import (Dict, Iterable, Mapping, Optional, Sequence, Tuple,
                    Union)

import torch

from ..utils.arg_checks import check_int
from .attribute_explainer import AttributeExplainer
from .explain_config import load_config, view_size_from_config
from .explain_data import (LEVEL_ORDER, build_dataset, load_images,
                           patch_records, select_patches, synthetic_truth)
from .explain_error import ExplainError
from .load_checkpoint import build_models
from .ranking import check_ranking
from .scoring import (chance_precision, distinct_top_k, precision_at_k,
                      top_k_attributes)

#: Default cap on the reference bank of the relative ranking.
MAX_REFERENCE_PATCHES = 1024


def explain(cfg,
            checkpoint: str,
            data_root: Optional[str] = None,
            split: Union[str, Sequence[str]] = 'val',
            top_k: int = 5,
            max_patches: Optional[int] = None,
            batch_size: int = 32,
            view_size: Optional[Union[int, Tuple[int, int]]] = None,
            threshold: float = 0.5,
            seed: int = 0,
            ranking: str = 'relative',
            reference_split: Union[str, Sequence[str]] = 'train',
            max_reference_patches: Optional[int] = MAX_REFERENCE_PATCHES
            ) -> dict:
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
        ranking (str): ``'relative'``: attributes ranked by their z-score
            against the reference bank, per model (:mod:`~hlss_plugin.
            interpret.ranking`); ``'raw'``: by raw similarity (no bank is
            loaded). Defaults to ``'relative'``.
        reference_split (str | list[str]): Split (or patient ids) of the
            reference bank. Defaults to ``'train'``.
        max_reference_patches (int, optional): Bank patches, evenly spaced
            over the reference split; None: all. Defaults to
            :data:`MAX_REFERENCE_PATCHES`.

    Returns:
        dict: ``config``, ``checkpoint``, ``data_root``, ``split``,
        ``top_k``, ``view_size``, ``num_patches``, ``synthetic`` (bool),
        ``threshold``, ``ranking``, ``reference`` (``{'split',
        'num_patches'}``, None for ``'raw'``) and ``levels``: ``{level:
        {'attributes': names, 'items': [...], 'distinct_top_k': {...},
        'precision_at_k': {...} | None}}`` (see
        :func:`explain_level_items`).

    Raises:
        ExplainError: Not an HLSS config, checkpoint not matching it, empty
            split or reference split, ``top_k`` out of range, bad
            ``max_patches`` / ``max_reference_patches``, unknown
            ``ranking``.
    """
    cfg = load_config(cfg)
    try:
        check_int('top_k', top_k, minimum=1)
        check_int('max_patches', max_patches, minimum=1, allow_none=True)
        check_int('max_reference_patches', max_reference_patches, minimum=2,
                  allow_none=True)
    except ValueError as exc:
        raise ExplainError(str(exc)) from None
    try:
        check_ranking(ranking)
    except ValueError as exc:
        raise ExplainError(str(exc)) from exc
    trained, untrained, _ = build_models(cfg, checkpoint, seed)
    explainers = dict(
        trained=AttributeExplainer(trained, batch_size, ranking),
        untrained=AttributeExplainer(untrained, batch_size, ranking))
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
    reference = None
    if ranking == 'relative':
        reference = fit_references(explainers.values(), cfg, data_root,
                                   reference_split, max_reference_patches,
                                   view_size)

    result = dict(config=cfg.filename, checkpoint=osp.abspath(checkpoint),
                  data_root=osp.abspath(root), split=split, top_k=top_k,
                  view_size=view_size, num_patches=len(indices),
                  synthetic=truth is not None, threshold=threshold,
                  ranking=ranking, reference=reference, levels={})
    for level in levels:
        result['levels'][level] = explain_level_items(
            level, explainers, sims, records, truth, top_k)
    return result


def fit_references(explainers: Iterable[AttributeExplainer], cfg,
                   data_root: Optional[str],
                   split: Union[str, Sequence[str]],
                   max_patches: Optional[int],
                   view_size: Optional[Union[int, Tuple[int, int]]]) -> dict:
    """Load the reference bank once and fit every explainer's relative
    ranking statistics on it (each from its own model's similarities).

    Args:
        explainers (Iterable[AttributeExplainer]): Explainers to fit.
        cfg (Config): The config (dataset type and files).
        data_root (str, optional): Replaces the dataset's ``data_root``.
        split (str | list[str]): Split name or patient ids of the bank.
        max_patches (int, optional): Bank patches, evenly spaced
            (:func:`~hlss_plugin.interpret.explain_data.select_patches`).
        view_size (int | tuple, optional): Center-crop size.

    Returns:
        dict: ``{'split': split, 'num_patches': bank size}``.

    Raises:
        ExplainError: A missing or empty reference split.
    """
    try:
        dataset, _ = build_dataset(cfg, data_root, split)
    except ExplainError as exc:
        raise ExplainError(f'reference bank of ranking="relative": {exc} '
                           f'(choose another --reference-split, or '
                           f'--ranking raw)') from exc
    bank = load_images(dataset, select_patches(len(dataset), max_patches),
                       view_size)
    for explainer in explainers:
        explainer.fit_reference(bank)
    return dict(split=split, num_patches=len(bank))


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
        dict: ``attributes``; ``items``, each with ``id``, ``class``,
        ``num_patches``, ``top_k`` (``[[name, score], ...]``, the ranking
        score: z-score for ``'relative'``, similarity for ``'raw'``),
        ``similarity`` (the mean similarities of those ``k`` names),
        ``untrained_top_k`` (names) and ``ground_truth`` (names, or None);
        ``distinct_top_k`` (:func:`~hlss_plugin.interpret.scoring.
        distinct_top_k`); ``precision_at_k``
        with ``trained``, ``untrained``, ``chance``,
        ``items_with_ground_truth`` and ``items`` (None without
        ``truth``).
    """
    if level == 'patch':
        groups, id_of = None, (lambda r: r['id'])
    elif level == 'slide':
        groups, id_of = [r['slide'] for r in records], (lambda r: r['slide'])
    else:
        groups = [r['patient'] for r in records]
        id_of = lambda r: r['patient']  # noqa: E731
    names = explainers['trained'].attribute_names(level)
    column = {n: a for a, n in enumerate(names)}
    ranked, similarity = {}, None
    for name, explainer in explainers.items():
        keys, means, scores = explainer.level_scores(
            level, sims[name][level], groups)
        ranked[name] = top_k_attributes(scores, names, k)
        if name == 'trained':
            similarity = means.double().numpy()
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
            'similarity': [round(float(similarity[pos][column[n]]), 6)
                           for n, _ in ranked['trained'][pos]],
            'untrained_top_k': [n for n, _ in ranked['untrained'][pos]],
            'ground_truth': gt,
        })
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
    distinct = distinct_top_k(
        {'trained': [[a for a, _ in it['top_k']] for it in items],
         'untrained': [it['untrained_top_k'] for it in items]})
    return dict(attributes=names, items=items, distinct_top_k=distinct,
                precision_at_k=precision)
