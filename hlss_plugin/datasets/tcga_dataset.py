"""TCGA H&E patches stored as per-slide HDF5 patch bags."""
from typing import Dict, List, Sequence, Union

from mmpretrain.registry import DATASETS

from ..utils import resolve_under_root
from .base_hierarchical_dataset import BaseHierarchicalDataset
from .patient_meta import PatientMeta


def _bag_length(path: str, key: str, where: str) -> int:
    """Number of patches in an HDF5 bag, read from its header only."""
    import h5py
    try:
        with h5py.File(path, 'r') as f:
            if key not in f:
                raise ValueError(
                    f'{where}: HDF5 bag {path} has no dataset {key!r} (found '
                    f'{sorted(f.keys())}). Set h5_key to the patch dataset.')
            return int(f[key].shape[0])
    except OSError as err:
        raise ValueError(f'{where}: cannot open HDF5 bag {path} ({err}). Fix '
                         f'the path, or give "num_patches" in the metadata so '
                         f'indexing does not open the bag.') from err


@DATASETS.register_module()
class TCGADataset(BaseHierarchicalDataset):
    """TCGA-style H&E data: one HDF5 patch bag per slide, one item per patch.

    Metadata JSON (``meta_file``, relative to ``data_root``)::

        {patient: {"class": c,
                   "slides": {slide: {"h5": "bags/slide.h5",
                                      "num_patches": 120}}}}

    A slide may also map straight to its bag path (``{slide: "bags/x.h5"}``);
    then the bag's header is read for its length. Each bag holds dataset
    ``h5_key`` (default ``'imgs'``) of shape ``(N, H, W, C)``, uint8 or
    uint16; load patches with ``LoadH5Patch``. Items carry ``img_path`` (the
    bag), ``patch_idx`` (row in the bag), ``h5_key``, ``patient``, ``slide``
    and the shared hierarchy ids.

    Bad metadata raises ``ValueError`` naming the file and the patient /
    slide: a null or empty ``"class"``, a patient without slides, a slide
    with 0 patches, a bag listed by two slides, and (with a split name) a
    patient listed in two splits of ``split_file``.

    Args:
        data_root (str): Dataset root folder.
        split (str | Sequence[str] | None): A key of ``split_file``, a list
            of patient ids, or ``None`` for every patient.
        meta_file (str): Defaults to ``'meta/tcga.json'``.
        split_file (str): Defaults to ``'meta/train_val_split.json'``.
        h5_key (str): Patch dataset inside each bag. Defaults to ``'imgs'``.
        **kwargs: See :class:`BaseHierarchicalDataset`.

    Example:
        >>> ds = TCGADataset('data/tcga', split=['TCGA-01'], pipeline=[
        ...     dict(type='LoadH5Patch')])
        >>> ds.get_data_info(0)['patch_idx']
        0
    """

    def __init__(self,
                 data_root: str,
                 split: Union[str, Sequence[str], None] = 'train',
                 meta_file: str = 'meta/tcga.json',
                 split_file: str = 'meta/train_val_split.json',
                 h5_key: str = 'imgs',
                 **kwargs):
        if not data_root:
            raise ValueError('TCGADataset needs data_root, the folder '
                             'holding the metadata and the HDF5 bags.')
        self.meta_file = meta_file
        self.split_file = split_file
        self.h5_key = h5_key
        super().__init__(data_root=data_root, split=split, **kwargs)

    def load_items(self) -> List[dict]:
        """Read the metadata (and, where needed, bag headers) into items."""
        meta = PatientMeta(self.data_root, self.meta_file, self.split_file,
                           isinstance(self.split, str), 'TCGADataset')
        self._all_classes = meta.classes
        items = []
        seen: Dict[str, str] = {}
        for patient in self._select_patients(list(meta.patients),
                                             meta.splits, meta.split_path):
            label, slides = meta.slides(
                patient, '{slide: {"h5": ..., "num_patches": N}}')
            for slide, bag in slides.items():
                where = f'{meta.path} ["{patient}"]["slides"]["{slide}"]'
                path, count = self._bag(bag, where)
                here = f'["{patient}"]["slides"]["{slide}"]'
                if path in seen:
                    raise ValueError(
                        f'{meta.path}: HDF5 bag {path} is listed twice (by '
                        f'{seen[path]} and {here}), so its patches would be '
                        f'counted twice. Each slide needs its own bag; '
                        f'remove the duplicate entry or fix its "h5" path.')
                seen[path] = here
                if count == 0:
                    self._refuse_empty_slide(where, self.h5_key)
                items.extend(
                    dict(img_path=path, patch_idx=i, h5_key=self.h5_key,
                         patient=patient, slide=f'{patient}/{slide}',
                         label=label) for i in range(count))
        return items

    def _bag(self, bag, where: str):
        if isinstance(bag, str):
            bag = {'h5': bag}
        if not isinstance(bag, dict) or 'h5' not in bag:
            raise ValueError(f'{where}: expected "path.h5" or {{"h5": '
                             f'"path.h5", "num_patches": N}}, got {bag!r}.')
        path = resolve_under_root(self.data_root, bag['h5'], where)
        count = bag.get('num_patches')
        if count is None:
            count = _bag_length(path, self.h5_key, where)
        if not isinstance(count, int) or count < 0:
            raise ValueError(f'{where}: "num_patches" must be a whole number '
                             f'>= 0, got {count!r}.')
        return path, count
