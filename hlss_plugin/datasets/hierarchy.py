"""Patient → slide → patch index of a hierarchical dataset."""
from dataclasses import dataclass, field
from typing import Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class Hierarchy:
    """Compact patient → slide → patch index built from per-item ids.

    Every dataset item (one patch) has a slide index and every slide a patient
    index; patients carry a class label. Lookups are O(1) slices into arrays
    sorted once at construction, so samplers can draw batches quickly even for
    hundreds of thousands of patches.

    Args:
        patient_names (tuple[str]): ``(num_patients,)`` patient ids.
        patient_labels (np.ndarray): ``(num_patients,)`` int64 class index.
        slide_names (tuple[str]): ``(num_slides,)`` slide ids (unique within
            the dataset, e.g. ``'NIO_001/1'``).
        slide_patient (np.ndarray): ``(num_slides,)`` int64 patient index.
        item_slide (np.ndarray): ``(num_items,)`` int64 slide index of every
            dataset item.

    Example:
        >>> h = Hierarchy.from_items(
        ...     item_patient=[0, 0, 0, 1], item_slide=[0, 0, 1, 2],
        ...     patient_labels=[1, 0], patient_names=('a', 'b'),
        ...     slide_names=('a/1', 'a/2', 'b/1'))
        >>> h.slides_of(0).tolist(), h.patches_of(0).tolist()
        ([0, 1], [0, 1])
    """

    patient_names: Tuple[str, ...]
    patient_labels: np.ndarray
    slide_names: Tuple[str, ...]
    slide_patient: np.ndarray
    item_slide: np.ndarray
    _slide_ptr: np.ndarray = field(repr=False, default=None)
    _slide_order: np.ndarray = field(repr=False, default=None)
    _patch_ptr: np.ndarray = field(repr=False, default=None)
    _patch_order: np.ndarray = field(repr=False, default=None)

    def __post_init__(self):
        num_patients = len(self.patient_names)
        num_slides = len(self.slide_names)
        if len(self.patient_labels) != num_patients:
            raise ValueError('patient_labels and patient_names differ in '
                             'length; build the hierarchy with from_items.')
        if len(self.slide_patient) != num_slides:
            raise ValueError('slide_patient and slide_names differ in '
                             'length; build the hierarchy with from_items.')
        slide_order = np.argsort(self.slide_patient, kind='stable')
        slide_ptr = np.searchsorted(self.slide_patient[slide_order],
                                    np.arange(num_patients + 1))
        patch_order = np.argsort(self.item_slide, kind='stable')
        patch_ptr = np.searchsorted(self.item_slide[patch_order],
                                    np.arange(num_slides + 1))
        object.__setattr__(self, '_slide_order', slide_order)
        object.__setattr__(self, '_slide_ptr', slide_ptr)
        object.__setattr__(self, '_patch_order', patch_order)
        object.__setattr__(self, '_patch_ptr', patch_ptr)

    @classmethod
    def from_items(cls, item_patient: Sequence[int], item_slide: Sequence[int],
                   patient_labels: Sequence[int],
                   patient_names: Sequence[str],
                   slide_names: Sequence[str]) -> 'Hierarchy':
        """Build from per-item patient and slide indices.

        Args:
            item_patient (Sequence[int]): ``(num_items,)`` patient index.
            item_slide (Sequence[int]): ``(num_items,)`` slide index.
            patient_labels (Sequence[int]): ``(num_patients,)`` labels.
            patient_names (Sequence[str]): ``(num_patients,)`` ids.
            slide_names (Sequence[str]): ``(num_slides,)`` ids.

        Returns:
            Hierarchy: The index.

        Raises:
            ValueError: If a slide's items belong to different patients.
        """
        item_patient = np.asarray(item_patient, dtype=np.int64)
        item_slide = np.asarray(item_slide, dtype=np.int64)
        slide_patient = np.full(len(slide_names), -1, dtype=np.int64)
        slide_patient[item_slide] = item_patient
        if not np.array_equal(slide_patient[item_slide], item_patient):
            bad = int(item_slide[slide_patient[item_slide] != item_patient][0])
            raise ValueError(f'slide {slide_names[bad]!r} holds patches of '
                             f'several patients; slide ids must be unique '
                             f'per patient.')
        return cls(patient_names=tuple(patient_names),
                   patient_labels=np.asarray(patient_labels, dtype=np.int64),
                   slide_names=tuple(slide_names),
                   slide_patient=slide_patient,
                   item_slide=item_slide)

    @property
    def num_patients(self) -> int:
        """int: Number of patients."""
        return len(self.patient_names)

    @property
    def num_slides(self) -> int:
        """int: Number of slides."""
        return len(self.slide_names)

    @property
    def num_items(self) -> int:
        """int: Number of dataset items (patches)."""
        return len(self.item_slide)

    def slides_of(self, patient: int) -> np.ndarray:
        """Slide indices of a patient, ``(num_slides_of_patient,)`` int64."""
        lo, hi = self._slide_ptr[patient], self._slide_ptr[patient + 1]
        return self._slide_order[lo:hi]

    def patches_of(self, slide: int) -> np.ndarray:
        """Dataset indices of a slide's patches, ``(num_patches,)`` int64."""
        lo, hi = self._patch_ptr[slide], self._patch_ptr[slide + 1]
        return self._patch_order[lo:hi]

    def patients_of_class(self, label: int) -> np.ndarray:
        """Patient indices with class ``label``, ``(n,)`` int64."""
        return np.flatnonzero(self.patient_labels == label)
