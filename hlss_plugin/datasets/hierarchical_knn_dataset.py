"""Bank + query patches in one dataset, for kNN evaluation in one loop."""
import copy
import logging
import os.path as osp
from typing import Dict, List, Sequence, Tuple

from mmengine.dataset import BaseDataset
from mmengine.logging import print_log
from mmpretrain.registry import DATASETS

from ..errors import BadPatchError

ROLES = ('bank', 'query')
#: Attributes that say which files a hierarchical dataset reads.
_SOURCE_ATTRS = ('meta_file', 'split_file', 'manifest')
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

    Bad patches: each role follows the ``on_bad_patch`` of its own config
    (``bank=dict(..., on_bad_patch='skip')``; default ``'raise'``), so a
    split is read with one policy wherever it is read: give the bank the
    policy of the training dataset that reads the same split
    (``_base_/datasets/opensrh_knn_eval.py`` does: ``'skip'`` for the train
    split; ``PreflightHook`` refuses a mismatch before training).

    - ``'raise'``: a missing or corrupt patch stops the evaluation with a
      :class:`~hlss_plugin.errors.BadPatchError` naming the file, the role
      and the key to change.
    - ``'skip'``: the patch is **left out** of the evaluation (logged with
      its path, counted in :attr:`num_skipped`). Its item is served as a
      copy of a neighbouring item that loads, *with that item's*
      ``knn_id``; ``HierarchicalKNNMetric`` counts every ``knn_id`` once, so
      the copy adds nothing and the bad patch simply has no vote (bank) or
      prediction (query). Evaluation never lets another patch stand in for
      it. At most ``max_bad_patch_retries`` neighbours are tried.

    ``metainfo`` is the bank's; both splits must have the same classes in the
    same order, and no patient (by id) may be in both: a query would be
    matched against patches of its own patient, so the sets are checked and
    an overlap raises ``ValueError`` naming the patients and split files.
    :attr:`split_names` maps each role to the sub-dataset's split (e.g.
    ``{'bank': 'train', 'query': 'val'}``).

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
        #: ``on_bad_patch`` of each role's dataset (``'raise'`` / ``'skip'``).
        self.on_bad_patch: Dict[str, str] = {}
        self.max_bad_patch_retries: Dict[str, int] = {}
        #: Which split of which files each role reads (see
        #: :func:`split_source`).
        self.split_sources: Dict[str, tuple] = {}
        #: Bad patches left out in this process (``'skip'``).
        self.num_skipped = 0
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
        self._check_disjoint(bank, query)
        self._metainfo.update(copy.deepcopy(bank.metainfo))
        items: List[dict] = []
        offsets = dict(patient_idx=0, slide_idx=0)
        for role, dataset in (('bank', bank), ('query', query)):
            split = getattr(dataset, 'split', None)
            self.split_names[role] = split if isinstance(split, str) else role
            self.num_items[role] = len(dataset.data_list)
            self.on_bad_patch[role] = getattr(dataset, 'on_bad_patch',
                                              'raise')
            self.max_bad_patch_retries[role] = int(getattr(
                dataset, 'max_bad_patch_retries', 10))
            self.split_sources[role] = split_source(dataset)
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

    @property
    def role_counts(self) -> Dict[str, int]:
        """dict[str, int]: Items per role in this dataset, after any
        ``indices`` subset (e.g. ``{'bank': 56, 'query': 28}``)."""
        if not self._fully_initialized:
            self.full_init()
        num_bank = self.num_items['bank']
        total = num_bank + self.num_items['query']
        indices = self._indices
        if indices is None:
            positions = range(total)
        elif isinstance(indices, int):
            positions = (range(indices) if indices >= 0 else
                         range(total + indices, total))
        else:
            positions = [i % total for i in indices]
        bank = sum(1 for i in positions if i < num_bank)
        return dict(bank=bank, query=len(positions) - bank)

    def prepare_data(self, idx: int):
        """Run the pipeline on item ``idx`` with its role's bad-patch policy
        (see the class doc)."""
        info = self.get_data_info(idx)
        try:
            return self.pipeline(copy.deepcopy(info))
        except BadPatchError as err:
            role = info['knn_role']
            if self.on_bad_patch.get(role, 'raise') == 'raise':
                raise BadPatchError(
                    err.path, f'{err.reason} (kNN {role} patch, split '
                    f'{self.split_names.get(role)!r}, slide '
                    f'{info.get("slide")!r}; to leave bad patches out of '
                    f'the evaluation, set val_dataloader.dataset.{role}.'
                    f'on_bad_patch / test_dataloader.dataset.{role}.'
                    f'on_bad_patch to "skip" -- the policy of the training '
                    f'dataset where it reads the same split)') from err
            bad = err
        self.num_skipped += 1
        print_log(
            f'{self.__class__.__name__}: left out bad {role} patch '
            f'{bad.path} ({bad.reason}); {self.num_skipped} left out so far '
            f'in this process.', logger='current', level=logging.WARNING)
        tries = 0
        for other in _neighbours(idx, len(self)):
            if tries >= self.max_bad_patch_retries.get(role, 10):
                break
            tries += 1
            try:
                # a copy of another item, with its own knn_id: the metric
                # counts that id once, so this adds nothing
                return self.pipeline(copy.deepcopy(self.get_data_info(other)))
            except BadPatchError:
                continue
        raise BadPatchError(
            bad.path, f'{bad.reason}; on_bad_patch="skip" left it out, but '
            f'none of the {tries} neighbouring items of the kNN dataset '
            f'loaded either to fill its place in the batch. Fix or remove '
            f'the bad files, or raise max_bad_patch_retries.')

    def _check_disjoint(self, bank, query) -> None:
        """Refuse patients that are in both the bank and the query."""
        in_bank = {d['patient'] for d in bank.data_list}
        both = sorted({d['patient'] for d in query.data_list} & in_bank)
        if not both:
            return
        more = f' (and {len(both) - 5} more)' if len(both) > 5 else ''
        raise ValueError(
            f'HierarchicalKNNDataset: patient(s) {both[:5]}{more} are in both '
            f'the bank ({_describe(self.bank_cfg, bank)}) and the query '
            f'({_describe(self.query_cfg, query)}), so each of their query '
            f'patches would be matched against its own patient. Give bank '
            f'and query disjoint splits (e.g. split="train" and split="val") '
            f'and make sure the split file lists every patient in one split '
            f'only.')


