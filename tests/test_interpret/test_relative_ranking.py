"""The relative attribute ranking (z-score per attribute against a
reference bank) against an independent NumPy formula, and a constructed
case where the raw ranking gives every item the same top-k but the
relative ranking recovers each item's planted attributes."""
import numpy as np
import pytest
import torch

from hlss_plugin.interpret import (RANKINGS, AttributeExplainer,
                                   ExplainError, distinct_top_k, rank_scores,
                                   reference_statistics)
from hlss_plugin.interpret.explain_driver import explain_level_items
from hlss_plugin.interpret.ranking import EPS

from .test_attribute_explainer import (MEMBERS, RECORDS, FakeHLSS,
                                       _hand_similarities, _images)


def _numpy_z(query, bank):
    """The relative ranking written from its definition: per attribute,
    (s - mean over the bank) / population std over the bank."""
    bank = np.asarray(bank, dtype=np.float64)
    mean = bank.sum(0) / len(bank)
    std = np.sqrt(((bank - mean)**2).sum(0) / len(bank))
    return (np.asarray(query, dtype=np.float64) - mean) / std


def test_rank_scores_match_numpy_z_scores():
    gen = torch.Generator().manual_seed(0)
    bank = (torch.rand(9, 5, generator=gen) * 3 - 1).double()
    query = torch.rand(4, 5, generator=gen)
    stats = reference_statistics(bank)
    np.testing.assert_allclose(stats[0], bank.numpy().mean(0), rtol=1e-6)
    np.testing.assert_allclose(stats[1], bank.numpy().std(0), rtol=1e-6)
    got = rank_scores(query, 'relative', stats)
    assert got.shape == (4, 5) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _numpy_z(query, bank),
                               rtol=1e-6)
    # the default is relative; raw leaves the similarities as they are
    assert RANKINGS[0] == 'relative'
    assert torch.equal(rank_scores(query, stats=stats), got)
    np.testing.assert_array_equal(rank_scores(query, 'raw').numpy(),
                                  query.double().numpy())
    # an attribute constant over the bank: the std is floored at EPS
    flat = torch.tensor([[0.25, 0.], [0.25, 1.]])
    z = rank_scores(torch.tensor([[0.25, 0.5], [0.5, 0.5]]), 'relative',
                    reference_statistics(flat))
    np.testing.assert_allclose(z.numpy(), [[0., 0.], [0.25 / EPS, 0.]])


def test_rank_scores_bad_input():
    stats = reference_statistics(torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"one of \('relative', 'raw'\)"):
        rank_scores(torch.rand(2, 4), 'zscore', stats)
    with pytest.raises(ValueError, match='needs the reference statistics'):
        rank_scores(torch.rand(2, 4), 'relative')
    with pytest.raises(ValueError, match=r'scores \(2, 3\) do not match'):
        rank_scores(torch.rand(2, 3), 'relative', stats)
    with pytest.raises(ValueError, match='M >= 2 patches'):
        reference_statistics(torch.rand(1, 4))


def _bank_images():
    gen = torch.Generator().manual_seed(11)
    return torch.rand(10, 3, 4, 4, generator=gen)


def test_explainer_relative_scores_match_numpy():
    explainer = AttributeExplainer(FakeHLSS(), batch_size=4)
    assert explainer.ranking == 'relative'
    bank_images, images = _bank_images(), _images()
    bank = explainer.fit_reference(bank_images)
    sims = explainer.similarities(images)
    for level in ('patch', 'slide', 'patient'):
        hand_bank = _hand_similarities(bank_images, level)
        np.testing.assert_allclose(bank[level].numpy(), hand_bank, atol=1e-5)
        hand = _hand_similarities(images, level)
        names = explainer.attribute_names(level)
        # patches: each row against the bank's statistics
        keys, means, ranked = explainer.level_scores(level, sims[level])
        assert keys == list(range(6))
        np.testing.assert_allclose(means.numpy(), hand, atol=1e-5)
        np.testing.assert_allclose(ranked.numpy(), _numpy_z(hand, hand_bank),
                                   rtol=1e-4, atol=1e-4)
        # groups: the z-score of the group's mean similarity
        groups = [r['patient'] for r in RECORDS]
        keys, top = explainer.explain_level(level, sims[level], groups, k=2)
        assert keys == ['A', 'B']
        for key, ranked_names in zip(keys, top):
            z = _numpy_z(hand[MEMBERS[key]].mean(0), hand_bank)
            order = np.argsort(-z, kind='stable')[:2]
            assert [n for n, _ in ranked_names] == [names[a] for a in order]
            np.testing.assert_allclose([s for _, s in ranked_names],
                                       z[order], rtol=1e-4, atol=1e-4)
        # one item alone scores as it does among the others: the
        # statistics come from the bank, not from the query items
        _, _, alone = explainer.level_scores(level, sims[level][2:3])
        np.testing.assert_allclose(alone.numpy(), ranked.numpy()[2:3])


