"""Patch/slide/patient metrics against scikit-learn on the same scores."""
import numpy as np
import pytest
import torch
from sklearn.metrics import (accuracy_score, average_precision_score,
                             balanced_accuracy_score, confusion_matrix,
                             top_k_accuracy_score)

from hlss_plugin.evaluation.functional import (aggregate_scores,
                                               average_precision,
                                               classification_metrics,
                                               group_labels,
                                               hierarchical_metrics,
                                               metric_keys)


def _random_case(n=60, c=5, seed=0, absent=()):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    for a in absent:  # classes with no sample
        labels[labels == a] = (a + 1) % c
    scores = rng.random((n, c))
    scores[np.arange(n), labels] += rng.random(n)  # some signal
    return torch.from_numpy(scores), torch.from_numpy(labels)


def _sklearn_metrics(scores, labels, c):
    s, y = scores.numpy(), labels.numpy()
    pred = s.argmax(1)
    present = np.unique(y)
    return dict(
        acc=100 * accuracy_score(y, pred),
        top2=100 * top_k_accuracy_score(y, s, k=2, labels=np.arange(c)),
        top3=100 * top_k_accuracy_score(y, s, k=3, labels=np.arange(c)),
        mca=100 * balanced_accuracy_score(y, pred),
        map=100 * np.mean([average_precision_score(y == k, s[:, k])
                           for k in present]),
        confusion=confusion_matrix(y, pred, labels=np.arange(c)).tolist())


@pytest.mark.filterwarnings('ignore:y_pred contains classes not in y_true')
@pytest.mark.parametrize('seed,absent', [(0, ()), (1, (3, )), (2, (0, 4))])
def test_classification_metrics_match_sklearn(seed, absent):
    scores, labels = _random_case(seed=seed, absent=absent)
    ours = classification_metrics(scores, labels, 5)
    ref = _sklearn_metrics(scores, labels, 5)
    assert set(ours) == {'acc', 'top2', 'top3', 'mca', 'map', 'confusion'}
    for key in ('acc', 'top2', 'top3', 'mca', 'map'):
        assert ours[key] == pytest.approx(ref[key], abs=1e-9), key
    assert ours['confusion'] == ref['confusion']
    if absent:  # absent classes neither help nor hurt mca / map
        assert ours['mca'] != pytest.approx(
            100 * np.mean(np.diag(np.asarray(ref['confusion']) /
                                  np.maximum(1, np.sum(ref['confusion'],
                                                       1))[:, None])))


def test_average_precision_with_tied_scores_matches_sklearn():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.random(40) < 0.3
        y[0] = True
        s = rng.integers(0, 4, 40).astype(np.float64)  # many ties
        ours = average_precision(torch.from_numpy(y), torch.from_numpy(s))
        assert ours == pytest.approx(average_precision_score(y, s),
                                     abs=1e-12)


def test_hand_worked_metrics():
    # 4 samples, 3 classes.  argmax: 0, 1, 1, 2  labels: 0, 1, 2, 2
    scores = torch.tensor([[.6, .3, .1], [.2, .5, .3], [.1, .5, .4],
                           [.1, .2, .7]])
    labels = torch.tensor([0, 1, 2, 2])
    m = classification_metrics(scores, labels, 3, topk=(1, 2))
    assert m['acc'] == 75.0
    assert m['top2'] == 100.0
    # recalls: class 0: 1/1, class 1: 1/1, class 2: 1/2
    assert m['mca'] == pytest.approx(100 * (1 + 1 + 0.5) / 3)
    # AP: class 0 ranked first -> 1; class 1: sample 1 (.5) ties sample 2
    # (.5): P at that threshold = 1/2 -> 0.5; class 2: sorted .7 (hit),
    # .4 (hit) -> 1
    assert m['map'] == pytest.approx(100 * (1 + 0.5 + 1) / 3)
    assert m['confusion'] == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert 'top3' not in m


def test_topk_at_least_num_classes_is_100_and_keys():
    scores, labels = _random_case(n=10, c=2)
    m = classification_metrics(scores, labels, 2)
    assert m['top2'] == m['top3'] == 100.0
    assert metric_keys((1, 2, 3)) == ('acc', 'top2', 'top3', 'mca', 'map')
    assert metric_keys((5, )) == ('acc', 'top5', 'mca', 'map')


