"""HLSS model: build, tensor mode, hierarchical losses, bad input."""
import json
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


@pytest.fixture(scope='module')
def text_files(tmp_path_factory):
    """A tiny attribute file and precomputed embeddings for its names."""
    root = tmp_path_factory.mktemp('text')
    levels = {lv: {f'{lv} attr {i}': [f'{lv} {i} a', f'{lv} {i} b',
                                       f'{lv} {i} c'] for i in range(4)}
              for lv in LEVELS}
    attr_path = root / 'attrs.json'
    attr_path.write_text(json.dumps({'modality': 'test', 'levels': levels}))
    names = [n for lv in LEVELS for n in levels[lv]]
    gen = torch.Generator().manual_seed(0)
    emb_path = root / 'emb.pt'
    torch.save({'texts': names,
                'embeddings': torch.randn(len(names), 8, generator=gen)},
               str(emb_path))
    return str(attr_path), str(emb_path)


def build(text_files, **overrides):
    init_default_scope('mmpretrain')
    attrs, emb = text_files
    head = dict(attributes=attrs, hvc_loss=dict(
        type='HierarchicalSupConLoss', temperature=0.07,
        gather_distributed=True), ha_loss=dict(
            type='HierarchicalAlignmentLoss', temperature=0.5,
            gather_distributed=True))
    cfg = dict(type='HLSS',
               data_preprocessor=dict(type='SelfSupDataPreprocessor',
                                      mean=[0.5] * 3, std=[0.25] * 3),
               backbone=dict(type='ResNet', depth=18, base_channels=8,
                             stem_channels=8),
               neck=dict(type='GlobalAveragePooling'), in_channels=64,
               text_tower=dict(type='PrecomputedTextTower', path=emb),
               heads={lv: dict(head) for lv in LEVELS})
    cfg.update(overrides)
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_tensor_mode_gives_pooled_backbone_embeddings(text_files):
    model = build(text_files)
    feats = model(torch.rand(3, 3, 32, 32), mode='tensor')
    assert feats.shape == (3, 64)


def test_predict_mode_attaches_embeddings(text_files):
    model = build(text_files).eval()
    views, samples = grid_batch(P=1, S=1, K=3)
    with torch.no_grad():
        out = model(views[0], samples, mode='predict')
        feats = model(views[0], mode='tensor')
    assert out is samples
    assert torch.equal(torch.stack([s.feats for s in out]), feats)
    assert len(model(views, None, mode='predict')) == 3


def test_loss_keys_and_values_match_heads_on_ids(text_files):
    model = build(text_files).eval()  # eval: BN uses running stats
    views, samples = grid_batch()
    losses = model(views, samples, mode='loss')
    assert sorted(losses) == sorted(f'loss_{lv}_{t}' for lv in LEVELS
                                    for t in ('hvc', 'ha'))
    # recompute one level by hand from the backbone features
    with torch.no_grad():
        feats = model.extract_feat(torch.cat(views))
        feats = feats.reshape(2, 8, -1).transpose(0, 1)
        _, s = model.heads['slide'](feats.reshape(16, -1))
        slide_ids = torch.tensor([x.slide_idx for x in samples])
        ref = HierarchicalSupConLoss(temperature=0.07)(s.reshape(8, 2, -1),
                                                       slide_ids)
    assert torch.allclose(losses['loss_slide_hvc'], ref, atol=1e-5)


def test_permuting_patients_leaves_loss_unchanged(text_files):
    model = build(text_files).eval()
    views, samples = grid_batch(P=3)
    base = model(views, samples, mode='loss')
    order = torch.cat([torch.arange(8, 12), torch.arange(0, 8)])
    perm = model([v[order] for v in views], [samples[i] for i in order],
                 mode='loss')
    for key in base:
        assert torch.allclose(base[key], perm[key], atol=1e-5), key


def test_text_tower_not_in_state_dict_and_embeddings_kept(text_files):
    model = build(text_files)
    keys = list(model.state_dict())
    assert not any('text_tower' in k or 'backend' in k for k in keys)
    assert 'heads.patch.text_embeddings' in keys
    assert model.attribute_names('slide')[0] == 'slide attr 0'
    emb = torch.load(text_files[1], weights_only=True)['embeddings']
    first = emb[4:8]  # slide attributes: names 4..7 of the file
    assert torch.allclose(model.heads['slide'].text_embeddings,
                          torch.nn.functional.normalize(first, dim=1))


def test_training_step_reduces_loss(text_files):
    model = build(text_files)
    first, last = sgd_first_last_loss(model)
    assert last < first


def test_missing_ids_and_single_view_are_explained(text_files):
    model = build(text_files)
    views, samples = grid_batch()
    bare = [DataSample(metainfo=dict(sample_idx=i)) for i in range(8)]
    with pytest.raises(ValueError, match="level 'slide' needs 'slide_idx'.*"
                       'PackInputs'):
        model(views, bare, mode='loss')
    with pytest.raises(ValueError, match='needs >= 2 views'):
        model(views[:1], samples, mode='loss')


def test_non_finite_loss_names_level_and_term(text_files):
    model = build(text_files)
    views, samples = grid_batch()
    views[0][0, 0, 0, 0] = math.nan
    with pytest.raises(FloatingPointError, match='the patch-level hvc loss'):
        model(views, samples, mode='loss')


def test_config_errors(text_files):
    attrs, _ = text_files
    with pytest.raises(ValueError, match='needs at least one level'):
        build(text_files, heads={})
    with pytest.raises(ValueError, match=r'no id key for level\(s\) '
                       r"\['tissue'\]"):
        build(text_files, heads=dict(tissue=dict(attributes=attrs)))
    with pytest.raises(ValueError, match=r'heads\["patch"\] needs '
                       '"attributes"'):
        build(text_files, heads=dict(patch=dict()))
    with pytest.raises(ValueError, match="has no level 'region'"):
        build(text_files, heads=dict(region=dict(attributes=attrs)),
              id_keys=dict(region='slide_idx'))
