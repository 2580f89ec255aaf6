"""Weighted kNN votes: a hand-worked example, chunking invariance, memory
planning and bad input."""
import math

import pytest
import torch

from hlss_plugin.evaluation.functional import (knn_chunk_sizes,
                                               knn_memory_bytes, knn_scores)


def _brute_force(query, bank, labels, num_classes, k, temperature):
    """Independent reference: full float64 similarity matrix, stable sort
    (ties: lower bank index first), votes summed one by one."""
    q = torch.nn.functional.normalize(query.double(), dim=1)
    b = torch.nn.functional.normalize(bank.double(), dim=1)
    sims = q @ b.T
    out = torch.zeros(len(q), num_classes, dtype=torch.float64)
    for row in range(len(q)):
        order = torch.sort(sims[row], descending=True, stable=True).indices
        for j in order[:k].tolist():
            out[row, labels[j]] += math.exp(float(sims[row, j]) / temperature)
    return out


def test_hand_worked_example():
    bank = torch.tensor([[1., 0.],    # label 0, cos to q0 = 1
                         [0., 1.],    # label 1, cos 0
                         [1., 1.],    # label 1, cos 1/sqrt(2)
                         [-1., 0.],   # label 0, cos -1
                         [3., 4.]])   # label 2, cos 0.6
    labels = torch.tensor([0, 1, 1, 0, 2])
    query = torch.tensor([[1., 0.], [0., 2.]])
    scores = knn_scores(query, bank, labels, 3, k=3, temperature=0.5)
    # q0: neighbours b0 (1.0), b2 (0.7071), b4 (0.6); weight exp(sim / 0.5)
    #     class 0: e^2 = 7.389056, class 1: e^1.414214 = 4.113250,
    #     class 2: e^1.2 = 3.320117
    # q1 = (0, 2): neighbours b1 (1.0), b4 (0.8), b2 (0.7071)
    #     class 0: 0, class 1: e^2 + e^1.414214 = 11.502306,
    #     class 2: e^1.6 = 4.953032
    expected = torch.tensor([[7.389056, 4.113250, 3.320117],
                             [0.0, 11.502306, 4.953032]], dtype=torch.float64)
    assert scores.dtype == torch.float64
    assert torch.allclose(scores, expected, rtol=1e-6, atol=1e-9)


def test_ties_prefer_the_lower_bank_index():
    bank = torch.tensor([[1., 0.], [2., 0.], [0., 1.]])  # rows 0, 1 tie
    query = torch.tensor([[1., 0.]])
    for chunk in (None, 1, 2):
        s = knn_scores(query, bank, torch.tensor([0, 1, 1]), 2, k=1,
                       temperature=1.0, bank_chunk=chunk)
        assert s[0, 1] == 0 and s[0, 0] == pytest.approx(math.e)
        s = knn_scores(query, bank, torch.tensor([1, 0, 0]), 2, k=1,
                       temperature=1.0, bank_chunk=chunk)
        assert s[0, 0] == 0 and s[0, 1] == pytest.approx(math.e)


@pytest.mark.parametrize('tied', [False, True])
def test_chunked_equals_unchunked_exactly(tied):
    g = torch.Generator().manual_seed(0)
    if tied:  # 5 distinct bank rows, repeated: many equal similarities
        base = torch.randn(5, 6, generator=g)
        query = torch.randn(37, 6, generator=g)
        bank = base[torch.randint(0, 5, (150, ), generator=g)]
    else:
        query = torch.randn(37, 24, generator=g)
        bank = torch.randn(150, 24, generator=g)
    labels = torch.randint(0, 4, (150, ), generator=g)
    full = knn_scores(query, bank, labels, 4, k=20, query_chunk=37,
                      bank_chunk=150)
    for qc, bc in [(1, 1), (5, 7), (16, 64), (36, 149), (37, 19), (2, 150),
                   (None, None)]:
        out = knn_scores(query, bank, labels, 4, k=20, query_chunk=qc,
                         bank_chunk=bc)
        assert torch.equal(out, full), (qc, bc)
    ref = _brute_force(query, bank, labels, 4, 20, 0.07)
    assert torch.allclose(full, ref, rtol=1e-4)


def test_k_equal_to_bank_and_float64():
    g = torch.Generator().manual_seed(1)
    query = torch.randn(5, 8, generator=g, dtype=torch.float64)
    bank = torch.randn(9, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 3, (9, ), generator=g)
    out = knn_scores(query, bank, labels, 3, k=9, temperature=0.2,
                     bank_chunk=4)
    ref = _brute_force(query, bank, labels, 3, 9, 0.2)
    assert torch.allclose(out, ref, rtol=1e-12)
    assert knn_scores(query[:0], bank, labels, 3, k=2).shape == (0, 3)


def test_memory_plan_fits_the_budget():
    for q, b, d, k in [(10000, 50000, 2048, 200), (100000, 300000, 2048,
                                                   200),
                       (10, 10**7, 2048, 200), (7, 50, 10**6, 5),
                       (10**6, 10**6, 128, 20)]:
        for budget in (64 * 2**20, 512 * 2**20):
            for device in ('cpu', 'cuda'):
                qc, bc = knn_chunk_sizes(q, b, d, k, budget, 4, device)
                assert 1 <= qc <= q and 1 <= bc <= b
                assert knn_memory_bytes(qc, bc, d, k, q, b, 4, device,
                                        budget) <= budget
    # a bigger bank does not grow the plan
    small = knn_chunk_sizes(10000, 50000, 2048, 200)
    assert knn_chunk_sizes(10000, 5 * 10**6, 2048, 200) == small


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(2)
    query, bank = torch.randn(300, 64, generator=g), torch.randn(
        2000, 64, generator=g)
    labels = torch.randint(0, 7, (2000, ), generator=g)
    cpu = knn_scores(query, bank, labels, 7, k=50)
    gpu = knn_scores(query, bank, labels, 7, k=50, device='cuda')
    assert gpu.device.type == 'cuda'
    assert torch.allclose(gpu.cpu(), cpu, rtol=1e-4)


@pytest.mark.parametrize('kwargs,match', [
    (dict(k=11), r'k=11 is larger than the bank \(10 embeddings\); lower k '
     r'to at most 10'),
    (dict(bank=torch.ones(0, 4), bank_labels=torch.zeros(0,
                                                         dtype=torch.long)),
     'the bank is empty'),
    (dict(query=torch.ones(2, 3)), 'D=3 but the bank has D=4'),
    (dict(bank_labels=torch.full((10, ), 3)), r'\[0, 3\)'),
    (dict(bank_labels=torch.zeros(9, dtype=torch.long)), 'one label per'),
    (dict(k=0), 'k must be an int >= 1'),
    (dict(temperature=0.0), 'temperature'),
    (dict(query_chunk=0), 'query_chunk'),
    (dict(bank=torch.full((10, 4), float('nan'))), 'bank row 0 contains NaN'),
])
def test_bad_input(kwargs, match):
    args = dict(query=torch.ones(2, 4), bank=torch.ones(10, 4),
                bank_labels=torch.zeros(10, dtype=torch.long),
                num_classes=3, k=5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        knn_scores(**args)
