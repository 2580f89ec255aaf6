"""HierarchicalClassificationMetric: patch scores → three levels."""
import pytest
import torch
from sklearn.metrics import accuracy_score

from hlss_plugin.evaluation.metrics.hierarchical_classification_metric \
    import HierarchicalClassificationMetric


def sample(uid, score, label, slide, patient):
    return dict(pred_score=torch.tensor(score), gt_label=torch.tensor([label]),
                slide_idx=slide, patient_idx=patient, sample_idx=uid)


SAMPLES = [
    # patient 0 (class 0): slide 0 right twice, slide 1 wrong once
    sample(0, [0.9, 0.1], 0, 0, 0), sample(1, [0.6, 0.4], 0, 0, 0),
    sample(2, [0.2, 0.8], 0, 1, 0),
    # patient 1 (class 1): one slide, one patch wrong, overall right
    sample(3, [0.3, 0.7], 1, 2, 1), sample(4, [0.55, 0.45], 1, 2, 1),
]


def test_levels_and_dedup_of_padding():
    metric = HierarchicalClassificationMetric(topk=(1, ))
    metric.dataset_meta = dict(classes=('a', 'b'))
    metric.process({}, SAMPLES + SAMPLES[:2])  # DDP padding repeats items
    out = metric.compute_metrics(metric.results)
    patch_pred = [0, 0, 1, 1, 0]
    assert out['patch/acc'] == pytest.approx(
        100 * accuracy_score([0, 0, 0, 1, 1], patch_pred))
    # slide 0 -> a, slide 1 -> b (wrong), slide 2: 1.0 vs 0.85+... -> b
    assert out['slide/acc'] == pytest.approx(100 * 2 / 3)
    # patient 0: a = .9+.6+.2 = 1.7 > b = 1.3 -> right; patient 1 right
    assert out['patient/acc'] == pytest.approx(100.0)
    assert {'patch/mca', 'patch/map', 'patient/map'} <= set(out)


def test_missing_fields_and_empty():
    metric = HierarchicalClassificationMetric()
    bad = dict(SAMPLES[0])
    del bad['slide_idx']
    with pytest.raises(ValueError, match=r"lacks \['slide_idx'\]"):
        metric.process({}, [bad])
    with pytest.raises(ValueError, match='val split is empty'):
        metric.compute_metrics([])
    with pytest.raises(ValueError, match='unknown levels'):
        HierarchicalClassificationMetric(levels=('tile', ))
