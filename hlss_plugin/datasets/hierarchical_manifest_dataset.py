"""Any patch cohort described by a CSV manifest."""
import csv
import os.path as osp
from typing import Dict, List, Sequence, Union

from mmpretrain.registry import DATASETS

from ..utils import resolve_under_root
from .base_hierarchical_dataset import BaseHierarchicalDataset
from .meta_io import split_overlap_message

REQUIRED_COLUMNS = ('path', 'patient', 'slide', 'label')


@DATASETS.register_module()
class HierarchicalManifestDataset(BaseHierarchicalDataset):
    """Patches listed in a CSV with columns ``path,patient,slide,label[,split]``.

    Lets users bring any cohort (TIFF/PNG/JPEG, RGB or SRH) without writing a
    dataset class; load patches with ``LoadPatchImage``. ``path`` is relative
    to ``data_root`` (which defaults to the manifest's folder), ``label`` is a
    class name, and the optional ``split`` column names each row's split.
    The CSV is read as UTF-8 with or without a byte-order mark (as Excel
    saves it).

    The whole file is checked when the dataset is built; each problem raises
    ``ValueError`` naming the manifest and its line numbers: an empty
    required cell, the same ``path`` on two rows, a patient with two labels,
    and (when a split name is asked for) a patient whose rows are in two
    splits.

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
        # utf-8-sig drops the byte-order mark Excel writes (else the first
        # column would be named '\ufeffpath').
        with open(self.manifest, newline='', encoding='utf-8-sig') as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise ValueError(
                    f'manifest {self.manifest} lacks column(s) {missing} '
                    f'(found {columns}). The header must be '
                    f'{",".join(REQUIRED_COLUMNS)}[,split].')
            rows = []
            for row in reader:
                row = {k.strip(): (v or '').strip() for k, v in row.items()
                       if k is not None}
                # The file line where the row ends (blank lines and quoted
                # line breaks included), as a spreadsheet shows it.
                row['_line'] = reader.line_num
                rows.append(row)
        for row in rows:
            empty = [c for c in REQUIRED_COLUMNS if not row.get(c)]
            if empty:
                raise ValueError(f'manifest {self.manifest} line '
                                 f'{row["_line"]}: empty {empty}. Fill them '
                                 f'or drop the row.')
        self._has_split_column = 'split' in columns
        self._check_rows(rows)
        return rows

    def _check_rows(self, rows: List[dict]) -> None:
        """Refuse repeated paths and patients with two labels."""
        first_line: Dict[str, int] = {}
        for row in rows:
            key = osp.normpath(row['path'])
            line = first_line.setdefault(key, row['_line'])
            if line != row['_line']:
                raise ValueError(
                    f'manifest {self.manifest}: lines {line} and '
                    f'{row["_line"]} list the same patch {row["path"]!r} '
                    f'(patient {row["patient"]!r}, slide {row["slide"]!r}). '
                    f'Each patch must appear once; delete the duplicate '
                    f'row.')
        labels = self._lines_by(rows, 'label')
        mixed = {p: v for p, v in labels.items() if len(v) > 1}
        if mixed:
            patient, found = next(iter(mixed.items()))
            more = (f' ({len(mixed) - 1} more patient(s) too)'
                    if len(mixed) > 1 else '')
            raise ValueError(
                f'manifest {self.manifest}: patient {patient!r} has more than '
                f'one label: {self._describe(found)}{more}. A patient has '
                f'one class; fix the "label" column on those lines.')

    @staticmethod
    def _lines_by(rows: List[dict],
                  column: str) -> Dict[str, Dict[str, list]]:
        """``{patient: {value of column: [line numbers]}}``."""
        out: Dict[str, Dict[str, list]] = {}
        for row in rows:
            out.setdefault(row['patient'], {}).setdefault(
                row[column], []).append(row['_line'])
        return out

    @staticmethod
    def _describe(found: Dict[str, list]) -> str:
        """``'tumour' (lines 2, 3) and 'normal' (line 5)``."""
        def lines(nums):
            shown = ', '.join(map(str, nums[:5]))
            more = ', ...' if len(nums) > 5 else ''
            return f'line{"s" if len(nums) > 1 else ""} {shown}{more}'
        return ' and '.join(f'{v!r} ({lines(n)})' for v, n in found.items())

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
            overlap = {p: self._describe(v)
                       for p, v in self._lines_by(rows, 'split').items()
                       if len(v) > 1}
            if overlap:
                raise ValueError(
                    f'manifest {self.manifest}: ' +
                    split_overlap_message(overlap) +
                    ' Give all rows of each patient the same "split" value.')
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
