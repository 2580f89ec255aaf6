"""The patches an explanation runs on: the split's dataset, an even
subset of its patches, their center-cropped pipeline outputs, their
patient / slide records and, on synthetic data, the generator's ground
truth per patch, slide and patient."""
import copy
import json
import os
import os.path as osp
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .explain_config import eval_pipeline
from .explain_error import ExplainError
from .scoring import center_crop

LEVEL_ORDER = ('patch', 'slide', 'patient')
SYNTHETIC_TRUTH = osp.join('meta', 'synthetic_attributes.json')


def build_dataset(cfg, data_root: Optional[str], split):
    """The config's training dataset type and files, on ``split``, with the
    deterministic pipeline (:func:`eval_pipeline`) and no index subset.

    Args:
        cfg (Config): The config (``train_dataloader.dataset``).
        data_root (str, optional): Replaces the dataset's ``data_root``.
        split (str | list[str]): Split name or patient ids.

    Returns:
        tuple: ``(dataset, data_root)``, the dataset fully initialised.

    Raises:
        ExplainError: No training dataset in the config, a missing
            ``data_root``, a bad or empty split.

    Example:
        >>> dataset, root = build_dataset(cfg, 'data/srh', 'val')
    """
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
    patient-major, so every part of the split stays represented).

    Example:
        >>> select_patches(100, 5)
        [0, 25, 50, 74, 99]
    """
    if max_patches is None or max_patches >= num:
        return list(range(num))
    return sorted({int(round(x))
                   for x in np.linspace(0, num - 1, max_patches)})


def load_images(dataset, indices: Sequence[int],
                view_size: Optional[Union[int, Tuple[int, int]]]
                ) -> torch.Tensor:
    """The pipeline outputs of ``indices``, center-cropped and stacked.

    Float images become ``float32``; integer ones (raw ``uint16`` patches
    of ``LoadSRHPatchRaw``) keep their dtype for the model's data
    preprocessor to convert.

    Args:
        dataset: A dataset whose items have ``img`` ``(C, H, W)``.
        indices (Sequence[int]): Items to load.
        view_size (int | tuple, optional): :func:`center_crop` size; None
            keeps the whole patch.

    Returns:
        Tensor: ``(N, C, h, w)``.

    Raises:
        ExplainError: A patch smaller than ``view_size`` (names the file).

    Example:
        >>> load_images(dataset, [0, 5], 224).shape
        torch.Size([2, 3, 224, 224])
    """
    images = []
    for i in indices:
        img = torch.as_tensor(dataset[i]['img'])
        if img.is_floating_point():
            img = img.float()
        if view_size is not None:
            try:
                img = center_crop(img, view_size)
            except ValueError as exc:
                raise ExplainError(f'{dataset.get_data_info(i)["img_path"]}:'
                                   f' {exc} (view_size={view_size}).') from exc
        images.append(img)
    return torch.stack(images)


def patch_records(dataset, indices: Sequence[int],
                  data_root: str) -> List[dict]:
    """Per patch ``id`` (path relative to ``data_root``), ``patient``,
    ``slide`` and ``cls`` (class name).

    Raises:
        ExplainError: The dataset's items lack patient / slide ids.

    Example:
        >>> patch_records(dataset, [0], 'data/srh')[0]['patient']
        'SYN0001'
    """
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


def synthetic_truth(data_root: str, records: List[dict], threshold: float
                    ) -> Optional[Dict[str, Dict[str, List[str]]]]:
    """Ground truth of synthetic data
    (:data:`SYNTHETIC_TRUTH` in ``data_root``).

    Args:
        data_root (str): The dataset folder.
        records (list[dict]): :func:`patch_records`.
        threshold (float): z-score threshold of
            :func:`~hlss_plugin.synthetic.attribute_map.ground_truth_sets`.

    Returns:
        dict | None: ``{level: {item id: ground-truth names}}``, or None
        off synthetic data.

    Raises:
        ExplainError: A patch with no ground truth in the file.

    Example:
        >>> synthetic_truth('data/synthetic', records, 0.5)['slide']
        {'SYN0001/1': ['high vascularity'], ...}
    """
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
