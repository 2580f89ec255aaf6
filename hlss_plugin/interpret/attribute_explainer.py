"""Explain HLSS embeddings through the language-aligned attribute space.

Each HLSS level head ends in an attribute projection whose first ``A`` rows
are the text embeddings of the level's named attributes, so its first ``A``
outputs are similarities to those attributes. :class:`AttributeExplainer`
turns them into top-k attribute lists:

- patch: the patch's own patch-head similarities,
- slide: the mean over the slide's patches of the slide-head similarities,
- patient: the mean over the patient's patches of the patient-head
  similarities.

:func:`explain` runs a config + checkpoint over a dataset split with a
deterministic pipeline (the config's loading / third-channel transforms,
then a center crop at the config's view size, then the config's data
preprocessor). On synthetic data (``meta/synthetic_attributes.json`` in the
data root) it also scores the top-k lists against the generator's ground
truth (:mod:`hlss_plugin.synthetic.attribute_map`) with precision@k, for the
checkpoint and for an untrained model of the same config (random init, the
same text-initialised heads), next to the chance level of a random ranking.
:func:`write_report` writes ``explain.md`` and ``explain.json``.
"""
import copy
import json
import os
import os.path as osp
from typing import (Any, Collection, Dict, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np
import torch

from ..utils.quiet_logs import quiet_logs

LEVEL_ORDER = ('patch', 'slide', 'patient')
#: Transforms kept (in the config's order) for the deterministic pipeline.
DETERMINISTIC_TRANSFORMS = ('LoadSRHPatch', 'LoadH5Patch', 'LoadPatchImage',
                            'SRHThirdChannel')
DEFAULT_PIPELINE = (dict(type='LoadSRHPatch'), dict(type='SRHThirdChannel'))
SYNTHETIC_TRUTH = osp.join('meta', 'synthetic_attributes.json')


class ExplainError(ValueError):
    """Bad input to :func:`explain` (config, checkpoint, split, top-k);
    the message names what is wrong and how to fix it."""


# ------------------------------------------------------------------ tensors
def center_crop(img: torch.Tensor, size: Union[int, Sequence[int]]
                ) -> torch.Tensor:
    """Central ``size`` window of the last two dimensions (plain slicing).

    Args:
        img (Tensor): ``(..., H, W)``.
        size (int | tuple[int, int]): Output ``h`` (= ``w`` for an int) or
            ``(h, w)``; must not exceed ``(H, W)``.

    Returns:
        Tensor: ``(..., h, w)``, a view of ``img``; with an odd margin the
        extra pixel is left at the bottom / right.

    Raises:
        ValueError: If the image is smaller than ``size``.

    Example:
        >>> center_crop(torch.arange(16.).reshape(4, 4), 2)
        tensor([[ 5.,  6.],
                [ 9., 10.]])
    """
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    height, width = img.shape[-2:]
    if h > height or w > width:
        raise ValueError(f'center_crop: a {height}x{width} image is smaller '
                         f'than the {h}x{w} crop; use a smaller view size.')
    top, left = (height - h) // 2, (width - w) // 2
    return img[..., top:top + h, left:left + w]


def aggregate_by_group(scores: torch.Tensor, groups: Sequence
                       ) -> Tuple[list, torch.Tensor]:
    """Mean of ``scores`` rows per group, groups in first-seen order.

    Args:
        scores (Tensor): ``(N, A)``.
        groups (Sequence): ``N`` hashable group keys (slide or patient ids).

    Returns:
        tuple[list, Tensor]: The ``G`` distinct keys and their ``(G, A)``
        mean scores.

    Example:
        >>> keys, means = aggregate_by_group(torch.tensor([[1., 0.],
        ...     [3., 2.], [5., 5.]]), ['a', 'a', 'b'])
        >>> keys, means.tolist()
        (['a', 'b'], [[2.0, 1.0], [5.0, 5.0]])
    """
    if scores.dim() != 2 or scores.shape[0] != len(groups):
        raise ValueError(f'aggregate_by_group: expected scores (N, A) with '
                         f'N = {len(groups)} groups entries, got '
                         f'{tuple(scores.shape)}.')
    index: Dict[Any, int] = {}
    codes = torch.tensor([index.setdefault(g, len(index)) for g in groups],
                         dtype=torch.long)
    sums = torch.zeros(len(index), scores.shape[1], dtype=scores.dtype)
    sums.index_add_(0, codes, scores)
    counts = torch.bincount(codes, minlength=len(index)).to(scores.dtype)
    return list(index), sums / counts[:, None]


def top_k_attributes(scores: torch.Tensor, names: Sequence[str],
                     k: int) -> List[List[Tuple[str, float]]]:
    """The ``k`` highest-scoring attributes of every row.

    Ties keep the attribute order (stable sort).

    Args:
        scores (Tensor): ``(G, A)`` similarities.
        names (Sequence[str]): The ``A`` attribute names.
        k (int): ``1 <= k <= A``.

    Returns:
        list[list[tuple[str, float]]]: Per row, ``k`` ``(name, score)``
        pairs, best first.

    Example:
        >>> top_k_attributes(torch.tensor([[0.1, 0.7, 0.3]]), 'abc', 2)
        [[('b', 0.7...), ('c', 0.3...)]]
    """
    if scores.dim() != 2 or scores.shape[1] != len(names):
        raise ValueError(f'top_k_attributes: scores {tuple(scores.shape)} do '
                         f'not match {len(names)} attribute names.')
    if not 1 <= k <= len(names):
        raise ValueError(f'top_k_attributes: k={k} must be in [1, '
                         f'{len(names)}].')
    values = scores.detach().cpu().double().numpy()
    order = np.argsort(-values, axis=1, kind='stable')[:, :k]
    return [[(names[a], float(row[a])) for a in ranks]
            for row, ranks in zip(values, order)]


def precision_at_k(top: Sequence[Sequence[str]],
                   truth: Sequence[Optional[Collection[str]]],
                   k: int) -> Tuple[Optional[float], int]:
    """Mean of ``|top-k ∩ truth| / k`` over items with a non-empty truth.

    Args:
        top (Sequence[Sequence[str]]): Per item, its ranked attribute names
            (only the first ``k`` count).
        truth (Sequence[Collection[str] | None]): Per item, the ground-truth
            names; items whose set is empty or None are left out.
        k (int): Cut-off, >= 1.

    Returns:
        tuple[float | None, int]: Precision@k (None when no item counts)
        and the number of items that counted.

    Example:
        >>> precision_at_k([['a', 'b'], ['c', 'd'], ['e', 'f']],
        ...                [{'a', 'x'}, {'c', 'd'}, set()], k=2)
        (0.75, 2)
    """
    if len(top) != len(truth):
        raise ValueError(f'precision_at_k: {len(top)} ranked lists for '
                         f'{len(truth)} ground-truth sets.')
    if k < 1:
        raise ValueError(f'precision_at_k: k must be >= 1, got {k}.')
    hits = [len(set(t[:k]) & set(g)) / k for t, g in zip(top, truth) if g]
    return (float(np.mean(hits)) if hits else None), len(hits)


def chance_precision(truth: Sequence[Optional[Collection[str]]],
                     names: Sequence[str]) -> Optional[float]:
    """Expected precision@k of a uniformly random ranking (any ``k``):
    mean over items with a non-empty truth of ``|truth| / A``."""
    rates = [len(set(g) & set(names)) / len(names) for g in truth if g]
    return float(np.mean(rates)) if rates else None


# -------------------------------------------------------------- explainer
class AttributeExplainer:
    """Attribute similarities and top-k explanations of one HLSS model.

    Args:
        model (nn.Module): An HLSS-like model: ``data_preprocessor``,
            ``extract_feat(inputs) -> (N, C)``, ``levels`` and ``heads``
            whose ``forward`` returns ``(z, s)`` and which carry
            ``attribute_names`` / ``num_attributes``. Put in eval mode.
        batch_size (int): Patches per forward pass. Defaults to 32.

    Example:
        >>> explainer = AttributeExplainer(model)
        >>> sims = explainer.similarities(images)   # {level: (N, A)}
        >>> items = explainer.explain_level('slide', sims['slide'],
        ...                                 slide_ids, k=5)
    """

    def __init__(self, model: torch.nn.Module, batch_size: int = 32):
        heads = getattr(model, 'heads', None)
        levels = tuple(getattr(model, 'levels', ()))
        if heads is None or not levels:
            raise ExplainError(
                f'explain needs an HLSS model with text-aligned heads '
                f'(model.heads per level); got {type(model).__name__}.')
        for level in levels:
            names = getattr(heads[level], 'attribute_names', None)
            if not names or len(names) != heads[level].num_attributes:
                raise ExplainError(
                    f'the {level} head has no attribute names; build it '
                    f'through HLSS (heads=dict({level}=dict(attributes=...)))'
                    f' so its outputs are tied to named attributes.')
        if int(batch_size) < 1:
            raise ExplainError(f'batch_size must be >= 1, got {batch_size}.')
        self.model = model.eval()
        self.levels = levels
        self.batch_size = int(batch_size)

    def attribute_names(self, level: str) -> List[str]:
        """Names of the ``A`` attributes of ``level`` in head-row order."""
        return list(self.model.heads[level].attribute_names)

    @torch.no_grad()
    def similarities(self, images: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Similarities of every image to every level's named attributes.

        Args:
            images (Tensor): ``(N, C, H, W)`` pipeline outputs (before the
                data preprocessor, which is applied here).

        Returns:
            dict[str, Tensor]: ``{level: (N, A_level)}``: the first ``A``
            head outputs (the rows tied to named attributes).
        """
        out: Dict[str, List[torch.Tensor]] = {lv: [] for lv in self.levels}
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size]
            data = self.model.data_preprocessor(
                {'inputs': batch, 'data_samples': None}, False)
            feats = self.model.extract_feat(data['inputs'])
            for level in self.levels:
                head = self.model.heads[level]
                _, s = head(feats)
                out[level].append(s[:, :head.num_attributes].float().cpu())
        return {lv: torch.cat(v) for lv, v in out.items()}

    def explain_level(self, level: str, patch_scores: torch.Tensor,
                      groups: Optional[Sequence] = None,
                      k: int = 5) -> Tuple[list, List[List[Tuple[str,
                                                                 float]]]]:
        """Top-k attributes per item of a level.

        Args:
            level (str): The head whose scores these are.
            patch_scores (Tensor): ``(N, A)`` per-patch similarities from
                :meth:`similarities`.
            groups (Sequence, optional): ``N`` group keys (slide or patient
                id per patch); None: every patch is its own item.
            k (int): Attributes per item.

        Returns:
            tuple[list, list]: Item keys (group keys, or patch positions)
            and their top-k ``(name, mean similarity)`` lists.
        """
        if groups is None:
            keys, scores = list(range(patch_scores.shape[0])), patch_scores
        else:
            keys, scores = aggregate_by_group(patch_scores, groups)
        return keys, top_k_attributes(scores, self.attribute_names(level), k)


# --------------------------------------------------------- config helpers
def _walk_dicts(node: Any):
    if isinstance(node, Mapping):
        yield node
        node = list(node.values())
    if isinstance(node, (list, tuple)):
        for child in node:
            yield from _walk_dicts(child)


def view_size_from_config(cfg) -> Optional[Union[int, Tuple[int, int]]]:
    """Training view size of a config's train pipeline.

    ``SRHAugment``'s ``crop_size``, else the size of its
    ``random_resized_crop`` op (224 with the default ops), else the size of
    any ``random_resized_crop`` / ``RandomResizedCrop`` in the pipeline;
    None when nothing sets one (the whole patch is used).
    """
    from hlss_plugin.datasets.transforms.srh_augment import DEFAULT_OPS
    pipeline = cfg.get('train_dataloader', {}).get('dataset',
                                                   {}).get('pipeline', [])
    for node in _walk_dicts(pipeline):
        if node.get('type') == 'SRHAugment':
            if node.get('crop_size') is not None:
                return node['crop_size']
            ops = node.get('ops') or DEFAULT_OPS
            for op in ops:
                if isinstance(op, Mapping) and op.get(
                        'type') == 'random_resized_crop':
                    return _as_size(op.get('size', 224))
    for node in _walk_dicts(pipeline):
        if node.get('type') in ('random_resized_crop', 'RandomResizedCrop'):
            return _as_size(node.get('size', node.get('scale')))
    return None


def _as_size(size):
    if isinstance(size, (list, tuple)):
        return tuple(int(s) for s in size)
    return int(size)


def eval_pipeline(cfg) -> List[dict]:
    """Deterministic pipeline: the config's loading and third-channel
    transforms (:data:`DETERMINISTIC_TRANSFORMS`, in order), or
    :data:`DEFAULT_PIPELINE` when the config has no loading transform."""
    pipeline = cfg.get('train_dataloader', {}).get('dataset',
                                                   {}).get('pipeline', [])
    kept = [dict(t) for t in pipeline if isinstance(t, Mapping)
            and t.get('type') in DETERMINISTIC_TRANSFORMS]
    if not any(t['type'].startswith('Load') for t in kept):
        return [dict(t) for t in DEFAULT_PIPELINE]
    return kept


def check_hlss_config(cfg) -> None:
    """Raise :class:`ExplainError` unless ``cfg.model`` has HLSS heads
    (``HLSS`` or ``HLSSAuxWrapper``)."""
    from mmpretrain.registry import MODELS

    from hlss_plugin.models.algorithms.hlss import HLSS
    from hlss_plugin.models.algorithms.hlss_aux_wrapper import HLSSAuxWrapper
    model_cfg = cfg.get('model', None)
    if not isinstance(model_cfg, Mapping) or 'type' not in model_cfg:
        raise ExplainError(f'config {cfg.filename}: no model.type; explain '
                           f'needs an HLSS model with text-aligned heads.')
    kind = model_cfg['type']
    cls = kind if isinstance(kind, type) else MODELS.get(kind)
    if not (isinstance(cls, type) and issubclass(cls, (HLSS,
                                                       HLSSAuxWrapper))):
        raise ExplainError(
            f'config {cfg.filename}: model.type is {kind!r}; explain needs '
            f'HLSS text-aligned heads (model.type="HLSS", e.g. '
            f'configs/mmpretrain/hlss_srh_tiny.py, or "HLSSAuxWrapper", e.g. '
            f'configs/mmpretrain/simclr_hlss_srh.py), whose outputs are '
            f'similarities to named attributes.')


def load_state_dict_strict(model: torch.nn.Module, checkpoint: str) -> dict:
    """Load ``checkpoint`` into ``model``; every key must match.

    Accepts an mmengine checkpoint (``{'state_dict': ..., 'meta': ...,
    ...}``, as ``tools/train.py`` writes) or a bare state dict, read with
    ``torch.load(weights_only=True)``; a DDP ``module.`` prefix is removed.

    Returns:
        dict: The checkpoint's ``meta`` (empty when it has none).

    Raises:
        ExplainError: Unreadable file, or missing / unexpected keys or
            shape mismatches (listed) against the config's model.
    """
    if not osp.isfile(checkpoint):
        raise ExplainError(f'checkpoint {checkpoint!r}: no such file.')
    try:
        data = torch.load(checkpoint, map_location='cpu', weights_only=True)
    except Exception as exc:
        raise ExplainError(
            f'checkpoint {checkpoint}: cannot be read with torch.load('
            f'weights_only=True) ({type(exc).__name__}: {exc}). Train with '
            f'PlainCheckpointHook in custom_hooks, or save '
            f'{{"state_dict": model.state_dict()}}.') from exc
    meta = {}
    if isinstance(data, Mapping) and isinstance(data.get('state_dict'),
                                                Mapping):
        state, meta = data['state_dict'], data.get('meta') or {}
    elif isinstance(data, Mapping) and data and all(
            isinstance(v, torch.Tensor) for v in data.values()):
        state = data
    else:
        raise ExplainError(f'checkpoint {checkpoint}: expected an mmengine '
                           f'checkpoint with "state_dict" or a bare state '
                           f'dict of tensors.')
    if state and all(k.startswith('module.') for k in state):
        state = {k[len('module.'):]: v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f'{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}'
              for k in own if k in state
              and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for what, keys in (('missing keys', missing),
                           ('unexpected keys', unexpected),
                           ('shape mismatches (checkpoint vs config)',
                            shapes)):
            if keys:
                more = f' ... (+{len(keys) - 8})' if len(keys) > 8 else ''
                parts.append(f'{len(keys)} {what}: {keys[:8]}{more}')
        raise ExplainError(
            f'checkpoint {checkpoint} does not match the config\'s model; '
            + '; '.join(parts) + '. Use the config the checkpoint was '
            'trained with.')
    model.load_state_dict(state, strict=True)
    return dict(meta)


# ------------------------------------------------------------------- data
def _build_dataset(cfg, data_root: Optional[str], split):
    from mmpretrain.registry import DATASETS
    template = cfg.get('train_dataloader', {}).get('dataset', None)
    if not isinstance(template, Mapping) or 'type' not in template:
        raise ExplainError(f'config {cfg.filename}: no '
                           f'train_dataloader.dataset to take the dataset '
                           f'type and files from.')
    ds_cfg = copy.deepcopy(dict(template))
    for key in ('indices', 'serialize_data'):
        ds_cfg.pop(key, None)
    if data_root is not None:
        if not osp.isdir(data_root):
            raise ExplainError(f'--data-root {data_root!r}: no such folder.')
        ds_cfg['data_root'] = data_root
    ds_cfg.update(split=split, pipeline=eval_pipeline(cfg),
                  on_bad_patch='raise', test_mode=True)
    try:
        dataset = DATASETS.build(ds_cfg)
        dataset.full_init()
    except ValueError as exc:
        raise ExplainError(f'split {split!r} of {ds_cfg.get("data_root")}: '
                           f'{exc}') from exc
    if len(dataset) == 0:
        raise ExplainError(f'split {split!r} of {ds_cfg.get("data_root")} '
                           f'has no patches; choose another --split.')
    return dataset, ds_cfg.get('data_root')


def select_patches(num: int, max_patches: Optional[int]) -> List[int]:
    """All indices, or ``max_patches`` evenly spaced ones (the dataset is
    patient-major, so every part of the split stays represented)."""
    if max_patches is None or max_patches >= num:
        return list(range(num))
    return sorted({int(round(x))
                   for x in np.linspace(0, num - 1, max_patches)})


def _load_images(dataset, indices, view_size) -> torch.Tensor:
    images = []
    for i in indices:
        img = dataset[i]['img']
        img = torch.as_tensor(img).float()
        if view_size is not None:
            try:
                img = center_crop(img, view_size)
            except ValueError as exc:
                raise ExplainError(f'{dataset.get_data_info(i)["img_path"]}:'
                                   f' {exc} (view_size={view_size}).') from exc
        images.append(img)
    return torch.stack(images)


def _patch_records(dataset, indices, data_root) -> List[dict]:
    classes = dataset.metainfo['classes']
    records = []
    for i in indices:
        info = dataset.get_data_info(i)
        for key in ('img_path', 'patient', 'slide', 'gt_label'):
            if key not in info:
                raise ExplainError(f'{type(dataset).__name__} items have no '
                                   f'{key!r}; explain needs a hierarchical '
                                   f'dataset (patient / slide ids).')
        rel = osp.relpath(info['img_path'], data_root).replace(os.sep, '/')
        records.append(dict(id=rel, patient=str(info['patient']),
                            slide=str(info['slide']),
                            cls=str(classes[int(info['gt_label'])])))
    return records


def _synthetic_truth(data_root: str, records: List[dict], threshold: float
                     ) -> Optional[Dict[str, Dict[str, List[str]]]]:
    """``{level: {item id: ground-truth names}}`` or None off synthetic."""
    from hlss_plugin.synthetic.attribute_map import ground_truth_sets
    path = osp.join(data_root, SYNTHETIC_TRUTH)
    if not osp.isfile(path):
        return None
    with open(path, encoding='utf-8') as f:
        truth = json.load(f)['patients']
    values: Dict[str, Dict[str, Mapping]] = {lv: {} for lv in LEVEL_ORDER}
    for r in records:
        pid = r['patient']
        slide = r['slide'][len(pid) + 1:] if r['slide'].startswith(
            pid + '/') else r['slide']
        try:
            patient = truth[pid]
            values['patient'][pid] = patient['attributes']
            values['slide'][r['slide']] = patient['slides'][slide][
                'attributes']
            values['patch'][r['id']] = patient['slides'][slide]['patches'][
                r['id']]
        except KeyError as exc:
            raise ExplainError(f'{path} has no ground truth for patch '
                               f'{r["id"]} (missing key {exc}); regenerate '
                               f'the data with make_synthetic_srh.') from exc
    out = {}
    for level, table in values.items():
        sets = ground_truth_sets(list(table.values()), level, threshold)
        out[level] = dict(zip(table, sets))
    return out


# --------------------------------------------------------------- explain
def _load_config(cfg):
    from mmengine.config import Config
    if isinstance(cfg, str):
        if not osp.isfile(cfg):
            raise ExplainError(f'config file {cfg!r} not found.')
        return Config.fromfile(cfg)
    return copy.deepcopy(cfg)


def build_models(cfg, checkpoint: str, seed: int = 0):
    """``(trained, untrained, meta)``: the config's model with random init
    (seeded) before and after loading ``checkpoint``."""
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS

    import hlss_plugin  # noqa: F401  (registers the model)
    init_default_scope('mmpretrain')
    check_hlss_config(cfg)
    with torch.random.fork_rng(), quiet_logs():  # caller's RNG untouched
        torch.manual_seed(seed)
        model = MODELS.build(copy.deepcopy(cfg.model))
        model.init_weights()
    untrained = copy.deepcopy(model)
    meta = load_state_dict_strict(model, checkpoint)
    return model.eval(), untrained.eval(), meta


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
    cfg = _load_config(cfg)
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

    dataset, root = _build_dataset(cfg, data_root, split)
    indices = select_patches(len(dataset), max_patches)
    if view_size is None:
        view_size = view_size_from_config(cfg)
    images = _load_images(dataset, indices, view_size)
    records = _patch_records(dataset, indices, root)
    truth = _synthetic_truth(root, records, threshold)
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


# ---------------------------------------------------------------- report
def _fmt(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:.3f}'


def summary_lines(result: dict) -> List[str]:
    """One line per level: precision@k trained / untrained / chance and the
    number of distinct top-k sets (trained / untrained)."""
    k = result['top_k']
    lines = [f'explained {result["num_patches"]} patches of split '
             f'{result["split"]!r} ({result["data_root"]}), top-{k}']
    for level, entry in result['levels'].items():
        p = entry['precision_at_k']
        distinct = (f'distinct top-{k} sets '
                    f'{entry["distinct_top_k"]["trained"]} trained / '
                    f'{entry["distinct_top_k"]["untrained"]} untrained')
        if p is None:
            lines.append(f'  {level}: {len(entry["items"])} items, '
                         f'{distinct} (no ground truth: not synthetic data)')
        else:
            lines.append(
                f'  {level}: precision@{k} trained {_fmt(p["trained"])}, '
                f'untrained {_fmt(p["untrained"])}, chance '
                f'{_fmt(p["chance"])} ({p["items_with_ground_truth"]}/'
                f'{p["items"]} items with ground truth; {distinct})')
    return lines


def _examples(items: List[dict], n: int) -> List[dict]:
    """Up to ``n`` items, one per class first, in item order."""
    chosen, seen = [], set()
    for item in items:
        if item['class'] not in seen:
            seen.add(item['class'])
            chosen.append(item)
    for item in items:
        if len(chosen) >= n:
            break
        if item not in chosen:
            chosen.append(item)
    return chosen[:n]


def markdown_lines(result: dict, examples: int = 4,
                   heading: str = '#') -> List[str]:
    """The explanation as markdown: precision table and example items per
    level (``heading`` is the top heading's prefix, e.g. ``'##'`` to nest
    it in another report)."""
    k = result['top_k']
    sub = heading + '#'
    lines = [f'{heading} Attribute explanations', '',
             f'- checkpoint `{result["checkpoint"]}`; split '
             f'`{result["split"]}` of `{result["data_root"]}`: '
             f'{result["num_patches"]} patches, center crop '
             f'{result["view_size"]}',
             '- patch: its patch-head similarities; slide / patient: mean '
             'over its patches of the slide- / patient-head similarities '
             '(named attributes only)']
    if result['synthetic']:
        lines += [
            f'- ground truth: text attributes mapped from generator '
            f'attributes whose z-score over the split\'s items of the level '
            f'is > {result["threshold"]} (or < -{result["threshold"]} for '
            f'"low" entries); precision@{k} = mean |top-{k} ∩ truth| / {k} '
            f'over items with a non-empty truth; untrained = same config, '
            f'random init, same text-initialised heads; chance = random '
            f'ranking', '',
            f'| level | precision@{k} trained | untrained | chance | items '
            f'with truth | distinct top-{k} sets (trained / untrained) |',
            '|---|---|---|---|---|---|']
        for level, entry in result['levels'].items():
            p = entry['precision_at_k']
            lines.append(f'| {level} | {_fmt(p["trained"])} | '
                         f'{_fmt(p["untrained"])} | {_fmt(p["chance"])} | '
                         f'{p["items_with_ground_truth"]}/{p["items"]} | '
                         f'{entry["distinct_top_k"]["trained"]} / '
                         f'{entry["distinct_top_k"]["untrained"]} |')
    for level, entry in result['levels'].items():
        lines += ['', f'{sub} {level} ({len(entry["items"])} items, '
                  f'{len(entry["attributes"])} attributes)', '',
                  f'| id | class | top-{k} (similarity) | ground truth |',
                  '|---|---|---|---|']
        for item in _examples(entry['items'], examples):
            top = ', '.join(f'{n} ({s:.2f})' for n, s in item['top_k'])
            gt = item['ground_truth']
            gt = '—' if gt is None else (', '.join(gt) or '(none)')
            lines.append(f'| {item["id"]} | {item["class"]} | {top} | '
                         f'{gt} |')
    return lines


def write_report(result: dict, out_dir: str,
                 examples: int = 4) -> Tuple[str, str]:
    """Write ``out_dir/explain.md`` and ``out_dir/explain.json``.

    Returns:
        tuple[str, str]: The markdown and JSON paths.
    """
    os.makedirs(out_dir, exist_ok=True)
    md_path = osp.join(out_dir, 'explain.md')
    json_path = osp.join(out_dir, 'explain.json')
    with open(md_path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(markdown_lines(result, examples)) + '\n')
    with open(json_path, 'w', encoding='utf-8') as f:
        json.dump(result, f, indent=1)
        f.write('\n')
    return md_path, json_path
