"""HLSSAuxWrapper: HLSS level losses on top of SimCLR / MoCo v3 / BYOL.

The backbone must run exactly as often as the algorithm alone runs it, the
algorithm's losses must be untouched, and the HLSS terms must equal those
of the heads on features extracted by hand, whatever the algorithm's view
layout (SimCLR: sample-major in one call; MoCo v3 / BYOL: one call per
view).
"""
import copy

import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.models import BYOL, SimCLR
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import hlss_plugin  # noqa: F401
from hlss_plugin.models.losses import HierarchicalSupConLoss

from .hierarchy_batch import grid_batch
from .test_hlss import text_files  # noqa: F401 (fixture)

LEVELS = ('patch', 'slide', 'patient')
WIDTH = 64  # ResNet-18 with base_channels=8: last stage has 64 channels


def backbone():
    return dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)


def mlp(in_channels, avg_pool):
    return dict(type='NonLinearNeck', in_channels=in_channels,
                hid_channels=32, out_channels=16, num_layers=2,
                with_avg_pool=avg_pool)


def algorithm_cfg(name):
    preprocessor = dict(type='SelfSupDataPreprocessor', mean=[0.5] * 3,
                        std=[0.25] * 3)
    cfg = dict(type=name, backbone=backbone(), neck=mlp(WIDTH, True),
               data_preprocessor=preprocessor)
    if name == 'SimCLR':
        cfg['head'] = dict(type='ContrastiveHead',
                           loss=dict(type='CrossEntropyLoss'),
                           temperature=0.1)
    elif name == 'MoCoV3':
        cfg.update(base_momentum=0.1, head=dict(
            type='MoCoV3Head', predictor=mlp(16, False),
            loss=dict(type='CrossEntropyLoss'), temperature=1.0))
    else:
        cfg.update(base_momentum=0.1, head=dict(
            type='LatentPredictHead', predictor=mlp(16, False),
            loss=dict(type='CosineSimilarityLoss')))
    return cfg


def head_cfg(attrs, hvc=True):
    return dict(attributes=attrs,
                hvc_loss=dict(type='HierarchicalSupConLoss',
                              temperature=0.07) if hvc else None,
                ha_loss=dict(type='HierarchicalAlignmentLoss',
                             temperature=0.5))


def build(text_files, algorithm='SimCLR', heads=None, **overrides):
    init_default_scope('mmpretrain')
    attrs, emb = text_files
    if isinstance(algorithm, str):
        algorithm = algorithm_cfg(algorithm)
    if heads is None:
        heads = {lv: head_cfg(attrs) for lv in LEVELS}
    cfg = dict(type='HLSSAuxWrapper', algorithm=algorithm, heads=heads,
               text_tower=dict(type='PrecomputedTextTower', path=emb),
               in_channels=WIDTH)
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def count_calls(module):
    calls = []
    handle = module.register_forward_pre_hook(
        lambda mod, args: calls.append(args[0].shape[0]))
    return calls, handle


def manual_feats(model, views):
    """(N, V, C): each view through the backbone alone, then averaged."""
    return torch.stack([model.algorithm.backbone(v)[-1].mean(dim=(2, 3))
                        for v in views], dim=1)


@pytest.mark.parametrize('name,expected', [('SimCLR', 1), ('MoCoV3', 2),
                                           ('BYOL', 2)])
def test_backbone_runs_as_often_as_the_algorithm_alone(text_files, name,
                                                       expected):
    views, samples = grid_batch()
    model = build(text_files, name)
    alone = MODELS.build(algorithm_cfg(name))
    calls_alone, handle = count_calls(alone.backbone)
    alone.loss(views, samples)
    handle.remove()
    calls, handle = count_calls(model.backbone)
    losses = model(views, samples, mode='loss')
    handle.remove()
    assert len(calls) == len(calls_alone) == expected
    assert sum(calls) == 2 * len(samples)
    assert 'loss_slide_hvc' in losses
    # the capture hook lives only during loss(): deep copies carry none
    assert not model.backbone._forward_hooks
    assert copy.deepcopy(model)(views[0], mode='tensor').shape == (8, WIDTH)


@pytest.mark.parametrize('name,layout', [('SimCLR', 'sample_major'),
                                         ('MoCoV3', 'view_major'),
                                         ('BYOL', 'view_major')])
