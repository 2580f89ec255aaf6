"""Bank + query patches in one dataset, for kNN evaluation in one loop."""
import copy
from typing import Dict, List, Sequence

from mmengine.dataset import BaseDataset
from mmpretrain.registry import DATASETS

ROLES = ('bank', 'query')
#: Item fields the kNN metric needs from each sub-dataset.
REQUIRED_ITEM_KEYS = ('gt_label', 'patient_idx', 'slide_idx')


@DATASETS.register_module()
class HierarchicalKNNDataset(BaseDataset):
    """The patches of a *bank* split followed by those of a *query* split.

    mmengine runs one val/test loop over one dataset; kNN evaluation needs
    the embeddings of two splits (bank = labelled reference, e.g. train;
    queries = the patches to classify, e.g. val). This dataset builds both
    hierarchical datasets from their configs and concatenates their items,
    adding to each:

    - ``knn_role``: ``'bank'`` or ``'query'``,
    - ``knn_id``: a unique int (position in the concatenation, fixed before
      any ``indices`` subset), used by ``HierarchicalKNNMetric`` to count
      every patch exactly once under DDP padding.

    Query ``patient_idx`` / ``slide_idx`` are shifted past the bank's largest
    ids, so ids are unique over the whole dataset (both sub-datasets number
    their patients from 0). The sub-datasets' own pipelines are ignored; this
    dataset's ``pipeline`` runs on every item (pack ``knn_role``, ``knn_id``,
    ``patient_idx``, ``slide_idx`` with ``PackInputs(algorithm_keys=...)``).
    A missing or corrupt patch raises (evaluation never substitutes another
    patch).

    ``metainfo`` is the bank's; both splits must have the same classes in the
    same order. :attr:`split_names` maps each role to the sub-dataset's
    split (e.g. ``{'bank': 'train', 'query': 'val'}``).

    Args:
        bank (dict): Config of the bank dataset (any hierarchical dataset,
            e.g. ``dict(type='OpenSRHDataset', data_root=...,
            split='train')``).
        query (dict): Config of the query dataset (e.g. ``split='val'``).
        pipeline (Sequence[dict]): Transforms applied to every item.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`
            (``indices``, ``serialize_data``, ``lazy_init``, ...).

    Example:
        >>> ds = HierarchicalKNNDataset(
        ...     bank=dict(type='OpenSRHDataset', data_root=root,
        ...               split='train'),
        ...     query=dict(type='OpenSRHDataset', data_root=root,
        ...                split='val'))
        >>> ds.get_data_info(0)['knn_role'], ds.split_names
        ('bank', {'bank': 'train', 'query': 'val'})
    """

    def __init__(self,
                 bank: dict,
                 query: dict,
                 pipeline: Sequence = (),
                 test_mode: bool = True,
                 **kwargs):
        for role, cfg in (('bank', bank), ('query', query)):
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise ValueError(
                    f'HierarchicalKNNDataset: {role} must be a dataset config '
                    f'dict with a "type", e.g. dict(type="OpenSRHDataset", '
                    f'data_root=..., split="train"); got {cfg!r}.')
        self.bank_cfg = copy.deepcopy(dict(bank))
        self.query_cfg = copy.deepcopy(dict(query))
        self.split_names: Dict[str, str] = {}
        self.num_items: Dict[str, int] = {}
        super().__init__(pipeline=list(pipeline), test_mode=test_mode,
                         **kwargs)

    @property
    def metainfo(self) -> dict:
        """The bank dataset's metainfo (loads the items if needed)."""
        if not self._fully_initialized:
            self.full_init()
        return copy.deepcopy(self._metainfo)

    @staticmethod
    def _build(cfg: dict, role: str):
        cfg = copy.deepcopy(cfg)
        cfg['pipeline'] = []
        cfg['lazy_init'] = False
        cfg['serialize_data'] = False
        cfg.setdefault('test_mode', True)
        dataset = DATASETS.build(cfg)
        if len(dataset) == 0:
            raise ValueError(f'HierarchicalKNNDataset: the {role} split '
                             f'({cfg.get("type")}, split='
                             f'{cfg.get("split")!r}) is empty; point it at '
                             f'a split with patches.')
        missing = [k for k in REQUIRED_ITEM_KEYS
                   if k not in dataset.data_list[0]]
        if missing:
            raise ValueError(
                f'HierarchicalKNNDataset: {role} dataset {cfg.get("type")} '
                f'items lack {missing}; use a hierarchical dataset '
                f'(OpenSRHDataset, TCGADataset, HierarchicalManifestDataset).')
        return dataset

    def load_data_list(self) -> List[dict]:
        """Build both sub-datasets and concatenate their items."""
        bank = self._build(self.bank_cfg, 'bank')
        query = self._build(self.query_cfg, 'query')
        bank_classes = tuple(bank.metainfo.get('classes') or ())
        query_classes = tuple(query.metainfo.get('classes') or ())
        if bank_classes != query_classes:
            raise ValueError(
                f'HierarchicalKNNDataset: the bank and query datasets have '
                f'different classes: bank {list(bank_classes)}, query '
                f'{list(query_classes)}. Give both the same '
                f'metainfo=dict(classes=[...]).')
        self._metainfo.update(copy.deepcopy(bank.metainfo))
        items: List[dict] = []
        offsets = dict(patient_idx=0, slide_idx=0)
        for role, dataset in (('bank', bank), ('query', query)):
            split = getattr(dataset, 'split', None)
            self.split_names[role] = split if isinstance(split, str) else role
            self.num_items[role] = len(dataset.data_list)
            top = dict(offsets)
            for raw in dataset.data_list:
                item = dict(raw)
                for key, offset in offsets.items():
                    item[key] = int(item[key]) + offset
                    top[key] = max(top[key], item[key] + 1)
                item['knn_role'] = role
                item['knn_id'] = len(items)
                items.append(item)
            offsets = top
        return items