def split_source(dataset) -> Tuple:
    """What a hierarchical dataset reads, to tell whether two datasets read
    the same split of the same files.

    Args:
        dataset: A hierarchical dataset (``OpenSRHDataset``,
            ``TCGADataset``, ``HierarchicalManifestDataset``, ...).

    Returns:
        tuple: ``(class name, real data_root, split, ((attr, value), ...))``
        with ``split`` as a string, a tuple of patient ids or None, and the
        metadata file attributes that the dataset has.

    Example:
        >>> split_source(OpenSRHDataset('data/srh', split='train'))[2]
        'train'
    """
    root = getattr(dataset, 'data_root', '') or ''
    split = getattr(dataset, 'split', None)
    if split is not None and not isinstance(split, str):
        split = tuple(str(p) for p in split)
    files = tuple((attr, str(getattr(dataset, attr)))
                  for attr in _SOURCE_ATTRS if hasattr(dataset, attr))
    return (type(dataset).__name__, osp.realpath(root) if root else '',
            split, files)


def _neighbours(idx: int, length: int):
    """``idx + 1, idx - 1, idx + 2, idx - 2, ...`` inside ``[0, length)``."""
    for step in range(1, length):
        for other in (idx + step, idx - step):
            if 0 <= other < length:
                yield other


def _describe(cfg: dict, dataset) -> str:
    """``OpenSRHDataset split='val' of /data/meta/train_val_split.json``."""
    text = f'{cfg.get("type")} split={getattr(dataset, "split", None)!r}'
    source = getattr(dataset, 'manifest', None)
    if source is None and isinstance(getattr(dataset, 'split', None), str):
        split_file = getattr(dataset, 'split_file', None)
        if split_file:
            source = osp.join(dataset.data_root, split_file)
    return f'{text} of {source}' if source else text