def test_relative_ranking_needs_a_reference_and_a_legal_name():
    with pytest.raises(ExplainError, match='ranking must be one of'):
        AttributeExplainer(FakeHLSS(), ranking='zscore')
    explainer = AttributeExplainer(FakeHLSS())
    sims = explainer.similarities(_images())
    with pytest.raises(ExplainError, match='call fit_reference'):
        explainer.explain_level('patch', sims['patch'])
    with pytest.raises(ExplainError, match='patch reference bank'):
        explainer.fit_reference(_images()[:1])
    with pytest.raises(ExplainError, match="no 'slide' similarities"):
        explainer.set_reference({'patch': sims['patch']})


def test_relative_ranking_recovers_planted_attributes_raw_does_not():
    """Ten attributes; 0 and 1 sit 1.0 above the others for every image
    (the shared offset). Item i has two planted attributes (+0.4) among
    2..9. Raw top-2: attributes 0 and 1 for every item; relative top-2:
    each item's planted pair."""
    num_attributes, num_items = 10, 6
    explainer = AttributeExplainer(
        FakeHLSS(dict(patch=torch.randn(num_attributes, 3))))
    raw = AttributeExplainer(explainer.model, ranking='raw')
    names = explainer.attribute_names('patch')
    offset = torch.zeros(num_attributes, dtype=torch.float64)
    offset[:2] = 1.0
    gen = torch.Generator().manual_seed(0)
    bank = offset + 0.05 * torch.randn(200, num_attributes, generator=gen,
                                       dtype=torch.float64)
    explainer.set_reference({'patch': bank})
    planted = [(2, 3), (3, 4), (4, 5), (5, 6), (6, 8), (7, 9)]
    query = offset.repeat(num_items, 1)
    for row, pair in zip(query, planted):
        row[list(pair)] += 0.4
    records = [dict(id=f'p{i}', patient=f'P{i}', slide=f'P{i}/1', cls='hgg')
               for i in range(num_items)]
    truth = {'patch': {f'p{i}': [names[a] for a in pair]
                       for i, pair in enumerate(planted)}}
    # 'trained' ranks relatively, 'untrained' raw (the same similarities)
    out = explain_level_items('patch', dict(trained=explainer,
                                            untrained=raw),
                              dict(trained={'patch': query},
                                   untrained={'patch': query}),
                              records, truth, k=2)
    for item, pair in zip(out['items'], planted):
        assert {n for n, _ in item['top_k']} == {names[a] for a in pair}
        np.testing.assert_allclose(item['similarity'], [0.4, 0.4])
        assert item['untrained_top_k'] == names[:2]
    p = out['precision_at_k']
    assert p['trained'] == 1.0 and p['untrained'] == 0.0
    assert p['chance'] == pytest.approx(2 / num_attributes)
    d = out['distinct_top_k']
    assert (d['trained'], d['untrained'], d['items']) == (6, 1, 6)
    assert d['fraction'] == dict(trained=1.0, untrained=pytest.approx(1 / 6))
    assert d['at_least_half'] == dict(trained=True, untrained=False)


def test_distinct_top_k_counts_sets_not_orders():
    d = distinct_top_k({'a': [['x', 'y'], ['y', 'x'], ['x', 'z'],
                              ['z', 'w']],
                        'b': [['x', 'y']] * 4})
    assert (d['a'], d['b'], d['items']) == (3, 1, 4)
    assert d['fraction'] == dict(a=0.75, b=0.25)
    assert d['at_least_half'] == dict(a=True, b=False)
    half = distinct_top_k({'a': [['x'], ['x'], ['y'], ['y']]})
    assert half['fraction']['a'] == 0.5 and half['at_least_half']['a']
    empty = distinct_top_k({'a': []})
    assert empty == dict(a=0, items=0, fraction=dict(a=None),
                         at_least_half=dict(a=False))
    with pytest.raises(ValueError, match='different numbers of items'):
        distinct_top_k({'a': [['x']], 'b': []})
