"""Shared machinery of the patient → slide → patch datasets."""
import copy
import logging
from collections import Counter
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from ..errors import BadPatchError
from .hierarchy import Hierarchy

ON_BAD_PATCH = ('raise', 'skip')
#: Skip counters shared with dataloader workers: slot 0 for the main
#: process, slot 1 + worker id for workers (ids past the end share the last).
_SKIP_SLOTS = 64


class BaseHierarchicalDataset(BaseDataset):
    """Base class of datasets whose items are patches of slides of patients.

    Subclasses implement :meth:`load_items`, returning one dict per patch with
    at least ``img_path``, ``patient`` and ``slide`` (strings) and ``label``
    (class name). This class turns them into the item format every
    hierarchical dataset shares:

    - ``img_path`` (str), ``patient`` (str), ``slide`` (str, unique in the
      dataset, e.g. ``'NIO_001/1'``),
    - ``gt_label`` (int, index into ``metainfo['classes']``),
    - ``patient_idx`` / ``slide_idx`` (int, stable ids used by the losses),

    builds a :class:`Hierarchy` for the samplers, and applies the
    ``on_bad_patch`` policy when a loading transform raises
    :class:`~hlss_plugin.errors.BadPatchError`.

    Bad metadata is an error, never silently dropped or repeated: a slide
    without patches, a patient with two class labels, or a patient named
    twice in a split list raises ``ValueError`` naming it (subclasses add
    checks that name the file: duplicated patches, patients in two splits,
    missing classes).

    Args:
        data_root (str): Dataset root; every patch path must stay inside it.
        split (str | Sequence[str] | None): A split name of the dataset's
            split file, a list of patient ids, or ``None`` for every patient.
        on_bad_patch (str): ``'raise'`` (default) stops at the first missing
            or corrupt patch; ``'skip'`` logs it, counts it in
            :attr:`num_skipped` and loads another patch of the same slide.
        max_bad_patch_retries (int): Patches tried per item under ``'skip'``
            before giving up with an error. Defaults to 10.
        metainfo (dict, optional): ``dict(classes=[...])`` fixes the class
            order; by default classes are the sorted class names found in the
            metadata (all splits, so train and val agree).
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`
            (``pipeline``, ``test_mode``, ``lazy_init``, ``indices`` ...).
    """

    def __init__(self,
                 data_root: str = '',
                 split: Union[str, Sequence[str], None] = 'train',
                 on_bad_patch: str = 'raise',
                 max_bad_patch_retries: int = 10,
                 metainfo: Optional[dict] = None,
                 **kwargs):
        if on_bad_patch not in ON_BAD_PATCH:
            raise ValueError(f'on_bad_patch={on_bad_patch!r} is not one of '
                             f'{ON_BAD_PATCH}; use "raise" to stop at a bad '
                             f'patch or "skip" to load another patch of the '
                             f'same slide.')
        if int(max_bad_patch_retries) < 1:
            raise ValueError('max_bad_patch_retries must be >= 1, got '
                             f'{max_bad_patch_retries}.')
        if split is not None and not isinstance(split, str):
            split = [str(p) for p in split]
            if not split:
                raise ValueError('split is an empty list of patients; give '
                                 'a split name, patient ids or None.')
        self.split = split
        self.on_bad_patch = on_bad_patch
        self.max_bad_patch_retries = int(max_bad_patch_retries)
        self.num_skipped = 0
        # Shared memory, so counts made in dataloader workers reach the
        # main process (see :attr:`total_skipped`).
        self._skip_slots = torch.zeros(_SKIP_SLOTS + 1,
                                       dtype=torch.int64).share_memory_()
        self._hierarchy: Optional[Hierarchy] = None
        self._rng = np.random.default_rng()
        super().__init__(data_root=data_root, metainfo=metainfo, **kwargs)

    # ------------------------------------------------------------------ load
    def load_items(self) -> List[Dict]:
        """Read the metadata and return one raw dict per patch.

        Each dict holds ``img_path`` (resolved), ``patient``, ``slide``,
        ``label`` (class name) and any extra keys the loader needs (e.g.
        ``patch_idx``). Must also set ``self._all_classes`` to the class names
        of the whole metadata (all splits).
        """
        raise NotImplementedError

    def load_data_list(self) -> List[dict]:
        """Turn :meth:`load_items` into the shared item format."""
        items = self.load_items()
        classes = self._resolve_classes(getattr(self, '_all_classes', ()))
        class_to_idx = {c: i for i, c in enumerate(classes)}
        patients: Dict[str, int] = {}
        slides: Dict[str, int] = {}
        patient_label: Dict[str, str] = {}
        for item in items:
            label = item.pop('label')
            first = patient_label.setdefault(item['patient'], label)
            if first != label:
                raise ValueError(
                    f'{self.__class__.__name__}: patient {item["patient"]!r} '
                    f'has two class labels, {first!r} and {label!r} (e.g. '
                    f'{item["img_path"]}); a patient has one class. Fix the '
                    f'labels in the metadata.')
            if label not in class_to_idx:
                raise ValueError(
                    f'{self.__class__.__name__}: patient {item["patient"]!r} '
                    f'has class {label!r}, which is not in metainfo classes '
                    f'{list(classes)}; add it to metainfo["classes"] or drop '
                    f'the patient.')
            item['gt_label'] = class_to_idx[label]
            item['patient_idx'] = patients.setdefault(item['patient'],
                                                      len(patients))
            item['slide_idx'] = slides.setdefault(item['slide'], len(slides))
        if not items:
            raise ValueError(f'{self.__class__.__name__}: split {self.split!r} '
                             f'under data_root {self.data_root!r} has no '
                             f'patches; check the split and metadata files.')
        return items

    def _resolve_classes(self, found: Sequence[str]) -> tuple:
        given = self._metainfo.get('classes')
        classes = tuple(given) if given else tuple(sorted(set(found)))
        self._metainfo['classes'] = classes
        return classes

    def _select_patients(self, patients: Sequence[str],
                         splits: Optional[Dict[str, List[str]]],
                         split_file: str) -> List[str]:
        """Patients of ``self.split`` (a split name, a list, or None).

        Args:
            patients (Sequence[str]): Patients in the metadata.
            splits (dict, optional): ``{split_name: [patients]}``.
            split_file (str): Name of the split source, for errors.
        """
        known = set(patients)
        if self.split is None:
            return list(patients)
        if isinstance(self.split, str):
            if splits is None:
                raise ValueError(
                    f'split={self.split!r} needs a split file, but '
                    f'{split_file} is not available; pass split=None or a '
                    f'list of patient ids.')
            if self.split not in splits:
                raise ValueError(
                    f'unknown split {self.split!r}: {split_file} has '
                    f'{sorted(splits)}. Use one of those, a list of patient '
                    f'ids, or None for all patients.')
            chosen = [str(p) for p in splits[self.split]]
            source = f'{split_file}["{self.split}"]'
        else:
            chosen = list(self.split)
            source = 'the split list'
            repeated = sorted(p for p, n in Counter(chosen).items() if n > 1)
            if repeated:
                raise ValueError(
                    f'the split list names patient(s) {repeated[:5]} more '
                    f'than once; each patient may appear once (a repeat '
                    f'would double its patches). Remove the repeats.')
        missing = [p for p in chosen if p not in known]
        if missing:
            raise ValueError(
                f'{source} names patients missing from the metadata: '
                f'{missing[:5]}{" ..." if len(missing) > 5 else ""}. Remove '
                f'them from the split or add them to the metadata.')
        return chosen

    def _refuse_empty_slide(self, where: str, key: str) -> None:
        """Raise for a slide without patches (it is never left out
        silently)."""
        raise ValueError(
            f'{self.__class__.__name__}: {where} has no patches (no '
            f'"{key}"). Add the slide\'s patches to the metadata or remove '
            f'the slide.')

    # -------------------------------------------------------------- index
    def full_init(self):
        """Load, subset and serialise items, then build the hierarchy."""
        if self._fully_initialized:
            return
        self.data_list = self.load_data_list()
        self.data_list = self.filter_data()
        if self._indices is not None:
            self.data_list = self._get_unserialized_subset(self._indices)
        self._hierarchy = self._build_hierarchy(self.data_list)
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()
        self._fully_initialized = True

    @staticmethod
    def _build_hierarchy(data_list: List[dict]) -> Hierarchy:
        pat = np.fromiter((d['patient_idx'] for d in data_list), np.int64,
                          len(data_list))
        sld = np.fromiter((d['slide_idx'] for d in data_list), np.int64,
                          len(data_list))
        pat_ids, first_of_patient, pat_compact = np.unique(
            pat, return_index=True, return_inverse=True)
        sld_ids, first_of_slide, sld_compact = np.unique(
            sld, return_index=True, return_inverse=True)
        return Hierarchy.from_items(
            item_patient=pat_compact,
            item_slide=sld_compact,
            patient_labels=[data_list[i]['gt_label']
                            for i in first_of_patient],
            patient_names=[data_list[i]['patient'] for i in first_of_patient],
            slide_names=[data_list[i]['slide'] for i in first_of_slide])

    def get_hierarchy(self) -> Hierarchy:
        """The patient → slide → patch index of this dataset's items."""
        if not self._fully_initialized:
            self.full_init()
        return self._hierarchy

    def get_cat_ids(self, idx: int) -> List[int]:
        """Class index of item ``idx`` (for class-aware samplers)."""
        return [int(self.get_data_info(idx)['gt_label'])]

    # ---------------------------------------------------------- bad patches
    def prepare_data(self, idx: int):
        """Run the pipeline on item ``idx`` with the ``on_bad_patch`` policy.

        Under ``'skip'``, a :class:`BadPatchError` makes the dataset try other
        patches of the same slide (so the batch keeps its hierarchy), at most
        ``max_bad_patch_retries`` times, then raise naming the slide.
        """
        data_info = self.get_data_info(idx)
        try:
            return self.pipeline(copy.deepcopy(data_info))
        except BadPatchError as err:
            if self.on_bad_patch == 'raise':
                raise BadPatchError(
                    err.path, f'{err.reason} (item {idx} of '
                    f'{self.__class__.__name__}, slide '
                    f'{data_info["slide"]!r}; set on_bad_patch="skip" to '
                    f'load another patch of the slide instead)') from err
            last = err
            self._note_skip(err)
        siblings = self._siblings(idx)
        for _ in range(self.max_bad_patch_retries - 1):
            other = int(self._rng.choice(siblings))
            try:
                return self.pipeline(copy.deepcopy(self.get_data_info(other)))
            except BadPatchError as err:
                last = err
                self._note_skip(err)
        raise BadPatchError(
            last.path,
            f'{self.max_bad_patch_retries} patches of slide '
            f'{data_info["slide"]!r} failed to load (last: {last.reason}). '
            f'Fix or remove the slide\'s files, or raise '
            f'max_bad_patch_retries.')

    def _siblings(self, idx: int) -> np.ndarray:
        hierarchy = self.get_hierarchy()
        return hierarchy.patches_of(int(hierarchy.item_slide[idx]))

    @property
    def total_skipped(self) -> int:
        """int: Bad patches skipped by this dataset in this process *and* in
        its dataloader workers (:attr:`num_skipped` counts only the calling
        process)."""
        return int(self._skip_slots.sum())

    def _note_skip(self, err: BadPatchError) -> None:
        self.num_skipped += 1
        info = torch.utils.data.get_worker_info()
        slot = 0 if info is None else min(1 + info.id, _SKIP_SLOTS)
        self._skip_slots[slot] += 1
        msg = (f'{self.__class__.__name__}: skipped bad patch {err.path} '
               f'({err.reason}); {self.num_skipped} skipped so far in this '
               f'process.')
        print_log(msg, logger='current', level=logging.WARNING)


def total_skipped(dataset) -> int:
    """Bad patches skipped so far by every hierarchical dataset in
    ``dataset`` (wrappers such as ``ConcatDataset`` are searched).

    Counts made in dataloader workers are included (they share memory with
    the main process). Under DDP this is the count of the calling rank.

    Args:
        dataset: A dataset or dataset wrapper.

    Returns:
        int: The number of skipped patches (0 for other datasets).

    Example:
        >>> total_skipped(object())
        0
    """
    if isinstance(dataset, BaseHierarchicalDataset):
        return dataset.total_skipped
    inner = list(getattr(dataset, 'datasets', None) or [])
    if getattr(dataset, 'dataset', None) is not None:
        inner.append(dataset.dataset)
    return sum(total_skipped(d) for d in inner)
