"""OpenSRH: stimulated Raman histology patches of brain tumour patients."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmpretrain.registry import DATASETS

from ..utils import resolve_under_root
from .base_hierarchical_dataset import BaseHierarchicalDataset
from .meta_io import load_json, require_mapping


@DATASETS.register_module()
class OpenSRHDataset(BaseHierarchicalDataset):
    """OpenSRH release layout, one item per patch.

    Expects the layout of the OpenSRH release (and of
    ``tools/make_synthetic_srh.py``)::

        data_root/
          meta/opensrh.json            {patient: {"class": c, "slides":
                                          {slide: {"tumor_patches": [...],
                                                   "normal_patches": [...]}}}}
          meta/train_val_split.json    {"train": [...], "val": [...]}
          studies/<patient>/<slide>/patches/*.tif   (2, H, W) uint16

    Patch entries are paths relative to ``data_root``; a bare file name is
    looked up in ``studies/<patient>/<slide>/patches/``. Patients of
    ``normal_class`` use their ``normal_patches``, every other patient its
    ``tumor_patches`` (change with ``patch_keys``). Slide ids are unique per
    patient only, so items carry ``slide = '<patient>/<slide>'``.

    Index building reads the metadata only (no image is opened unless
    ``check_files=True``).

    Args:
        data_root (str): Dataset root folder.
        split (str | Sequence[str] | None): ``'train'``, ``'val'`` (any key
            of the split file), a list of patient ids, or ``None`` for all.
        meta_file (str): Metadata JSON, relative to ``data_root``.
            Defaults to ``'meta/opensrh.json'``.
        split_file (str): Split JSON, relative to ``data_root``. Defaults to
            ``'meta/train_val_split.json'``.
        normal_class (str): Class whose patients contribute their
            ``normal_patches``. Defaults to ``'normal'``.
        patch_keys (dict, optional): ``{'tumor': key, 'normal': key}``
            overriding the patch-list keys. Defaults to
            ``{'tumor': 'tumor_patches', 'normal': 'normal_patches'}``.
        check_files (bool): Check that every patch file exists while
            indexing (slow on network disks). Defaults to False.
        **kwargs: See :class:`BaseHierarchicalDataset` (``pipeline``,
            ``on_bad_patch``, ``metainfo``, ``lazy_init`` ...).

    Example:
        >>> ds = OpenSRHDataset(data_root='data/synthetic_srh', split='train')
        >>> item = ds.get_data_info(0)
        >>> sorted(k for k in item if k != 'sample_idx')
        ['gt_label', 'img_path', 'patient', 'patient_idx', 'slide', 'slide_idx']
    """

    def __init__(self,
                 data_root: str,
                 split: Union[str, Sequence[str], None] = 'train',
                 meta_file: str = 'meta/opensrh.json',
                 split_file: str = 'meta/train_val_split.json',
                 normal_class: str = 'normal',
                 patch_keys: Optional[Dict[str, str]] = None,
                 check_files: bool = False,
                 **kwargs):
        if not data_root:
            raise ValueError('OpenSRHDataset needs data_root, the folder '
                             'holding meta/ and studies/ (make one with '
                             'tools/make_synthetic_srh.py).')
        self.meta_file = meta_file
        self.split_file = split_file
        self.normal_class = normal_class
        self.patch_keys = dict(tumor='tumor_patches', normal='normal_patches')
        self.patch_keys.update(patch_keys or {})
        self.check_files = check_files
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_items(self) -> List[dict]:
        """Read ``meta_file`` and ``split_file`` into raw patch items."""
        meta_path = resolve_under_root(self.data_root, self.meta_file,
                                       'OpenSRHDataset meta_file')
        meta = require_mapping(load_json(meta_path, 'meta_file'), meta_path,
                               'the top level',
                               '{patient: {"class": ..., "slides": ...}}')
        splits = None
        split_path = resolve_under_root(self.data_root, self.split_file,
                                        'OpenSRHDataset split_file')
        if isinstance(self.split, str):
            splits = require_mapping(load_json(split_path, 'split_file'),
                                     split_path, 'the top level',
                                     '{"train": [...], "val": [...]}')
        classes = set()
        for patient, record in meta.items():
            classes.add(self._patient_class(meta_path, patient, record))
        self._all_classes = sorted(classes)

        items = []
        for patient in self._select_patients(list(meta), splits, split_path):
            items.extend(self._patient_items(meta_path, patient,
                                             meta[patient]))
        return items

    def _patient_class(self, meta_path: str, patient: str,
                       record) -> str:
        record = require_mapping(record, meta_path, f'["{patient}"]',
                                 '{"class": ..., "slides": {...}}')
        if 'class' not in record or 'slides' not in record:
            raise ValueError(
                f'{meta_path}: patient {patient!r} needs keys "class" and '
                f'"slides"; found {sorted(record)}. Fix the metadata entry.')
        return str(record['class'])

    def _patient_items(self, meta_path: str, patient: str,
                       record: dict) -> List[dict]:
        label = str(record['class'])
        key = self.patch_keys['normal' if label == self.normal_class else
                              'tumor']
        slides = require_mapping(record['slides'], meta_path,
                                 f'["{patient}"]["slides"]',
                                 '{slide: {"tumor_patches": [...], ...}}')
        items = []
        for slide, slide_record in slides.items():
            where = f'{meta_path} ["{patient}"]["slides"]["{slide}"]'
            slide_record = require_mapping(slide_record, meta_path,
                                           f'["{patient}"]["slides"]'
                                           f'["{slide}"]',
                                           f'{{"{key}": [...]}}')
            patches = slide_record.get(key)
            if not patches:
                self._warn_empty_slide(where, key)
                continue
            for name in patches:
                rel = name if '/' in str(name) else osp.join(
                    'studies', patient, str(slide), 'patches', str(name))
                path = resolve_under_root(self.data_root, rel,
                                          f'{where}["{key}"]')
                if self.check_files and not osp.isfile(path):
                    raise ValueError(
                        f'{where}["{key}"]: patch file {path} does not exist. '
                        f'Restore it, remove the entry, or set '
                        f'check_files=False and on_bad_patch="skip".')
                items.append(dict(img_path=path, patient=patient,
                                  slide=f'{patient}/{slide}', label=label))
        return items
