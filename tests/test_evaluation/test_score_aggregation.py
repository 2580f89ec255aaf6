"""Patch → slide / patient aggregation: 'sum' and the published
(HiDisc / HLSS) softmax-of-L1 mode, against NumPy and scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.metrics import (accuracy_score, average_precision_score,
                             balanced_accuracy_score, top_k_accuracy_score)

from hlss_plugin.evaluation.functional import (AGGREGATIONS,
                                               aggregate_scores,
                                               hierarchical_metrics,
                                               patch_probabilities)

# Slide 0 (label 2): one confident class-2 patch, two hesitant 4:5 patches.
# 'sum' votes (.89, 1.11, 1.00) -> class 1; 'published' votes
# (.937, 1.022, 1.041) -> class 2.  Slide 1 (label 0) is easy.
HAND_SCORES = torch.tensor([[0., 0., 1.], [4., 5., 0.], [4., 5., 0.],
                            [6., 1., 0.]], dtype=torch.float64)
HAND_LABELS = torch.tensor([2, 2, 2, 0])
HAND_SLIDES = torch.tensor([10, 10, 10, 11])
HAND_PATIENTS = torch.tensor([0, 0, 0, 1])


def _numpy_published(scores, groups):
    """softmax(s / sum(s)) per patch, summed per group, L1-normalised."""
    s = np.asarray(scores, dtype=np.float64)
    l1 = s / s.sum(1, keepdims=True)
    e = np.exp(l1)
    probs = e / e.sum(1, keepdims=True)
    ids = np.unique(groups)
    summed = np.stack([probs[groups == g].sum(0) for g in ids])
    return probs, summed / summed.sum(1, keepdims=True), ids


def _numpy_sum(scores, groups):
    s = np.asarray(scores, dtype=np.float64)
    probs = s / s.sum(1, keepdims=True)
    ids = np.unique(groups)
    summed = np.stack([probs[groups == g].sum(0) for g in ids])
    return probs, summed / summed.sum(1, keepdims=True), ids


def _sklearn(scores, labels, c):
    pred = scores.argmax(1)
    return dict(
        acc=100 * accuracy_score(labels, pred),
        top2=100 * top_k_accuracy_score(labels, scores, k=2,
                                        labels=np.arange(c)),
        mca=100 * balanced_accuracy_score(labels, pred),
        map=100 * np.mean([average_precision_score(labels == k, scores[:, k])
                           for k in np.unique(labels)]))


def _random_case(n=90, c=4, seed=0):
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, 8, n)
    slides = patients * 3 + rng.integers(0, 3, n)
    labels = patients % c
    scores = rng.random((n, c)) * rng.integers(1, 30, (n, 1))
    scores[np.arange(n), labels] += rng.random(n) * 5
    return (torch.from_numpy(scores), torch.from_numpy(labels),
            torch.from_numpy(slides), torch.from_numpy(patients))


def test_aggregations_are_the_two_modes():
    assert AGGREGATIONS == ('sum', 'published')


@pytest.mark.parametrize('seed', [0, 1])
def test_published_aggregation_matches_numpy(seed):
    scores, _, slides, patients = _random_case(seed=seed)
    for groups in (slides, patients):
        ref_probs, ref_agg, ref_ids = _numpy_published(scores.numpy(),
                                                       groups.numpy())
        agg, ids = aggregate_scores(scores, groups, 'published')
        assert ids.tolist() == ref_ids.tolist()
        np.testing.assert_allclose(agg.numpy(), ref_agg, rtol=1e-12)
        np.testing.assert_allclose(
            patch_probabilities(scores, 'published').numpy(), ref_probs,
            rtol=1e-12)
        # the default is the old behaviour: L1 per patch, sum, L1
        _, sum_agg, _ = _numpy_sum(scores.numpy(), groups.numpy())
        np.testing.assert_allclose(aggregate_scores(scores, groups)[0],
                                   sum_agg, rtol=1e-12)


@pytest.mark.parametrize('aggregation', AGGREGATIONS)
def test_hierarchical_metrics_match_sklearn(aggregation):
    scores, labels, slides, patients = _random_case(seed=2)
    ours = hierarchical_metrics(scores, labels, slides, patients, 4,
                                topk=(1, 2), aggregation=aggregation)
    formula = _numpy_published if aggregation == 'published' else _numpy_sum
    y = labels.numpy()
    for level, groups in (('patch', None), ('slide', slides),
                          ('patient', patients)):
        g = np.arange(len(y)) if groups is None else groups.numpy()
        probs, agg, ids = formula(scores.numpy(), g)
        level_scores = probs if groups is None else agg
        level_labels = np.array([y[g == i][0] for i in ids])
        ref = _sklearn(level_scores, level_labels, 4)
        for key, value in ref.items():
            assert ours[level][key] == pytest.approx(value, abs=1e-9), \
                (level, key)


def test_patch_ranking_metrics_do_not_depend_on_the_aggregation():
    scores, labels, slides, patients = _random_case(seed=3)
    total, published = (hierarchical_metrics(
        scores, labels, slides, patients, 4, aggregation=a)['patch']
        for a in AGGREGATIONS)
    for key in ('acc', 'top2', 'top3', 'mca', 'confusion'):
        assert total[key] == published[key], key
    assert total['map'] != pytest.approx(published['map'])


def test_hand_example_sum_and_published_disagree():
    sum_agg, ids = aggregate_scores(HAND_SCORES, HAND_SLIDES, 'sum')
    pub_agg, _ = aggregate_scores(HAND_SCORES, HAND_SLIDES, 'published')
    assert ids.tolist() == [10, 11]
    # hand-worked slide 10: sum = (2 * 4/9, 2 * 5/9, 1) / 3
    np.testing.assert_allclose(sum_agg[0], np.array([8 / 9, 10 / 9, 1]) / 3,
                               rtol=1e-12)
    a = np.exp([0., 0., 1.]) / np.exp([0., 0., 1.]).sum()
    b = np.exp([4 / 9, 5 / 9, 0.]) / np.exp([4 / 9, 5 / 9, 0.]).sum()
    np.testing.assert_allclose(pub_agg[0], (a + 2 * b) / 3, rtol=1e-12)
    assert sum_agg.argmax(1).tolist() == [1, 0]
    assert pub_agg.argmax(1).tolist() == [2, 0]

    for aggregation, expected in (('sum', 50.0), ('published', 100.0)):
        m = hierarchical_metrics(HAND_SCORES, HAND_LABELS, HAND_SLIDES,
                                 HAND_PATIENTS, 3, aggregation=aggregation)
        assert m['patch']['acc'] == 50.0  # patches 1, 2 vote class 1
        assert m['slide']['acc'] == expected
        assert m['patient']['acc'] == expected


@pytest.mark.parametrize('bad', ['mean', 'Published', None, 1])
def test_unknown_aggregation_is_an_error(bad):
    match = (r"aggregation must be one of \('sum', 'published'\), got "
             + repr(bad).replace('(', r'\(').replace(')', r'\)'))
    with pytest.raises(ValueError, match=match):
        patch_probabilities(HAND_SCORES, bad)
    with pytest.raises(ValueError, match=match):
        aggregate_scores(HAND_SCORES, HAND_SLIDES, bad)
    with pytest.raises(ValueError, match=match):
        hierarchical_metrics(HAND_SCORES, HAND_LABELS, HAND_SLIDES,
                             HAND_PATIENTS, 3, aggregation=bad)
