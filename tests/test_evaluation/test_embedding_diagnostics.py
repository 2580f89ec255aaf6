"""Collapse diagnostics against NumPy formulas written from the papers
(Roy & Vetterli 2007 effective rank; SimSiam's std of normalised outputs),
with known values, invariances and error paths."""
import math

import numpy as np
import pytest
import torch

from hlss_plugin.evaluation.functional import (effective_rank,
                                               embedding_diagnostics,
                                               normalized_std)


def np_effective_rank(x, center=False):
    """exp(entropy of the L1-normalised singular values), from the paper."""
    x = np.asarray(x, dtype=np.float64)
    if center:
        x = x - x.mean(axis=0, keepdims=True)
    s = np.linalg.svd(x, compute_uv=False)
    s = s[s > 1e-12 * s.max()]
    p = s / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


def np_normalized_std(x):
    x = np.asarray(x, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return float(x.std(axis=0).mean())


def orthonormal(rng, n, r):
    q, _ = np.linalg.qr(rng.standard_normal((n, r)))
    return q


@pytest.mark.parametrize('shape', [(200, 16), (12, 40)])  # N > D, N < D
def test_effective_rank_matches_numpy(shape):
    rng = np.random.default_rng(0)
    # a decaying spectrum, so the entropy is neither 0 nor maximal
    x = rng.standard_normal(shape) * np.geomspace(1, 0.01, shape[1])
    for center in (False, True):
        assert effective_rank(torch.from_numpy(x), center=center) == \
            pytest.approx(np_effective_rank(x, center), rel=1e-8)


@pytest.mark.parametrize('r', [1, 3, 7])
def test_rank_r_isotropic_matrix_has_effective_rank_r(r):
    rng = np.random.default_rng(r)
    n, d = 50, 20
    # r equal singular values: U (n, r) diag(5) V^T (r, d)
    x = orthonormal(rng, n, r) @ (5.0 * orthonormal(rng, d, r).T)
    assert effective_rank(torch.from_numpy(x)) == pytest.approx(r, abs=1e-6)
    # Gaussian rows in an r-dim subspace: close to r, never above
    g = rng.standard_normal((5000, r)) @ orthonormal(rng, d, r).T
    value = effective_rank(torch.from_numpy(g).float())
    assert r * 0.97 < value <= r + 1e-6


def test_collapse_gives_one_and_zero_std():
    rng = np.random.default_rng(1)
    point = rng.standard_normal(32)
    collapsed = np.tile(point, (100, 1)) + 1e-7 * rng.standard_normal(
        (100, 32))
    x = torch.from_numpy(collapsed)
    assert effective_rank(x) == pytest.approx(1.0, abs=1e-3)
    assert normalized_std(x) == pytest.approx(0.0, abs=1e-6)
    exact = torch.from_numpy(np.tile(point, (10, 1)))
    assert effective_rank(exact, center=True) == 0.0  # no direction left
    # spread embeddings score far higher
    spread = torch.from_numpy(rng.standard_normal((100, 32)))
    assert effective_rank(spread) > 20
    assert normalized_std(spread) > 0.1


def test_normalized_std_matches_numpy_and_isotropic_value():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 24)) + 0.5
    assert normalized_std(torch.from_numpy(x)) == pytest.approx(
        np_normalized_std(x), rel=1e-10)
    # zero-mean isotropic rows of dimension D: about 1 / sqrt(D)
    d = 64
    iso = torch.from_numpy(rng.standard_normal((20000, d)))
    assert normalized_std(iso) == pytest.approx(1 / math.sqrt(d), rel=0.02)
    # a zero row stays zero (no division by 0)
    with_zero = torch.cat([iso[:5], torch.zeros(1, d)])
    assert math.isfinite(normalized_std(with_zero))


def test_invariances():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.standard_normal((60, 10)) * np.arange(1, 11))
    q = torch.from_numpy(orthonormal(rng, 10, 10))
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(0))
    base = effective_rank(x)
    assert effective_rank(x[perm]) == pytest.approx(base, rel=1e-10)
    assert effective_rank(3.0 * x) == pytest.approx(base, rel=1e-10)
    assert effective_rank(x @ q) == pytest.approx(base, rel=1e-8)
    assert normalized_std(x[perm]) == pytest.approx(normalized_std(x),
                                                    rel=1e-10)
    # scaling each row does not change the normalised embeddings
    scales = torch.from_numpy(rng.uniform(0.1, 10, (60, 1)))
    assert normalized_std(x * scales) == pytest.approx(normalized_std(x),
                                                       rel=1e-10)


def test_embedding_diagnostics_dict():
    x = torch.randn(40, 8, generator=torch.Generator().manual_seed(0))
    d = embedding_diagnostics(x)
    assert set(d) == {'std', 'std_reference', 'effective_rank',
                      'effective_rank_centered', 'dim', 'samples'}
    assert (d['dim'], d['samples']) == (8, 40)
    assert d['std_reference'] == pytest.approx(8 ** -0.5)
    assert d['effective_rank'] == pytest.approx(np_effective_rank(x.numpy()))
    assert d['effective_rank_centered'] == pytest.approx(
        np_effective_rank(x.numpy(), center=True))


@pytest.mark.parametrize('bad, match', [
    (torch.ones(5), 'must be a 2-D'),
    (torch.ones(0, 4), 'must be a 2-D'),
    (torch.tensor([[1.0, float('nan')]]), 'NaN or inf'),
])
def test_errors(bad, match):
    for fn in (effective_rank, normalized_std, embedding_diagnostics):
        with pytest.raises(ValueError, match=match):
            fn(bad)