def test_losses_are_inner_losses_plus_heads_on_manual_features(
        text_files, name, layout):
    model = build(text_files, name).eval()  # eval: BN uses running stats
    alone = copy.deepcopy(model.algorithm)  # same weights, same momentum
    views, samples = grid_batch()
    losses = model(views, samples, mode='loss')
    assert model._layout == layout
    inner = alone.loss(views, samples)
    renamed = {('loss_' + name.lower() if k == 'loss' else k): v
               for k, v in inner.items()}
    assert sorted(losses) == sorted(list(renamed) + [
        f'loss_{lv}_{t}' for lv in LEVELS for t in ('hvc', 'ha')])
    for key, value in renamed.items():
        assert torch.allclose(losses[key], value, atol=1e-5), key
    with torch.no_grad():
        feats = manual_feats(model, views)
        for level in LEVELS:
            ref = model.heads[level].loss(feats, torch.tensor(
                [s.get(model.id_keys[level]) for s in samples]))
            for term, value in ref.items():
                assert torch.allclose(losses[f'loss_{level}_{term}'], value,
                                      atol=1e-5), (level, term)
        # one term once more from the loss formula itself
        _, s = model.heads['patient'](feats.reshape(16, -1))
        ref = HierarchicalSupConLoss(temperature=0.07)(
            s.reshape(8, 2, -1), torch.tensor([x.patient_idx
                                               for x in samples]))
    assert torch.allclose(losses['loss_patient_hvc'], ref, atol=1e-5)


@pytest.mark.parametrize('name,wrong', [('SimCLR', 'view_major'),
                                        ('BYOL', 'sample_major')])
def test_wrong_view_order_changes_the_hlss_terms(text_files, name, wrong):
    views, samples = grid_batch()
    right = build(text_files, name).eval()(views, samples, mode='loss')
    forced = build(text_files, name, view_order=wrong).eval()(
        views, samples, mode='loss')
    assert not torch.allclose(right['loss_patch_hvc'],
                              forced['loss_patch_hvc'], atol=1e-4)


@pytest.mark.parametrize('name', ['SimCLR', 'BYOL'])
def test_hlss_terms_backpropagate_into_the_backbone(text_files, name):
    model = build(text_files, name)
    views, samples = grid_batch()
    losses = model(views, samples, mode='loss')
    hlss = sum(v for k, v in losses.items()
               if k.startswith(tuple(f'loss_{lv}_' for lv in LEVELS)))
    hlss.backward()
    conv = model.backbone.conv1.weight.grad
    assert conv is not None and conv.abs().sum() > 0
    bridge = model.heads['slide'].bridge.weight.grad
    assert bridge is not None and bridge.abs().sum() > 0
    # the algorithm's own neck got nothing from the HLSS terms
    assert all(p.grad is None for p in model.algorithm.neck.parameters())


def test_predict_and_val_step_attach_pooled_backbone_features(text_files):
    model = build(text_files, 'BYOL').eval()
    views, samples = grid_batch(P=1, S=1, K=3)
    with torch.no_grad():
        out = model(views[0], samples, mode='predict')
        ref = model.algorithm.backbone(views[0])[-1].mean(dim=(2, 3))
    assert out is samples
    assert torch.allclose(torch.stack([s.feats for s in out]), ref,
                          atol=1e-6)
    assert torch.allclose(model(views[0], mode='tensor'), ref, atol=1e-6)
    # a kNN batch: one stacked tensor, normalised by the inner preprocessor
    raw = torch.rand(3, 3, 32, 32)
    bare = [DataSample() for _ in range(3)]
    preds = model.val_step(dict(inputs=raw, data_samples=bare))
    with torch.no_grad():
        ref = model.algorithm.backbone((raw - 0.5) / 0.25)[-1].mean((2, 3))
    assert torch.allclose(torch.stack([p.feats for p in preds]), ref,
                          atol=1e-5)
    assert model.data_preprocessor is model.algorithm.data_preprocessor


def test_level_without_hvc_gives_only_ha(text_files):
    attrs, _ = text_files
    model = build(text_files, 'MoCoV3', heads=dict(
        patch=head_cfg(attrs), slide=head_cfg(attrs, hvc=False)))
    views, samples = grid_batch()
    losses = model(views, samples, mode='loss')
    assert sorted(losses) == ['loss_mocov3', 'loss_patch_ha',
                              'loss_patch_hvc', 'loss_slide_ha']
    assert model.levels == ('patch', 'slide')
    assert model.attribute_names('slide')[0] == 'slide attr 0'
    assert not any('text_tower' in k for k in model.state_dict())


class FlippingBYOL(BYOL):
    """Feeds its backbone mirrored views: matches neither layout."""

    def loss(self, inputs, data_samples, **kwargs):
        return super().loss([v.flip(-1) for v in inputs], data_samples)


class LossNamedLikeHLSS(SimCLR):
    """An algorithm whose loss name collides with an HLSS term."""

    def loss(self, inputs, data_samples, **kwargs):
        return dict(loss_patch_hvc=super().loss(inputs, data_samples)['loss'])


