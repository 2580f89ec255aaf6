"""HierarchicalSupConLoss against NumPy formulas written from the SupCon paper
(Khosla et al. 2020, L_out), invariances, gradcheck, errors and a 2-process
gloo + DDP equivalence test."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from hlss_plugin.models.losses.hierarchical_supcon_loss import \
    HierarchicalSupConLoss
from ...dist_helpers import run_distributed

# ----------------------------------------------------------------------------
# Independent references (float64 NumPy)
# ----------------------------------------------------------------------------


def supcon_paper_np(emb, ids, tau, base_tau=None):
    """Eq. (2) of Khosla et al. (L_out), averaged over anchors, written as
    loops over the index sets I, A(i) and P(i) of the paper."""
    base_tau = tau if base_tau is None else base_tau
    n_patches, n_views, _ = emb.shape
    z = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
    index_set = [(n, v) for n in range(n_patches) for v in range(n_views)]
    per_anchor = []
    for i in index_set:
        a_set = [a for a in index_set if a != i]
        p_set = [p for p in a_set if ids[p[0]] == ids[i[0]]]
        if not p_set:
            continue
        denom = sum(math.exp(z[i] @ z[a] / tau) for a in a_set)
        total = sum(math.log(math.exp(z[i] @ z[p] / tau) / denom)
                    for p in p_set)
        per_anchor.append(-total / len(p_set))
    return tau / base_tau * float(np.mean(per_anchor))


def supcon_view_major_np(emb, ids, tau, base_tau=None):
    """The same loss in the "HiDisc-style" layout: the N*V embeddings stacked
    view-major [all view 0; all view 1; ...] with a label vector, a positive
    mask and a self-exclusion mask, max-subtracted logits."""
    base_tau = tau if base_tau is None else base_tau
    n_patches, n_views, _ = emb.shape
    z = emb / np.linalg.norm(emb, axis=-1, keepdims=True)
    feats = np.concatenate([z[:, v] for v in range(n_views)], axis=0)
    labels = np.tile(np.asarray(ids), n_views)
    logits = feats @ feats.T / tau
    logits = logits - logits.max(axis=1, keepdims=True)
    not_self = 1.0 - np.eye(len(labels))
    pos = (labels[:, None] == labels[None, :]).astype(np.float64) * not_self
    log_prob = logits - np.log((np.exp(logits) * not_self).sum(1,
                                                                keepdims=True))
    mean_log_prob_pos = (pos * log_prob).sum(1) / pos.sum(1)
    return -(tau / base_tau) * mean_log_prob_pos.mean()


def grid_ids(n_patients, n_slides, n_patches):
    """Patch / slide / patient ids of a P x S x K grid flattened patient-major
    (patch index n = (p * S + s) * K + k)."""
    n = np.arange(n_patients * n_slides * n_patches)
    return dict(
        patch=n, slide=n // n_patches, patient=n // (n_slides * n_patches))


def torch_loss(emb, ids, **kwargs):
    loss = HierarchicalSupConLoss(**kwargs)
    return loss(torch.as_tensor(emb), torch.as_tensor(ids,
                                                      dtype=torch.long)).item()


P, S, K, V, D = 2, 2, 3, 2, 5

# ----------------------------------------------------------------------------
# Values
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('level', ['patch', 'slide', 'patient'])
@pytest.mark.parametrize('tau', [0.07, 0.5])
def test_matches_paper_and_view_major_references(level, tau):
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((P * S * K, V, D))
    ids = grid_ids(P, S, K)[level]
    got = torch_loss(emb, ids, temperature=tau)
    paper = supcon_paper_np(emb, ids, tau)
    assert got == pytest.approx(paper, abs=1e-6)
    assert got == pytest.approx(supcon_view_major_np(emb, ids, tau), abs=1e-6)
    assert paper == pytest.approx(
        supcon_view_major_np(emb, ids, tau), abs=1e-9)


def test_levels_differ_and_three_views():
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((P * S * K, 3, D))
    values = []
    for level, ids in grid_ids(P, S, K).items():
        got = torch_loss(emb, ids)
        assert got == pytest.approx(supcon_paper_np(emb, ids, 0.07), abs=1e-6)
        values.append(got)
    assert len(set(np.round(values, 6))) == 3


@pytest.mark.parametrize('ids', [
    [5, 5, 5, 9, 2, 2, 7],  # slides with 3, 2, 1 and 1 patches
    [0, 1, 2, 3, 4, 5, 6],  # all singletons: only the other views are pos.
    [3, 3, 3, 3, 3, 3, 3],  # a single group
])
def test_uneven_groups(ids):
    rng = np.random.default_rng(2)
    for n_views in (2, 3):
        emb = rng.standard_normal((len(ids), n_views, 4))
        got = torch_loss(emb, ids)
        assert got == pytest.approx(supcon_paper_np(emb, ids, 0.07), abs=1e-6)
        assert got == pytest.approx(
            supcon_view_major_np(emb, ids, 0.07), abs=1e-6)


def test_random_ids_and_dtypes():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 3, size=9)
    emb = rng.standard_normal((9, 2, 6))
    ref = supcon_paper_np(emb, ids, 0.07)
    for dtype in (torch.int64, torch.int32, torch.uint8):
        got = HierarchicalSupConLoss()(torch.as_tensor(emb),
                                       torch.as_tensor(ids, dtype=dtype))
        assert got.item() == pytest.approx(ref, abs=1e-6)
    got32 = HierarchicalSupConLoss()(torch.as_tensor(emb, dtype=torch.float32),
                                     torch.as_tensor(ids))
    assert got32.dtype == torch.float32
    assert got32.item() == pytest.approx(ref, rel=1e-4)


# ----------------------------------------------------------------------------
# Invariances and temperature
# ----------------------------------------------------------------------------


def test_permuting_patients_and_patches_leaves_loss_unchanged():
    rng = np.random.default_rng(4)
    emb = rng.standard_normal((P + 1, S, K, V, D))  # grid of 3 patients
    ids = {k: v.reshape(P + 1, S, K) for k, v in grid_ids(P + 1, S, K).items()}
    perm = np.array([2, 0, 1])
    for level in ids:
        base = torch_loss(emb.reshape(-1, V, D), ids[level].reshape(-1))
        permuted = torch_loss(emb[perm].reshape(-1, V, D),
                              ids[level][perm].reshape(-1))
        assert permuted == pytest.approx(base, abs=1e-10)
        # any permutation of the patch rows (ids moved along)
        rows = rng.permutation((P + 1) * S * K)
        shuffled = torch_loss(emb.reshape(-1, V, D)[rows],
                              ids[level].reshape(-1)[rows])
        assert shuffled == pytest.approx(base, abs=1e-10)


def test_relabelling_ids_leaves_loss_unchanged():
    rng = np.random.default_rng(5)
    emb = rng.standard_normal((P * S * K, V, D))
    ids = grid_ids(P, S, K)['slide']
    base = torch_loss(emb, ids)
    assert torch_loss(emb, ids + 1000) == pytest.approx(base, abs=1e-10)
    bijection = np.array([40, 7, 13, 2])
    assert torch_loss(emb, bijection[ids]) == pytest.approx(base, abs=1e-10)
    # merging two groups is NOT a relabelling: the loss changes
    assert abs(torch_loss(emb, np.minimum(ids, 2)) - base) > 1e-3


def test_l2_normalisation_inside():
    rng = np.random.default_rng(6)
    emb = rng.standard_normal((P * S * K, V, D))
    ids = grid_ids(P, S, K)['patient']
    scales = rng.uniform(0.01, 100.0, size=(P * S * K, V, 1))
    assert torch_loss(emb * scales, ids) == pytest.approx(
        torch_loss(emb, ids), abs=1e-10)


def test_temperature_behaviour():
    rng = np.random.default_rng(7)
    emb = rng.standard_normal((P * S * K, V, D))
    ids = grid_ids(P, S, K)['slide']
    n_total = P * S * K * V
    # base_temperature only rescales by tau / tau_base
    assert torch_loss(emb, ids, temperature=0.1,
                      base_temperature=0.07) == pytest.approx(
                          0.1 / 0.07 * torch_loss(emb, ids, temperature=0.1),
                          abs=1e-10)
    # tau -> inf: every softmax is uniform over the N*V - 1 others
    assert torch_loss(emb, ids, temperature=1e6) == pytest.approx(
        math.log(n_total - 1), abs=1e-5)
    # perfectly separated groups (one orthogonal direction per group) and
    # tau -> 0: negatives vanish, the loss tends to mean_i log |P(i)|
    clustered = np.eye(D)[ids][:, None, :].repeat(V, axis=1)
    n_pos = np.bincount(ids)[ids] * V - 1
    low = torch_loss(clustered, ids, temperature=0.01)
    assert low == pytest.approx(np.log(n_pos).mean(), abs=1e-6)
    # and a higher temperature is penalised on the same embeddings
    assert torch_loss(clustered, ids, temperature=0.5) > low + 0.1


def test_gradcheck_and_build_from_registry():
    loss = MODELS.build(dict(type='HierarchicalSupConLoss', temperature=0.3))
    assert isinstance(loss, HierarchicalSupConLoss)
    assert loss.base_temperature == 0.3
    emb = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([0, 0, 1])
    assert torch.autograd.gradcheck(lambda e: loss(e, ids), (emb, ))
    weighted = HierarchicalSupConLoss(temperature=0.3, loss_weight=2.5)
    assert weighted(emb, ids).item() == pytest.approx(
        2.5 * loss(emb, ids).item(), abs=1e-12)
    assert loss(emb, ids).shape == ()


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('kwargs, match', [
    (dict(temperature=0), 'temperature must be a finite number > 0'),
    (dict(temperature=-0.1), 'temperature'),
    (dict(temperature=float('inf')), 'temperature'),
    (dict(temperature='0.07'), 'temperature'),
    (dict(temperature=True), 'temperature'),
    (dict(base_temperature=0.0), 'base_temperature must be'),
    (dict(gather_distributed='yes'), 'gather_distributed must be True or'),
    (dict(ids_scope='local'), r"ids_scope must be one of \('global', 'rank'"),
    (dict(loss_weight=-1.0), 'loss_weight must be a finite number >= 0'),
])
def test_init_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalSupConLoss(**kwargs)


def test_forward_errors():
    loss = HierarchicalSupConLoss()
    ids = torch.arange(4)
    with pytest.raises(ValueError, match=r'shape \(N, V, D\).*got \(4, 8\)'):
        loss(torch.randn(4, 8), ids)
    with pytest.raises(ValueError, match=r'\(N, V, D\)'):
        loss(np.zeros((4, 2, 8)), ids)
    with pytest.raises(ValueError, match=r'V >= 2 views, got \(N, V\) = '
                       r'\(4, 1\)'):
        loss(torch.randn(4, 1, 8), ids)
    with pytest.raises(ValueError, match='N >= 1'):
        loss(torch.randn(0, 2, 8), torch.arange(0))
    with pytest.raises(ValueError, match='floating point'):
        loss(torch.ones(4, 2, 8, dtype=torch.long), ids)
    with pytest.raises(ValueError, match=r'ids has 3 entries but embeddings '
                       r'has N = 4.*shape \(4,\)'):
        loss(torch.randn(4, 2, 8), torch.arange(3))
    with pytest.raises(ValueError, match='integer tensor'):
        loss(torch.randn(4, 2, 8), ids.float())
    with pytest.raises(ValueError, match=r'1-d integer tensor of shape '
                       r'\(N,\) = \(4,\)'):
        loss(torch.randn(4, 2, 8), ids.reshape(2, 2))
    with pytest.raises(ValueError, match='1-d integer tensor'):
        loss(torch.randn(4, 2, 8), [0, 1, 2, 3])


# ----------------------------------------------------------------------------
# Distributed: 2 gloo processes + DDP == single process on the whole batch
# ----------------------------------------------------------------------------

_DIST_P, _DIST_S, _DIST_K, _DIST_V, _DIN, _DOUT = 4, 2, 2, 2, 6, 5


def _global_batch():
    gen = torch.Generator().manual_seed(1)
    n = _DIST_P * _DIST_S * _DIST_K
    x = torch.randn(n, _DIST_V, _DIN, generator=gen, dtype=torch.float64)
    ids = {k: torch.as_tensor(v) for k, v in grid_ids(_DIST_P, _DIST_S,
                                                      _DIST_K).items()}
    return x, ids


def _hvc(emb, patch_ids, ids, distributed):
    """Sum of the three levels; patch ids are rank-local when distributed."""
    patch = HierarchicalSupConLoss(
        gather_distributed=distributed, ids_scope='rank')
    upper = HierarchicalSupConLoss(gather_distributed=distributed)
    return dict(
        patch=patch(emb, patch_ids),
        slide=upper(emb, ids['slide']),
        patient=upper(emb, ids['patient']))


def _ddp_step(rank, patients_per_rank):
    x, ids = _global_batch()
    per_patient = _DIST_S * _DIST_K
    start = sum(patients_per_rank[:rank]) * per_patient
    stop = start + patients_per_rank[rank] * per_patient
    torch.manual_seed(0)
    linear = nn.Linear(_DIN, _DOUT).double()
    reference = copy.deepcopy(linear)
    ddp = nn.parallel.DistributedDataParallel(linear, device_ids=None)

    # distributed: this rank's patients; patch ids 0..n_local-1 (rank-local)
    local_ids = {k: v[start:stop] for k, v in ids.items()}
    losses = _hvc(ddp(x[start:stop]), torch.arange(stop - start), local_ids,
                  True)
    sum(losses.values()).backward()

    # single process on the concatenated batch, dataset-wide patch ids
    ref_losses = _hvc(reference(x), ids['patch'], ids, False)
    sum(ref_losses.values()).backward()

    for level, value in losses.items():
        torch.testing.assert_close(value, ref_losses[level], rtol=1e-5,
                                   atol=0)
    for (name, param), ref_param in zip(linear.named_parameters(),
                                        reference.parameters()):
        torch.testing.assert_close(
            param.grad, ref_param.grad, rtol=1e-5, atol=1e-12, msg=name)

    # the id convention matters: rank-local patch ids read as global ids
    # would make patch k of rank 0 and patch k of rank 1 positives
    wrong = HierarchicalSupConLoss(gather_distributed=True)(
        x[start:stop].reshape(stop - start, _DIST_V, _DIN),
        torch.arange(stop - start))
    right = HierarchicalSupConLoss(gather_distributed=True, ids_scope='rank')(
        x[start:stop].reshape(stop - start, _DIST_V, _DIN),
        torch.arange(stop - start))
    assert abs(wrong.item() - right.item()) > 1e-3


def _supcon_worker(rank, world_size):
    assert world_size == 2
    _ddp_step(rank, (2, 2))  # even split of the 4 patients
    _ddp_step(rank, (3, 1))  # uneven split: 12 and 4 patches


def test_distributed_equals_single_process():
    run_distributed(_supcon_worker, 2)


def test_gather_distributed_without_process_group_is_local():
    rng = np.random.default_rng(8)
    emb = torch.as_tensor(rng.standard_normal((6, 2, 3)))
    ids = torch.tensor([0, 0, 1, 1, 2, 2])
    for scope in ('global', 'rank'):
        loss = HierarchicalSupConLoss(gather_distributed=True, ids_scope=scope)
        assert loss(emb, ids).item() == pytest.approx(
            supcon_paper_np(emb.numpy(), ids.numpy(), 0.07), abs=1e-6)