def test_ties_rank_lower_class_first():
    # all-equal scores: argmax is class 0, the true class 2 is 3rd
    scores = torch.ones(1, 4)
    m = classification_metrics(scores, torch.tensor([2]), 4)
    assert (m['acc'], m['top2'], m['top3']) == (0.0, 0.0, 100.0)


def test_aggregate_scores_hand_example():
    scores = torch.tensor([[3., 1.], [0., 2.], [1., 1.], [0., 0.]])
    agg, ids = aggregate_scores(scores, torch.tensor([7, 7, 2, 9]))
    assert ids.tolist() == [2, 7, 9]
    # group 7: [.75, .25] + [0, 1] = [.75, 1.25] -> / 2
    expected = torch.tensor([[.5, .5], [.375, .625], [0., 0.]])
    assert torch.allclose(agg, expected)


def _np_aggregate(scores, groups):
    s = scores / scores.sum(1, keepdims=True)
    out = {}
    for g in np.unique(groups):
        v = s[groups == g].sum(0)
        out[g] = v / v.sum()
    return np.stack([out[g] for g in sorted(out)])


def test_hierarchical_metrics_match_manual_aggregation():
    rng = np.random.default_rng(5)
    patients = np.repeat(np.arange(12), 6)              # 12 patients
    slides = patients * 2 + rng.integers(0, 2, 72)      # 2 slides each
    labels = (patients % 4)                             # class per patient
    scores = rng.random((72, 4))
    scores[np.arange(72), labels] += 0.3 * rng.random(72)
    t = torch.from_numpy
    out = hierarchical_metrics(t(scores), t(labels), t(slides), t(patients),
                               4)
    assert set(out) == {'patch', 'slide', 'patient'}
    patch = _sklearn_metrics(t(scores / scores.sum(1, keepdims=True)),
                             t(labels), 4)
    for key in ('acc', 'top2', 'mca', 'map'):
        assert out['patch'][key] == pytest.approx(patch[key], abs=1e-9)
    for level, ids in (('slide', slides), ('patient', patients)):
        agg = _np_aggregate(scores, ids)
        first = [np.flatnonzero(ids == g)[0] for g in np.unique(ids)]
        ref = _sklearn_metrics(t(agg), t(labels[first]), 4)
        for key in ('acc', 'top2', 'top3', 'mca', 'map'):
            assert out[level][key] == pytest.approx(ref[key], abs=1e-9), \
                (level, key)
        assert out[level]['confusion'] == ref['confusion']
        assert sum(map(sum, out[level]['confusion'])) == len(first)

    # permuting the patches leaves every metric unchanged
    perm = torch.from_numpy(rng.permutation(72))
    again = hierarchical_metrics(t(scores)[perm], t(labels)[perm],
                                 t(slides)[perm], t(patients)[perm], 4)
    for level in out:
        for key in ('acc', 'top2', 'top3', 'mca', 'map'):
            assert again[level][key] == pytest.approx(out[level][key],
                                                      abs=1e-9)
    only = hierarchical_metrics(t(scores), t(labels), t(slides),
                                t(patients), 4, levels=('slide', ))
    assert list(only) == ['slide']


def test_group_mixing_labels_is_an_error():
    with pytest.raises(ValueError, match=r'slide 3 mixes labels \[0, 1\]'):
        group_labels(torch.tensor([0, 1, 1]), torch.tensor([3, 3, 4]),
                     'slide')
    with pytest.raises(ValueError, match='patient 0 mixes labels'):
        hierarchical_metrics(torch.rand(2, 2), torch.tensor([0, 1]),
                             torch.tensor([0, 1]), torch.tensor([0, 0]), 2)


@pytest.mark.parametrize('kwargs,match', [
    (dict(scores=-torch.ones(2, 2)), 'non-negative'),
    (dict(scores=torch.tensor([[float('nan'), 1.], [1., 1.]])), 'NaN'),
    (dict(scores=torch.ones(2)), r'shape \(N, C\)'),
    (dict(labels=torch.tensor([0, 5])), r'\[0, 2\)'),
    (dict(labels=torch.tensor([0])), 'pass one id per row'),
    (dict(num_classes=3), 'num_classes=3'),
    (dict(topk=(0, )), 'topk'),
    (dict(scores=torch.ones(0, 2), labels=torch.zeros(0, dtype=torch.long)),
     'at least one sample'),
])
def test_classification_metrics_bad_input(kwargs, match):
    args = dict(scores=torch.ones(2, 2), labels=torch.tensor([0, 1]),
                num_classes=2)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        classification_metrics(**args)
