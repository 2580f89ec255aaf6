"""Any patch cohort described by a CSV manifest."""
import csv
import os.path as osp
from typing import List, Sequence, Union

from mmpretrain.registry import DATASETS

from ..utils import resolve_under_root
from .base_hierarchical_dataset import BaseHierarchicalDataset

REQUIRED_COLUMNS = ('path', 'patient', 'slide', 'label')


@DATASETS.register_module()
class HierarchicalManifestDataset(BaseHierarchicalDataset):
    """Patches listed in a CSV with columns ``path,patient,slide,label[,split]``.

    Lets users bring any cohort (TIFF/PNG/JPEG, RGB or SRH) without writing a
    dataset class; load patches with ``LoadPatchImage``. ``path`` is relative
    to ``data_root`` (which defaults to the manifest's folder), ``label`` is a
    class name, and the optional ``split`` column names each row's split.

    Args:
        manifest (str): The CSV file; relative paths are taken from
            ``data_root`` when given, else from the working directory.
        data_root (str): Root of the patch paths. Defaults to the manifest's
            folder.
        split (str | Sequence[str] | None): A value of the ``split`` column,
            a list of patient ids, or ``None`` (default) for every row.
        **kwargs: See :class:`BaseHierarchicalDataset`.

    Example:
        >>> # patches.csv: path,patient,slide,label,split
        >>> #              p1/s1/a.png,p1,s1,tumour,train
        >>> ds = HierarchicalManifestDataset('patches.csv', split='train')
        >>> ds.get_data_info(0)['slide']
        'p1/s1'
    """

    def __init__(self,
                 manifest: str,
                 data_root: str = '',
                 split: Union[str, Sequence[str], None] = None,
                 **kwargs):
        if data_root and not osp.isabs(manifest):
            manifest = osp.join(data_root, manifest)
        self.manifest = manifest
        super().__init__(data_root=data_root or osp.dirname(
            osp.abspath(manifest)), split=split, **kwargs)

    def _read_rows(self) -> List[dict]:
        if not osp.isfile(self.manifest):
            raise ValueError(f'manifest {self.manifest} does not exist; give '
                             f'the CSV path (columns: '
                             f'{",".join(REQUIRED_COLUMNS)}[,split]).')
        with open(self.manifest, newline='', encoding='utf-8') as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ValueError(
                    f'manifest {self.manifest} lacks column(s) {missing} '
                    f'(found {columns}). The header must be '
                    f'{",".join(REQUIRED_COLUMNS)}[,split].')
            rows = [{k.strip(): (v or '').strip() for k, v in row.items()
                     if k is not None} for row in reader]
        for line, row in enumerate(rows, start=2):
            empty = [c for c in REQUIRED_COLUMNS if not row.get(c)]
            if empty:
                raise ValueError(f'manifest {self.manifest} line {line}: '
                                 f'empty {empty}. Fill them or drop the row.')
            row['_line'] = line
        self._has_split_column = 'split' in columns
        return rows

    def load_items(self) -> List[dict]:
        """Read the CSV into raw patch items."""
        rows = self._read_rows()
        self._all_classes = sorted({r['label'] for r in rows})
        patients = list(dict.fromkeys(r['patient'] for r in rows))
        if isinstance(self.split, str):
            if not self._has_split_column:
                raise ValueError(
                    f'split={self.split!r} but manifest {self.manifest} has '
                    f'no "split" column; add one, or pass split=None or a '
                    f'list of patient ids.')
            names = sorted({r['split'] for r in rows})
            if self.split not in names:
                raise ValueError(f'unknown split {self.split!r}: manifest '
                                 f'{self.manifest} has splits {names}.')
            rows = [r for r in rows if r['split'] == self.split]
        else:
            keep = set(self._select_patients(patients, None, self.manifest))
            rows = [r for r in rows if r['patient'] in keep]
        return [
            dict(img_path=resolve_under_root(
                self.data_root, r['path'],
                f'manifest {self.manifest} line {r["_line"]} "path"'),
                 patient=r['patient'],
                 slide=f'{r["patient"]}/{r["slide"]}',
                 label=r['label']) for r in rows
        ]
