"""Read ``{patient: {"class": c, "slides": {...}}}`` metadata and its splits.

OpenSRH and TCGA-style datasets share this format (they differ in what a
slide entry holds); the checks and error messages live here once.
"""
import json
from typing import Dict, List, Optional, Tuple

from ..utils import resolve_under_root
from .meta_io import check_splits, load_json, require_mapping


class PatientMeta:
    """Validated patient metadata of one dataset.

    Args:
        data_root (str): Dataset root.
        meta_file (str): Metadata JSON, relative to ``data_root``.
        split_file (str): Split JSON, relative to ``data_root``; read only
            when ``need_splits``.
        need_splits (bool): Whether a split *name* was asked for.
        owner (str): Dataset class name, for errors.

    Raises:
        ValueError: If a patient's ``"class"`` is null, empty or missing, or
            (when read) the split file lists a patient twice or in two
            splits; see also :meth:`slides`.

    Attributes:
        path (str): Resolved metadata file.
        patients (dict): ``{patient: record}`` with ``class`` and ``slides``.
        classes (list[str]): Sorted class names over all patients.
        split_path (str): Resolved split file.
        splits (dict | None): ``{split: [patients]}`` when read.

    Example:
        >>> meta = PatientMeta('data/synthetic_srh', 'meta/opensrh.json',
        ...                    'meta/train_val_split.json', True, 'X')
        >>> meta.classes[:2]
        ['hgg', 'lgg']
    """

    def __init__(self, data_root: str, meta_file: str, split_file: str,
                 need_splits: bool, owner: str):
        self.path = resolve_under_root(data_root, meta_file,
                                       f'{owner} meta_file')
        self.patients = require_mapping(
            load_json(self.path, 'meta_file'), self.path, 'the top level',
            '{patient: {"class": ..., "slides": ...}}')
        self.split_path = resolve_under_root(data_root, split_file,
                                             f'{owner} split_file')
        self.splits: Optional[Dict[str, List[str]]] = None
        if need_splits:
            self.splits = check_splits(
                load_json(self.split_path, 'split_file'), self.split_path)
        self.classes = sorted({self.label(p) for p in self.patients})

    def label(self, patient: str) -> str:
        """Class name of ``patient``, checking the record's keys."""
        record = require_mapping(self.patients[patient], self.path,
                                 f'["{patient}"]',
                                 '{"class": ..., "slides": {...}}')
        if 'class' not in record or 'slides' not in record:
            raise ValueError(
                f'{self.path}: patient {patient!r} needs keys "class" and '
                f'"slides"; found {sorted(record)}. Fix the metadata entry.')
        label = record['class']
        if (isinstance(label, bool) or not isinstance(label, (str, int))
                or not str(label).strip()):
            raise ValueError(
                f'{self.path}: patient {patient!r} has "class": '
                f'{json.dumps(label)}; every patient needs a class name (a '
                f'non-empty string such as "hgg"). Fill in the class or '
                f'remove the patient (and drop it from the split file).')
        return str(label)

    def slides(self, patient: str, expected: str) -> Tuple[str, dict]:
        """``(label, {slide: entry})`` of ``patient``.

        Args:
            patient (str): Patient id.
            expected (str): Sketch of a slide entry, for the error.

        Raises:
            ValueError: If the patient has no slides (``"slides": {}``); it
                is never dropped silently.
        """
        label = self.label(patient)
        slides = require_mapping(self.patients[patient]['slides'], self.path,
                                 f'["{patient}"]["slides"]', expected)
        if not slides:
            raise ValueError(
                f'{self.path}: patient {patient!r} has no slides ("slides": '
                f'{{}}). Add its slides, e.g. "slides": {expected}, or '
                f'remove the patient (and drop it from the split file).')
        return label, slides
