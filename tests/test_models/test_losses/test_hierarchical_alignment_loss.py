"""HierarchicalAlignmentLoss against a NumPy formula (nearest attribute by
cosine, softmax, KL in both directions), gradients, detach and errors."""
import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS

from hlss_plugin.models.losses.hierarchical_alignment_loss import (
    HierarchicalAlignmentLoss, symmetric_kl_div)


def _softmax_np(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def alignment_np(visual, text, tau):
    """Per-row symmetric KL and nearest indices, rows = visual.shape[:-1]."""
    lead = visual.shape[:-1]
    v = visual.reshape(-1, visual.shape[-1])
    cos = (v / np.linalg.norm(v, axis=1, keepdims=True)) @ (
        text / np.linalg.norm(text, axis=1, keepdims=True)).T
    idx = cos.argmax(axis=1)
    p = _softmax_np(v / tau)
    q = _softmax_np(text[idx] / tau)
    kl_pq = (p * np.log(p / q)).sum(axis=1)
    kl_qp = (q * np.log(q / p)).sum(axis=1)
    return (kl_pq + kl_qp).reshape(lead), idx.reshape(lead)


A = 6


def _inputs(seed, shape):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal((A, A))


@pytest.mark.parametrize('shape', [(10, A), (5, 3, A)])
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


def test_nearest_is_by_cosine_not_dot_product():
    text = torch.tensor([[10.0, 0.0], [1.0, 1.0]])
    visual = torch.tensor([[0.5, 1.0]])  # dot: row 0 wins; cosine: row 1
    assert HierarchicalAlignmentLoss().nearest(visual, text).tolist() == [1]


def test_detach_reproduces_published_code():
    visual, text = _inputs(1, (8, A))
    vt = torch.tensor(visual, requires_grad=True)
    tt = torch.tensor(text, requires_grad=True)
    detached = HierarchicalAlignmentLoss(detach=True)(vt, tt)
    live = HierarchicalAlignmentLoss(detach=False)(vt, tt)
    assert not detached.requires_grad and detached.grad_fn is None
    assert live.requires_grad
    assert detached.item() == pytest.approx(live.item(), abs=1e-12)


def test_gradient_flows_to_visual_and_text():
    visual, text = _inputs(2, (8, A))
    vt = torch.tensor(visual, requires_grad=True)
    tt = torch.tensor(text, requires_grad=True)
    HierarchicalAlignmentLoss()(vt, tt).backward()
    assert vt.grad.abs().sum() > 0 and tt.grad.abs().sum() > 0
    # only the text rows that are somebody's nearest attribute get gradient
    _, idx = alignment_np(visual, text, 1.0)
    used = np.zeros(A, dtype=bool)
    used[idx] = True
    row_norms = tt.grad.abs().sum(dim=1).numpy()
    assert (row_norms[used] > 0).all() and (row_norms[~used] == 0).all()
    # and the gradient itself is right (argmax is piecewise constant)
    loss = HierarchicalAlignmentLoss(temperature=0.7)
    assert torch.autograd.gradcheck(lambda v, t: loss(v, t), (vt, tt))


def test_symmetric_in_p_and_q():
    rng = np.random.default_rng(3)
    a = torch.as_tensor(rng.standard_normal((7, A)))
    b = torch.as_tensor(rng.standard_normal((7, A)))
    for tau in (1.0, 0.3):
        ab = symmetric_kl_div(a, b, tau)
        assert ab.shape == (7, )
        torch.testing.assert_close(ab, symmetric_kl_div(b, a, tau))
        assert (ab > 0).all()
    # through the loss: two rows that are each other's nearest text row
    text = torch.as_tensor(rng.standard_normal((2, A)))
    loss = HierarchicalAlignmentLoss(reduction='none')
    assert loss.nearest(text, text).tolist() == [0, 1]
    x, y = text[0] + 0.01 * text[1], text[1] + 0.01 * text[0]
    pair = torch.stack([text[0], text[1]])
    fwd = loss(torch.stack([x, y]), pair)
    swapped = torch.stack([symmetric_kl_div(text[0], x),
                           symmetric_kl_div(text[1], y)])
    torch.testing.assert_close(fwd, swapped)


def test_zero_when_visual_equals_its_nearest_text_row():
    _, text = _inputs(4, (1, A))
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


@pytest.mark.parametrize('kwargs, match', [
    (dict(detach='no'), 'detach must be True or False'),
    (dict(temperature=0.0), 'temperature must be a finite number > 0'),
    (dict(temperature=float('nan')), 'temperature'),
    (dict(reduction='avg'), r"reduction must be one of \('mean', 'sum', "),
    (dict(loss_weight=-2), 'loss_weight must be a finite number >= 0'),
    (dict(loss_weight=None), 'loss_weight'),
])
def test_init_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalAlignmentLoss(**kwargs)


def test_forward_errors():
    loss = HierarchicalAlignmentLoss()
    text = torch.randn(A, A)
    with pytest.raises(ValueError, match=r'\(N, A\) or \(N, V, A\).*got '
                       r'\(6,\)'):
        loss(torch.randn(A), text)
    with pytest.raises(ValueError, match=r'\(N, A\) or \(N, V, A\)'):
        loss(torch.randn(2, 2, 2, A), text)
    with pytest.raises(ValueError, match=r'text must be a tensor of shape '
                       r'\(M, A\)'):
        loss(torch.randn(4, A), torch.randn(1, A, A))
    with pytest.raises(ValueError, match='last dimension A'):
        loss(torch.randn(4, A), torch.randn(A, A + 1))
    with pytest.raises(ValueError, match='share dtype'):
        loss(torch.randn(4, A, dtype=torch.float64), text)
    with pytest.raises(ValueError, match='floating point'):
        loss(torch.ones(4, A, dtype=torch.long), text)
    with pytest.raises(ValueError, match='empty input'):
        loss(torch.randn(0, A), text)
    with pytest.raises(ValueError, match='last dimension A'):
        loss.nearest(torch.randn(4, A), torch.randn(A, 3))
