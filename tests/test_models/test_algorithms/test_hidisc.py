"""HiDisc model: build, tensor/predict modes, one backbone pass, losses from
ids, invariance to batch order, training, bad input."""
import math

import pytest
import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import hlss_plugin  # noqa: F401
from hlss_plugin.models.losses import HierarchicalSupConLoss

from .hierarchy_batch import grid_batch, sgd_first_last_loss

LEVELS = ('patch', 'slide', 'patient')


def build(**overrides):
    init_default_scope('mmpretrain')
    hvc = dict(type='HierarchicalSupConLoss', temperature=0.07,
               gather_distributed=True)
    head = dict(type='HierarchicalContrastiveHead', in_channels=64,
                hid_channels=32, out_channels=16,
                losses={lv: dict(hvc) for lv in LEVELS})
    head.update(overrides.pop('head', {}))
    cfg = dict(type='HiDisc',
               data_preprocessor=dict(type='SelfSupDataPreprocessor',
                                      mean=[0.5] * 3, std=[0.25] * 3),
               backbone=dict(type='ResNet', depth=18, base_channels=8,
                             stem_channels=8),
               neck=dict(type='GlobalAveragePooling'), head=head)
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_tensor_and_predict_modes_give_pooled_backbone_embeddings():
    model = build().eval()
    views, samples = grid_batch(P=1, S=1, K=3)
    with torch.no_grad():
        feats = model(views[0], mode='tensor')
        out = model(views[0], samples, mode='predict')
        pooled = model.neck(model.backbone(views[0]))[-1]
    assert feats.shape == (3, 64)
    assert torch.equal(feats, pooled)
    assert out is samples
    assert torch.equal(torch.stack([s.feats for s in out]), feats)
    assert len(model(views, None, mode='predict')) == 3


def test_loss_keys_and_one_backbone_pass_over_all_views():
    model = build().eval()  # eval: BN uses running stats
    views, samples = grid_batch(V=3)
    calls = []
    handle = model.backbone.register_forward_hook(
        lambda mod, args, out: calls.append(args[0].shape[0]))
    losses = model(views, samples, mode='loss')
    handle.remove()
    assert calls == [3 * 8]
    assert list(losses) == [f'loss_{lv}_hvc' for lv in LEVELS]
    # recompute the slide level from the pooled features and the sample ids
    with torch.no_grad():
        feats = torch.stack([model.extract_feat(v) for v in views], dim=1)
        emb = model.head(feats.reshape(24, -1)).reshape(8, 3, -1)
        slide_ids = torch.tensor([s.slide_idx for s in samples])
        ref = HierarchicalSupConLoss(temperature=0.07)(emb, slide_ids)
    assert torch.allclose(losses['loss_slide_hvc'], ref, atol=1e-5)
    assert not torch.allclose(losses['loss_slide_hvc'],
                              losses['loss_patient_hvc'])


def test_permuting_patients_leaves_loss_unchanged():
    model = build().eval()
    views, samples = grid_batch(P=3)
    base = model(views, samples, mode='loss')
    patients = torch.cat([torch.arange(8, 12), torch.arange(0, 8)])
    shuffled = torch.randperm(12, generator=torch.Generator().manual_seed(2))
    for order in (patients, shuffled):
        perm = model([v[order] for v in views], [samples[i] for i in order],
                     mode='loss')
        for key in base:
            assert torch.allclose(base[key], perm[key], atol=1e-5), key


def test_level_weights_and_id_keys():
    model = build(head=dict(losses=dict(
        slide=dict(type='HierarchicalSupConLoss', loss_weight=0.5))),
        id_keys=dict(slide='patient_idx')).eval()
    ref = build(head=dict(losses=dict(
        patient=dict(type='HierarchicalSupConLoss')))).eval()
    views, samples = grid_batch()
    got = model(views, samples, mode='loss')
    want = ref(views, samples, mode='loss')
    assert list(got) == ['loss_slide_hvc']
    assert torch.allclose(got['loss_slide_hvc'],
                          0.5 * want['loss_patient_hvc'], atol=1e-6)


def test_training_step_reduces_loss():
    model = build()
    first, last = sgd_first_last_loss(model)
    assert last < first


def test_bad_batches_are_explained():
    model = build()
    views, samples = grid_batch()
    bare = [DataSample(metainfo=dict(sample_idx=i)) for i in range(8)]
    with pytest.raises(ValueError, match="level 'slide' needs 'slide_idx'.*"
                       'PackInputs'):
        model(views, bare, mode='loss')
    with pytest.raises(ValueError, match='HiDisc needs >= 2 views'):
        model(views[:1], samples, mode='loss')
    with pytest.raises(ValueError, match='HiDisc needs >= 2 views'):
        model(views[0], samples, mode='loss')
    views[0][0, 0, 0, 0] = math.nan
    with pytest.raises(FloatingPointError, match='the patch-level hvc loss'):
        model(views, samples, mode='loss')


def test_config_errors():
    init_default_scope('mmpretrain')
    cfg = dict(type='HiDisc', backbone=dict(type='ResNet', depth=18),
               neck=dict(type='GlobalAveragePooling'))
    with pytest.raises(ValueError, match='HiDisc needs a head'):
        MODELS.build(dict(cfg, head=None))
    with pytest.raises(ValueError, match='ContrastiveHead has no levels'):
        MODELS.build(dict(cfg, head=dict(
            type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'))))
    with pytest.raises(ValueError, match=r"no id key for level\(s\) "
                       r"\['tissue'\]"):
        build(head=dict(losses=dict(
            tissue=dict(type='HierarchicalSupConLoss'))))
