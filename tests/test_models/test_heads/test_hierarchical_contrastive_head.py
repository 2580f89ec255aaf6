"""HierarchicalContrastiveHead: shared projector, per-level SupCon losses
against a NumPy reference (projector and SupCon written out independently),
errors."""
import math

import numpy as np
import pytest
import torch

import hlss_plugin  # noqa: F401  registers the losses
from hlss_plugin.models.heads import HierarchicalContrastiveHead

LEVELS = ('patch', 'slide', 'patient')


def supcon(tau=0.07, weight=1.0):
    return dict(type='HierarchicalSupConLoss', temperature=tau,
                gather_distributed=True, loss_weight=weight)


def grid_ids(P=2, S=2, K=2):
    n = torch.arange(P * S * K)
    return dict(patch=n, slide=n // K, patient=n // (S * K))


def projector_np(head, x):
    """Linear(no bias) - BatchNorm1d (training: batch mean, biased batch
    variance, eps) - ReLU - Linear - L2 normalisation, in float64."""
    lin1, bn, _, lin2 = head.projector
    w1 = lin1.weight.detach().double().numpy()
    h = x @ w1.T
    mean, var = h.mean(0), h.var(0)
    h = (h - mean) / np.sqrt(var + bn.eps)
    h = h * bn.weight.detach().double().numpy() + \
        bn.bias.detach().double().numpy()
    h = np.maximum(h, 0.0)
    out = h @ lin2.weight.detach().double().numpy().T + \
        lin2.bias.detach().double().numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def supcon_np(z, ids, tau):
    """Khosla et al. (2020) L_out over the N*V unit embeddings z (N, V, D):
    loops over anchors, positives (same id, not itself) and the contrast set
    (everything but itself)."""
    n, v, _ = z.shape
    items = [(i, a) for i in range(n) for a in range(v)]
    per_anchor = []
    for anchor in items:
        others = [o for o in items if o != anchor]
        pos = [o for o in others if ids[o[0]] == ids[anchor[0]]]
        denom = sum(math.exp(z[anchor] @ z[o] / tau) for o in others)
        per_anchor.append(-sum(math.log(math.exp(z[anchor] @ z[p] / tau) /
                                        denom) for p in pos) / len(pos))
    return float(np.mean(per_anchor))


def test_projection_is_shared_unit_norm_mlp():
    head = HierarchicalContrastiveHead(
        losses={lv: supcon() for lv in LEVELS}, in_channels=32,
        hid_channels=48, out_channels=16)
    lin1, bn, relu, lin2 = head.projector
    assert (lin1.in_features, lin1.out_features, lin1.bias) == (32, 48, None)
    assert isinstance(bn, torch.nn.BatchNorm1d) and bn.num_features == 48
    assert isinstance(relu, torch.nn.ReLU)
    assert (lin2.in_features, lin2.out_features) == (48, 16)
    z = head(torch.randn(10, 32))
    assert z.shape == (10, 16)
    assert torch.allclose(z.norm(dim=1), torch.ones(10), atol=1e-6)
    # one projector, no per-level parameters
    names = {n.split('.')[0] for n, _ in head.named_parameters()}
    assert names == {'projector'}


def test_losses_equal_numpy_supcon_on_projected_embeddings():
    torch.manual_seed(0)
    weights = dict(patch=1.0, slide=0.5, patient=2.0)
    head = HierarchicalContrastiveHead(
        losses={lv: supcon(tau=0.2, weight=weights[lv]) for lv in LEVELS},
        in_channels=12, hid_channels=24, out_channels=8)
    with torch.no_grad():  # non-trivial BN affine parameters
        head.projector[1].weight.uniform_(0.5, 1.5)
        head.projector[1].bias.uniform_(-0.2, 0.2)
    ids = grid_ids(P=2, S=2, K=2)
    feats = torch.randn(8, 2, 12, dtype=torch.float64)
    head.double()
    losses = head.loss(feats, ids)
    assert list(losses) == [f'loss_{lv}_hvc' for lv in LEVELS]

    z = projector_np(head, feats.reshape(16, 12).numpy()).reshape(8, 2, -1)
    for lv in LEVELS:
        ref = weights[lv] * supcon_np(z, ids[lv].numpy(), tau=0.2)
        assert losses[f'loss_{lv}_hvc'].item() == pytest.approx(ref,
                                                                rel=1e-9)
    # the levels differ (otherwise the ids would not matter)
    vals = [losses[f'loss_{lv}_hvc'].item() / weights[lv] for lv in LEVELS]
    assert len({round(v, 6) for v in vals}) == 3


def test_ids_decide_the_loss_not_the_batch_order():
    torch.manual_seed(1)
    head = HierarchicalContrastiveHead(
        losses=dict(slide=supcon()), in_channels=8, hid_channels=16,
        out_channels=4).eval()
    feats = torch.randn(6, 2, 8)
    ids = dict(slide=torch.tensor([0, 0, 1, 1, 2, 2]))
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    a = head.loss(feats, ids)['loss_slide_hvc']
    b = head.loss(feats[order], dict(slide=ids['slide'][order]))
    assert torch.allclose(a, b['loss_slide_hvc'], atol=1e-6)
    c = head.loss(feats, dict(slide=torch.tensor([0, 1, 0, 1, 2, 2])))
    assert not torch.allclose(a, c['loss_slide_hvc'])


def test_gradient_reaches_the_projector_and_extra_ids_are_ignored():
    head = HierarchicalContrastiveHead(
        losses=dict(patch=supcon()), in_channels=8, hid_channels=16,
        out_channels=4)
    feats = torch.randn(4, 2, 8, requires_grad=True)
    ids = dict(grid_ids(P=1, S=2, K=2), tissue=torch.zeros(4))
    losses = head.loss(feats, ids)
    assert list(losses) == ['loss_patch_hvc']
    losses['loss_patch_hvc'].backward()
    assert head.projector[0].weight.grad.abs().sum() > 0
    assert feats.grad.abs().sum() > 0


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match='losses must be a non-empty dict'):
        HierarchicalContrastiveHead(losses={})
    with pytest.raises(ValueError, match=r'losses\["slide"\] must be a loss '
                       'config'):
        HierarchicalContrastiveHead(losses=dict(slide='supcon'))
    with pytest.raises(ValueError, match='hid_channels must be an int >= 1'):
        HierarchicalContrastiveHead(losses=dict(patch=supcon()),
                                    hid_channels=0)
    head = HierarchicalContrastiveHead(
        losses=dict(patch=supcon(), slide=supcon()), in_channels=8,
        hid_channels=16, out_channels=4)
    ids = grid_ids(P=1, S=2, K=2)
    with pytest.raises(ValueError, match=r'V >= 2 views and C = '
                       r'in_channels = 8, got \(4, 1, 8\)'):
        head.loss(torch.randn(4, 1, 8), ids)
    with pytest.raises(ValueError, match=r'got \(4, 2, 7\)'):
        head.loss(torch.randn(4, 2, 7), ids)
    with pytest.raises(ValueError, match=r"no ids for level\(s\) \['slide'\]"):
        head.loss(torch.randn(4, 2, 8), dict(patch=ids['patch']))
