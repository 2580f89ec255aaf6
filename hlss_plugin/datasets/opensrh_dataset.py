"""OpenSRH: stimulated Raman histology patches of brain tumour patients."""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

from mmpretrain.registry import DATASETS

from ..utils import resolve_under_root
from .base_hierarchical_dataset import BaseHierarchicalDataset
from .meta_io import require_mapping
from .patient_meta import PatientMeta


@DATASETS.register_module()
class OpenSRHDataset(BaseHierarchicalDataset):
    """OpenSRH release layout, one item per patch.

    Expects the layout of the OpenSRH release (and of
    ``tools/misc/make_synthetic_srh.py``)::

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
    ``check_files=True``). Bad metadata raises ``ValueError`` naming the
    file and the patient / slide: a ``"class"`` that is null or empty, a
    patient without slides, a slide without patches, a patch listed twice,
    and (with a split name) a patient listed in two splits of
    ``split_file``.

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
                             'tools/misc/make_synthetic_srh.py).')
        self.meta_file = meta_file
        self.split_file = split_file
        self.normal_class = normal_class
        self.patch_keys = dict(tumor='tumor_patches', normal='normal_patches')
        self.patch_keys.update(patch_keys or {})
        self.check_files = check_files
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_items(self) -> List[dict]:
        """Read ``meta_file`` and ``split_file`` into raw patch items."""
        meta = PatientMeta(self.data_root, self.meta_file, self.split_file,
                           isinstance(self.split, str), 'OpenSRHDataset')
        self._all_classes = meta.classes
        items = []
        seen: Dict[str, str] = {}
        for patient in self._select_patients(list(meta.patients),
                                             meta.splits, meta.split_path):
            items.extend(self._patient_items(meta, patient, seen))
        return items

    def _patient_items(self, meta: PatientMeta, patient: str,
                       seen: Dict[str, str]) -> List[dict]:
        """Items of one patient; ``seen`` maps patch paths already listed
        (by any slide) to where, so a repeated entry is refused."""
        label, slides = meta.slides(patient,
                                    '{slide: {"tumor_patches": [...], ...}}')
        key = self.patch_keys['normal' if label == self.normal_class else
                              'tumor']
        items = []
        for slide, slide_record in slides.items():
            where = f'{meta.path} ["{patient}"]["slides"]["{slide}"]'
            slide_record = require_mapping(slide_record, meta.path,
                                           f'["{patient}"]["slides"]'
                                           f'["{slide}"]',
                                           f'{{"{key}": [...]}}')
            patches = slide_record.get(key)
            if not patches:
                self._refuse_empty_slide(where, key)
            if not isinstance(patches, list):
                raise ValueError(
                    f'{where}["{key}"] should be a list of patch paths, got '
                    f'{type(patches).__name__}. Fix the metadata file.')
            here = f'["{patient}"]["slides"]["{slide}"]["{key}"]'
            for name in patches:
                rel = name if '/' in str(name) else osp.join(
                    'studies', patient, str(slide), 'patches', str(name))
                path = resolve_under_root(self.data_root, rel,
                                          f'{where}["{key}"]')
                if path in seen:
                    raise ValueError(
                        f'{meta.path}: patch {name!r} is listed twice (in '
                        f'{seen[path]} and {here}). Each patch must appear '
                        f'once, or it is drawn more often than the others; '
                        f'remove the duplicate entry.')
                seen[path] = here
                if self.check_files and not osp.isfile(path):
                    raise ValueError(
                        f'{where}["{key}"]: patch file {path} does not exist. '
                        f'Restore it, remove the entry, or set '
                        f'check_files=False and on_bad_patch="skip".')
                items.append(dict(img_path=path, patient=patient,
                                  slide=f'{patient}/{slide}', label=label))
        return items
