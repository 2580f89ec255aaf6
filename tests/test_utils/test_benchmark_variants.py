"""Benchmark method variants: parsing both spellings, the overrides they
make on the shipped HLSS configs, and the models those configs build."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.benchmark.overrides import set_backbone_depth
from hlss_plugin.benchmark.variants import (MLP_BRIDGE_HIDDEN,
                                                  apply_variant, find_heads,
                                                  parse_method)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs', 'mmpretrain')
BASES = ['hlss', 'simclr', 'simclr_hlss', 'byol_hlss']


@pytest.mark.parametrize('name, base, options', [
    ('hlss', 'hlss', ()),
    ('simclr_hlss', 'simclr_hlss', ()),
    ('hlss_no_ha', 'hlss', (('ha', 'off'), )),
    ('hlss_no_hvc', 'hlss', (('hvc', 'off'), )),
    ('hlss_mlp_bridge', 'hlss', (('bridge', 'mlp'), )),
    ('hlss_ha_published', 'hlss', (('ha', 'published'), )),
    ('hlss_frozen_rows', 'hlss', (('rows', 'frozen'), )),
    ('hlss_centred', 'hlss', (('center', 'on'), )),
    ('hlss_ha_w0.5', 'hlss', (('ha_weight', '0.5'), )),
    ('hlss_ha_w2', 'hlss', (('ha_weight', '2.0'), )),
    ('simclr_hlss_no_ha', 'simclr_hlss', (('ha', 'off'), )),
    ('hlss:ha=off', 'hlss', (('ha', 'off'), )),
    ('hlss:rows=frozen,bridge=512', 'hlss',
     (('bridge', '512'), ('rows', 'frozen'))),
    ('byol_hlss:ha=published, ha_weight=0.25', 'byol_hlss',
     (('ha', 'published'), ('ha_weight', '0.25'))),
])
def test_parse(name, base, options):
    spec = parse_method(name, BASES)
    assert (spec.name, spec.base, spec.options) == (name, base, options)


def test_same_run_same_key_and_folder_names():
    assert parse_method('hlss_no_ha', BASES).key == \
        parse_method('hlss:ha=off', BASES).key
    assert parse_method('hlss_ha_w0.5', BASES).key == \
        parse_method('hlss:ha_weight=.5', BASES).key
    assert parse_method('hlss:ha=off,bridge=mlp', BASES).dir_name == \
        'hlss_ha_off_bridge_mlp'
    assert parse_method('hlss_ha_w0.5', BASES).dir_name == 'hlss_ha_w0.5'


@pytest.mark.parametrize('name, match', [
    ('dino', "unknown method 'dino'"),
    ('hlss_tiny', "unknown method 'hlss_tiny'.*suffixes: no_ha"),
    ('dino:ha=off', "unknown base method 'dino'; valid bases: hlss"),
    ('hlss:depth=18', "unknown variant option 'depth'; options: ha=off"),
    ('hlss:ha=maybe', "ha='maybe' is not allowed; use off | published"),
    ('hlss:ha', "'ha' is not <option>=<value>"),
    ('hlss:ha=off,ha=published', "option 'ha' given twice"),
    ('hlss:ha_weight=-1', 'ha_weight must be a number > 0'),
    ('hlss:ha_weight=nan', 'ha_weight must be a number > 0'),
    ('hlss:ha=off,hvc=off', 'without a loss'),
    ('hlss:ha=off,ha_weight=2', 'no effect with ha=off'),
])
def test_parse_errors(name, match):
    with pytest.raises(ValueError, match=match):
        parse_method(name, BASES)


def hlss_cfg(name='hlss_srh.py'):
    return Config.fromfile(osp.join(CONFIGS, name))


def test_overrides_on_shipped_configs():
    cfg = hlss_cfg()
    heads = find_heads(cfg)
    assert [p for _, p in heads] == ['model.heads.patch', 'model.heads.slide',
                                     'model.heads.patient']
    published = cfg.hlss_ha_published.to_dict()
    changes = apply_variant(cfg, [('ha', 'published'), ('ha_weight', '0.5'),
                                  ('rows', 'frozen'), ('bridge', 'mlp')])
    for head, path in find_heads(cfg):
        assert head.ha_loss.to_dict() == dict(published, loss_weight=0.5)
        assert head.ha_loss.detach is True
        assert head.trainable is False
        assert head.bridge_hidden == MLP_BRIDGE_HIDDEN
        assert head.hvc_loss.type == 'HierarchicalSupConLoss'  # kept
        assert changes[f'{path}.trainable'] == (True, False)
        assert changes[f'{path}.bridge_hidden'] == (None, MLP_BRIDGE_HIDDEN)
    assert len(changes) == 9
    # the top-level helper variables are not touched
    assert cfg.hlss_head.ha_loss.detach is False
    # the wrapped baseline's heads are found too
    cfg = hlss_cfg('simclr_hlss_srh.py')
    changes = apply_variant(cfg, [('ha', 'off')])
    assert sorted(changes) == [f'model.heads.{lv}.ha_loss'
                               for lv in ('patch', 'patient', 'slide')]
    assert all(new is None for _, new in changes.values())
    assert apply_variant(hlss_cfg(), []) == {}
    # center=on centres the attribute rows of every head
    cfg = hlss_cfg()
    changes = apply_variant(cfg, [('center', 'on')])
    assert all(head.center_text is True for head, _ in find_heads(cfg))
    assert changes['model.heads.slide.center_text'] == (False, True)


def test_override_errors():
    simclr = Config.fromfile(osp.join(CONFIGS, 'simclr_resnet50_srh.py'))
    with pytest.raises(ValueError, match='has none; use them with hlss or a '
                       r'\*_hlss method'):
        apply_variant(simclr, [('ha', 'off')])
    cfg = Config(dict(model=dict(heads=dict(patch=dict(
        type='HierarchicalTextAlignedHead', hvc_loss=dict(type='X'),
        ha_loss=None)))))
    with pytest.raises(ValueError, match="'hlss_ha_published'.*_base_ list"):
        apply_variant(cfg, [('ha', 'published')])
    with pytest.raises(ValueError, match='has no ha_loss config, so ha_weight'):
        apply_variant(cfg, [('ha_weight', '2.0')])
    with pytest.raises(ValueError, match='without hvc_loss and ha_loss'):
        apply_variant(cfg, [('hvc', 'off')])


def test_variant_builds_the_intended_model():
    cfg = hlss_cfg()
    set_backbone_depth(cfg, 18)
    apply_variant(cfg, [('ha', 'off'), ('rows', 'frozen'),
                        ('bridge', '64')])
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    heads = list(model.heads.values()) if isinstance(
        model.heads, torch.nn.ModuleDict) else list(model.heads)
    assert len(heads) == 3
    for head in heads:
        assert head.ha_loss is None and head.hvc_loss is not None
        assert not head.attribute_proj.weight.requires_grad
        assert isinstance(head.bridge, torch.nn.Sequential)
        assert head.bridge[0].out_features == 64