def test_unmatched_layout_and_row_count_are_explained(text_files):
    views, samples = grid_batch()
    init_default_scope('mmpretrain')
    cfg = algorithm_cfg('BYOL')
    cfg.pop('type')
    flipping = build(text_files, FlippingBYOL(**cfg))
    with pytest.raises(ValueError, match='FlippingBYOL match neither.*'
                       'view_order="view_major"'):
        flipping(views, samples, mode='loss')
    # given explicitly, no detection: trains (on the mirrored features)
    forced = build(text_files, FlippingBYOL(**cfg), view_order='view_major')
    assert 'loss_patch_ha' in forced(views, samples, mode='loss')
    # BYOL uses 2 of 3 views: 2N backbone rows for 3N images
    byol = build(text_files, 'BYOL')
    views3, _ = grid_batch(V=3)
    with pytest.raises(ValueError, match=r'BYOL ran its backbone 2 time\(s\) '
                       r'on 16 images .* 3 views x 8 samples = 24'):
        byol(views3, samples, mode='loss')


def test_colliding_inner_loss_name_is_prefixed(text_files):
    init_default_scope('mmpretrain')
    cfg = algorithm_cfg('SimCLR')
    cfg.pop('type')
    model = build(text_files, LossNamedLikeHLSS(**cfg))
    views, samples = grid_batch()
    losses = model(views, samples, mode='loss')
    assert 'lossnamedlikehlss_loss_patch_hvc' in losses
    assert len(losses) == 1 + 2 * len(LEVELS)


def test_logged_loss_is_the_sum_of_every_term(text_files):
    """The inner 'loss' is renamed, so mmengine's logged 'loss' (the value
    it optimises) is the total, not SimCLR's term alone."""
    model = build(text_files, 'SimCLR')
    views, samples = grid_batch()
    losses = model(views, samples, mode='loss')
    assert 'loss' not in losses and 'loss_simclr' in losses
    total, log_vars = model.parse_losses(losses)
    expected = sum(v.item() for v in losses.values())
    assert abs(total.item() - expected) < 1e-4
    assert abs(log_vars['loss'].item() - expected) < 1e-4
    assert abs(log_vars['loss_simclr'].item() -
               losses['loss_simclr'].item()) < 1e-6


def test_vicreg_loss_is_logged_as_loss_vicreg(text_files):
    """BarlowTwins with a VICRegHead is VICReg: its loss is 'loss_vicreg'
    (the head's method_name), not 'loss_barlowtwins'; the value is the
    algorithm's own loss on the same batch."""
    cfg = algorithm_cfg('SimCLR')
    cfg.update(type='BarlowTwins', neck=dict(
        type='NonLinearNeck', in_channels=WIDTH, hid_channels=32,
        out_channels=16, num_layers=3, with_last_bn=False,
        with_avg_pool=True, norm_cfg=dict(type='BN1d')),
        head=dict(type='VICRegHead'))
    model = build(text_files, cfg)
    assert model.method_name == 'vicreg'
    views, samples = grid_batch()
    losses = model(views, samples, mode='loss')
    assert 'loss_vicreg' in losses and 'loss_barlowtwins' not in losses
    torch.manual_seed(0)
    alone = copy.deepcopy(model.algorithm)
    expected = alone.loss([v.clone() for v in views], samples)['loss']
    assert losses['loss_vicreg'].item() == pytest.approx(expected.item(),
                                                         rel=1e-5)
    # without a method_name the class name stays (BarlowTwins' own head)
    assert build(text_files, 'SimCLR').method_name == 'simclr'


def test_config_errors(text_files):
    with pytest.raises(ValueError, match='view_order must be one of'):
        build(text_files, view_order='interleaved')
    with pytest.raises(ValueError, match='algorithm Linear needs a backbone'):
        build(text_files, torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match='HLSSAuxWrapper needs at least one '
                       'level'):
        build(text_files, heads={})
    with pytest.raises(ValueError, match='needs >= 2 views'):
        build(text_files)([torch.rand(2, 3, 32, 32)], [], mode='loss')


def test_layer_depth_is_asked_of_the_algorithm(text_files):
    init_default_scope('mmpretrain')
    vit = dict(type='MoCoV3ViT', img_size=32, patch_size=16,
               arch=dict(embed_dims=24, num_layers=4, num_heads=2,
                         feedforward_channels=48))
    cfg = algorithm_cfg('MoCoV3')
    cfg.update(backbone=vit, neck=mlp(24, False))
    model = build(text_files, cfg, pool=dict(type='IdentityNeck'),
                  in_channels=24)
    block, depth = model.get_layer_depth('algorithm.backbone.layers.3.ln1.w')
    assert (block, depth) == model.algorithm.get_layer_depth(
        'backbone.layers.3.ln1.w') and block == 4
    assert model.get_layer_depth('heads.patch.bridge.weight')[0] == depth - 1
    views, samples = grid_batch()
    assert 'loss_patch_hvc' in model(views, samples, mode='loss')
