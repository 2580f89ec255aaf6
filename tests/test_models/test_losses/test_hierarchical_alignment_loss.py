"""HierarchicalAlignmentLoss against a NumPy formula written from the
published HLSS recipe (nearest attribute by cosine, softmax over the embedding
dimensions at T = 1, (KL(p||q) + KL(q||p)) / 2, summed over all views,
detached), the differentiable variant, a 2-process gloo test and errors."""
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmpretrain.registry import MODELS

from hlss_plugin.models.losses.hierarchical_alignment_loss import (
    HierarchicalAlignmentLoss, symmetric_kl_div)
from tests.dist_helpers import run_distributed


def _softmax_np(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def alignment_np(visual, text, tau):
    """Per-row (KL(p||q) + KL(q||p)) / 2 and nearest indices."""
    lead = visual.shape[:-1]
    v = visual.reshape(-1, visual.shape[-1])
    cos = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (
        text / np.linalg.norm(text, axis=1, keepdims=True)).T
    idx = cos.argmax(axis=1)
    p = _softmax_np(v / tau)
    q = _softmax_np(text[idx] / tau)
    kl_pq = (p * np.log(p / q)).sum(axis=1)
    kl_qp = (q * np.log(q / p)).sum(axis=1)
    return ((kl_pq + kl_qp) / 2).reshape(lead), idx.reshape(lead)


def published_np(visual, text):
    """The published computation, written out: unit-norm image embeddings,
    the nearest attribute's text embedding, softmax over all D dimensions,
    kl_div summed over every element of the batch, both directions, / 2."""
    v = visual / np.linalg.norm(visual, axis=-1, keepdims=True)
    t = text / np.linalg.norm(text, axis=-1, keepdims=True)
    attr = t[(v @ t.T).argmax(axis=-1)]
    p, q = _softmax_np(v), _softmax_np(attr)
    return ((p * (np.log(p) - np.log(q))).sum() +
            (q * (np.log(q) - np.log(p))).sum()) / 2


A, D = 6, 8


def _inputs(seed, shape):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal((A, shape[-1]))


@pytest.mark.parametrize('shape', [(10, D), (5, 3, D)])
@pytest.mark.parametrize('tau', [1.0, 0.5])
def test_matches_numpy(shape, tau):
    visual, text = _inputs(0, shape)
    per_row, idx = alignment_np(visual, text, tau)
    assert len(set(idx.ravel().tolist())) > 1  # several attributes are used
    vt, tt = torch.as_tensor(visual), torch.as_tensor(text)
    for reduction, expected in [('mean', per_row.mean()),
                                ('sum', per_row.sum()), ('none', per_row)]:
        loss = HierarchicalAlignmentLoss(
            temperature=tau, reduction=reduction, loss_weight=0.5)
        got = loss(vt, tt)
        assert got.shape == np.shape(expected)
        np.testing.assert_allclose(got.numpy(), 0.5 * expected, atol=1e-10)
    nearest = HierarchicalAlignmentLoss().nearest(vt, tt)
    assert nearest.dtype == torch.long and nearest.shape == shape[:-1]
    np.testing.assert_array_equal(nearest.numpy(), idx)


def test_published_form_equals_the_published_formula():
    visual, text = _inputs(5, (6, 2, D))
    unit = visual / np.linalg.norm(visual, axis=-1, keepdims=True)
    text_unit = text / np.linalg.norm(text, axis=-1, keepdims=True)
    loss = HierarchicalAlignmentLoss(detach=True)  # T = 1, sum: defaults
    got = loss(torch.as_tensor(unit), torch.as_tensor(text_unit))
    assert got.item() == pytest.approx(published_np(visual, text), rel=1e-10)
    # the halving and the sum both matter
    per_row, _ = alignment_np(unit, text_unit, 1.0)
    assert abs(2 * per_row.sum() - got.item()) > 1e-6
    assert abs(per_row.mean() - got.item()) > 1e-6


def test_nearest_is_by_cosine_not_dot_product():
    text = torch.tensor([[10.0, 0.0], [1.0, 1.0]])
    visual = torch.tensor([[0.5, 1.0]])  # dot: row 0 wins; cosine: row 1
    assert HierarchicalAlignmentLoss().nearest(visual, text).tolist() == [1]


def test_detach_reproduces_published_code():
    visual, text = _inputs(1, (8, D))
    vt = torch.tensor(visual, requires_grad=True)
    tt = torch.as_tensor(text)
    detached = HierarchicalAlignmentLoss(detach=True)(vt, tt)
    live = HierarchicalAlignmentLoss(detach=False)(vt, tt)
    assert not detached.requires_grad and detached.grad_fn is None
    assert live.requires_grad
    assert detached.item() == pytest.approx(live.item(), abs=1e-12)


def test_gradient_reaches_visual_only_and_the_target_stays_fixed():
    visual, text = _inputs(2, (8, D))
    vt = torch.tensor(visual, requires_grad=True)
    tt = torch.tensor(text, requires_grad=True)
    HierarchicalAlignmentLoss()(vt, tt).backward()
    assert vt.grad.abs().sum() > 0
    assert tt.grad is None  # the target never moves
    # and the gradient itself is right (argmax is piecewise constant)
    loss = HierarchicalAlignmentLoss(temperature=0.7, reduction='mean')
    fixed = torch.as_tensor(text)
    assert torch.autograd.gradcheck(lambda v: loss(v, fixed), (vt, ))


def test_symmetric_in_p_and_q():
    rng = np.random.default_rng(3)
    a = torch.as_tensor(rng.standard_normal((7, A)))
    b = torch.as_tensor(rng.standard_normal((7, A)))
    for tau in (1.0, 0.3):
        ab = symmetric_kl_div(a, b, tau)
        assert ab.shape == (7, )
        torch.testing.assert_close(ab, symmetric_kl_div(b, a, tau))
        assert (ab > 0).all()


def test_zero_when_visual_equals_its_nearest_text_row():
    _, text = _inputs(4, (1, D))
    tt = torch.as_tensor(text)
    visual = tt[[2, 0, 5, 5, 1]]
    loss = HierarchicalAlignmentLoss(reduction='none')
    assert loss.nearest(visual, tt).tolist() == [2, 0, 5, 5, 1]
    assert loss(visual, tt).abs().max().item() < 1e-12
    # a positive rescaling keeps the nearest row but changes the softmax
    assert (loss(3.0 * visual, tt) > 1e-3).all()


def test_build_from_registry():
    loss = MODELS.build(
        dict(type='HierarchicalAlignmentLoss', detach=True, temperature=2.0))
    assert isinstance(loss, HierarchicalAlignmentLoss)
    assert loss.detach and loss.temperature == 2.0
    assert loss.reduction == 'sum' and not loss.gather_distributed


@pytest.mark.parametrize('kwargs, match', [
    (dict(detach='no'), 'detach must be True or False'),
    (dict(gather_distributed=1), 'gather_distributed must be True or False'),
    (dict(temperature=0.0), 'temperature must be a finite number > 0'),
    (dict(temperature=float('nan')), 'temperature'),
    (dict(reduction='avg'), r"reduction must be one of \('sum', 'mean', "),
    (dict(loss_weight=-2), 'loss_weight must be a finite number >= 0'),
    (dict(loss_weight=None), 'loss_weight'),
])
def test_init_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalAlignmentLoss(**kwargs)


def test_forward_errors():
    loss = HierarchicalAlignmentLoss()
    text = torch.randn(A, D)
    with pytest.raises(ValueError, match=r'\(N, D\) or \(N, V, D\).*got '
                       r'\(8,\)'):
        loss(torch.randn(D), text)
    with pytest.raises(ValueError, match=r'\(N, D\) or \(N, V, D\)'):
        loss(torch.randn(2, 2, 2, D), text)
    with pytest.raises(ValueError, match=r'text must be a tensor of shape '
                       r'\(M, D\)'):
        loss(torch.randn(4, D), torch.randn(1, A, D))
    with pytest.raises(ValueError, match='embedding size D'):
        loss(torch.randn(4, D), torch.randn(A, D + 1))
    with pytest.raises(ValueError, match='floating point'):
        loss(torch.ones(4, D, dtype=torch.long), text)
    with pytest.raises(ValueError, match='empty input'):
        loss(torch.randn(0, D), text)


# ----------------------------------------------------------------------------
# Distributed: 2 gloo processes + DDP == single process on the whole batch
# ----------------------------------------------------------------------------

def _dist_step(rank, rows_per_rank, reduction):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(sum(rows_per_rank), 2, D, generator=gen,
                    dtype=torch.float64)
    text = torch.randn(A, D, generator=gen, dtype=torch.float64)
    start = sum(rows_per_rank[:rank])
    stop = start + rows_per_rank[rank]
    torch.manual_seed(0)
    linear = nn.Linear(D, D).double()
    reference = copy.deepcopy(linear)
    ddp = nn.parallel.DistributedDataParallel(linear, device_ids=None)
    kw = dict(reduction=reduction, temperature=0.5)
    got = HierarchicalAlignmentLoss(gather_distributed=True, **kw)(
        ddp(x[start:stop]), text)
    got.backward()
    ref = HierarchicalAlignmentLoss(**kw)(reference(x), text)
    ref.backward()
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=0)
    for param, ref_param in zip(linear.parameters(), reference.parameters()):
        torch.testing.assert_close(param.grad, ref_param.grad, rtol=1e-8,
                                   atol=1e-12)
    # the published value (detached) is the same global number on each rank
    logged = HierarchicalAlignmentLoss(detach=True, gather_distributed=True)(
        x[start:stop], text)
    assert logged.item() == pytest.approx(
        HierarchicalAlignmentLoss()(x, text).item(), rel=1e-12)


def _ha_worker(rank, world_size):
    assert world_size == 2
    for reduction in ('sum', 'mean'):
        _dist_step(rank, (3, 3), reduction)
        _dist_step(rank, (4, 2), reduction)


def test_distributed_equals_single_process():
    run_distributed(_ha_worker, 2)
