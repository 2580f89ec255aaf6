"""Hierarchy index lookups against a brute-force scan."""
import numpy as np
import pytest

from hlss_plugin.datasets.hierarchy import Hierarchy


def test_lookups_match_brute_force():
    rng = np.random.default_rng(0)
    slide_patient = rng.integers(0, 5, size=12)
    slide_patient[:5] = np.arange(5)  # every patient has a slide
    item_slide = rng.permutation(np.repeat(np.arange(12), 3))
    h = Hierarchy.from_items(
        item_patient=slide_patient[item_slide], item_slide=item_slide,
        patient_labels=[0, 1, 0, 2, 1],
        patient_names=[f'p{i}' for i in range(5)],
        slide_names=[f's{i}' for i in range(12)])
    assert (h.num_patients, h.num_slides, h.num_items) == (5, 12, 36)
    for p in range(5):
        assert sorted(h.slides_of(p)) == sorted(
            np.flatnonzero(slide_patient == p))
    for s in range(12):
        assert sorted(h.patches_of(s)) == sorted(np.flatnonzero(
            item_slide == s))
    assert h.patients_of_class(1).tolist() == [1, 4]


def test_slide_shared_by_patients_is_refused():
    with pytest.raises(ValueError, match="slide 's0' holds patches of "
                       'several patients'):
        Hierarchy.from_items([0, 1], [0, 0], [0, 0], ['a', 'b'], ['s0'])
