"""HierarchicalTextAlignedHead: text-initialised rows, bridge, losses."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import hlss_plugin  # noqa: F401  registers the losses
from hlss_plugin.models.heads import HierarchicalTextAlignedHead
from hlss_plugin.models.losses import (HierarchicalAlignmentLoss,
                                       HierarchicalSupConLoss)


def text(a=5, d=16, seed=0):
    return torch.randn(a, d, generator=torch.Generator().manual_seed(seed))


def test_rows_are_attribute_embeddings_and_outputs_are_cosines():
    t = text()
    head = HierarchicalTextAlignedHead(t, in_channels=16)
    assert isinstance(head.bridge, torch.nn.Identity)  # C == D
    assert torch.allclose(head.attribute_proj.weight, F.normalize(t, dim=1))
    assert torch.count_nonzero(head.attribute_proj.bias) == 0
    x = torch.randn(7, 16)
    z, s = head(x)
    expected = F.normalize(x, dim=1) @ F.normalize(t, dim=1).T
    assert torch.allclose(s, expected, atol=1e-6)
    assert torch.allclose(z.norm(dim=1), torch.ones(7))


def test_bridge_extra_rows_and_frozen_projection():
    t = text(a=4, d=8)
    head = HierarchicalTextAlignedHead(t, in_channels=32, num_outputs=10,
                                       trainable=False, bridge_hidden=64)
    assert head.attribute_proj.weight.shape == (10, 8)
    assert not head.attribute_proj.weight.requires_grad
    assert torch.allclose(head.attribute_proj.weight[:4],
                          F.normalize(t, dim=1))
    assert torch.allclose(head.attribute_proj.weight.norm(dim=1),
                          torch.ones(10))
    _, s = head(torch.randn(6, 32))
    assert s.shape == (6, 10)
    linear = HierarchicalTextAlignedHead(t, in_channels=32)
    assert isinstance(linear.bridge, torch.nn.Linear)


def test_init_weights_keeps_text_rows():
    t = text()
    head = HierarchicalTextAlignedHead(
        t, in_channels=32,
        init_cfg=dict(type='Normal', layer='Linear', std=1.0))
    head.init_weights()
    assert torch.allclose(head.attribute_proj.weight, F.normalize(t, dim=1))


def test_losses_equal_the_loss_modules_on_the_projection():
    t = text()
    head = HierarchicalTextAlignedHead(
        t, in_channels=16,
        hvc_loss=dict(type='HierarchicalSupConLoss', temperature=0.1),
        ha_loss=dict(type='HierarchicalAlignmentLoss', temperature=0.5))
    feats = torch.randn(6, 2, 16)
    ids = torch.tensor([0, 0, 1, 1, 2, 2])
    losses = head.loss(feats, ids)
    s = F.normalize(feats, dim=2) @ F.normalize(t, dim=1).T
    assert torch.allclose(losses['hvc'],
                          HierarchicalSupConLoss(temperature=0.1)(s, ids))
    # HA: the normalised image embedding against the fixed text rows
    assert torch.allclose(
        losses['ha'],
        HierarchicalAlignmentLoss(temperature=0.5)(
            F.normalize(feats, dim=2), F.normalize(t, dim=1)))
    sum(losses.values()).backward()
    assert head.attribute_proj.weight.grad is not None


def test_ha_target_does_not_move_with_the_trainable_rows():
    """Training W cannot lower HA: its target is the text buffer."""
    t = text()
    head = HierarchicalTextAlignedHead(
        t, in_channels=32, hvc_loss=None,
        ha_loss=dict(type='HierarchicalAlignmentLoss'))
    feats = torch.randn(6, 2, 32)
    before = head.loss(feats, torch.arange(6))['ha']
    with torch.no_grad():  # collapse every row onto one direction
        head.attribute_proj.weight.copy_(
            head.attribute_proj.weight[:1].clone())
    after = head.loss(feats, torch.arange(6))['ha']
    assert torch.equal(before, after)
    after.backward()
    assert head.attribute_proj.weight.grad is None
    assert head.bridge.weight.grad.abs().sum() > 0  # the image side moves


def test_each_text_embedding_selects_its_own_row_without_bridge():
    """C == D (CLIP): a text embedding fed as an image feature picks its
    own row."""
    t = text(a=40, d=16, seed=3)
    head = HierarchicalTextAlignedHead(t, in_channels=16)
    _, s = head(t)
    assert s.argmax(dim=1).tolist() == list(range(40))


def test_center_text_subtracts_the_attribute_mean():
    t = text(a=6, d=8, seed=4) + 3.0  # a narrow cone: a large common part
    head = HierarchicalTextAlignedHead(t, in_channels=8, center_text=True)
    unit = t.numpy() / np.linalg.norm(t.numpy(), axis=1, keepdims=True)
    centred = unit - unit.mean(axis=0, keepdims=True)
    expected = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    np.testing.assert_allclose(head.text_embeddings.numpy(), expected,
                               atol=1e-6)
    np.testing.assert_allclose(head.attribute_proj.weight.detach().numpy(),
                               expected, atol=1e-6)
    plain = HierarchicalTextAlignedHead(t, in_channels=8)
    off = ~np.eye(6, dtype=bool)
    assert (expected @ expected.T)[off].mean() < \
        (plain.text_embeddings @ plain.text_embeddings.T).numpy()[off].mean()
    with pytest.raises(ValueError, match='center_text=True needs at least 2'):
        HierarchicalTextAlignedHead(t[:1], in_channels=8, center_text=True)


def test_mlp_bridge_scrambles_the_language_tie():
    """The reason no config uses bridge_hidden: at initialisation the rows
    picked by text embeddings fed through a random MLP are near chance."""
    t = text(a=40, d=16, seed=3)
    torch.manual_seed(0)
    head = HierarchicalTextAlignedHead(t, in_channels=16, bridge_hidden=64)
    head.eval()
    _, s = head(t)
    own = (s.argmax(dim=1) == torch.arange(40)).float().mean().item()
    assert own < 0.5


@pytest.mark.parametrize('kwargs, match', [
    (dict(text_embeddings=torch.randn(3)), r'must be \(A, D\)'),
    (dict(num_outputs=2), 'smaller than the 5 attributes'),
    (dict(in_channels=0), 'in_channels must be an int >= 1'),
    (dict(hvc_loss=None, ha_loss=None), 'give at least one loss'),
    (dict(attribute_names=['a']), '1 attribute_names for 5'),
])
def test_errors(kwargs, match):
    args = dict(text_embeddings=text(), in_channels=16)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        HierarchicalTextAlignedHead(**args)
    with pytest.raises(ValueError, match=r'expected features \(N, V, C\)'):
        HierarchicalTextAlignedHead(text(), 16).loss(torch.randn(4, 16),
                                                     torch.arange(4))
