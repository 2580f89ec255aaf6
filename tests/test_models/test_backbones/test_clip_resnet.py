"""CLIPResNet: shapes, attention pool, freezing, Pretrained init, errors.

Equivalence with open_clip's RN50 is tested with the converter
(``tests/test_tools/test_convert_clip_rn50.py``).
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

import hlss_plugin  # noqa: F401
from hlss_plugin.models.backbones import CLIPResNet
from hlss_plugin.models.necks import IdentityNeck

TINY = dict(layers=(1, 2, 1, 1), width=16, heads=4, output_dim=24,
            image_size=64)


def tiny(**kwargs):
    torch.manual_seed(0)
    return CLIPResNet(**{**TINY, **kwargs})


@pytest.mark.parametrize('size', [(64, 64), (96, 96), (128, 160), (32, 32)])
def test_output_shapes_at_any_resolution(size):
    model = tiny(out_indices=(0, 1, 2, 3)).eval()
    h, w = size
    outs = model(torch.rand(2, 3, h, w))
    assert len(outs) == 5
    for i, feat in enumerate(outs[:4]):
        scale = 2**(i + 2)
        assert feat.shape == (2, 16 * 4 * 2**i, h // scale, w // scale)
    assert outs[-1].shape == (2, 24)
    assert torch.isfinite(outs[-1]).all()


def test_default_is_rn50_sized():
    model = CLIPResNet()
    assert model.feat_dim == 2048 and model.output_dim == 1024
    assert model.attnpool.pos_embed.shape == (7 * 7 + 1, 2048)
    assert [len(getattr(model, n)) for n in model.stage_names] == [3, 4, 6, 3]
    # The visual tower of CLIP RN50 has 38,316,896 parameters.
    assert sum(p.numel() for p in model.parameters()) == 38_316_896


def test_output_selection():
    x = torch.rand(1, 3, 64, 64)
    assert len(tiny()(x)) == 1
    feats = tiny(out_indices=(-1, ), with_attnpool=False)(x)
    assert len(feats) == 1 and feats[0].shape == (1, 512, 2, 2)
    assert tiny(out_indices=(0, ), with_attnpool=False).attnpool is None


def test_attention_pool_matches_a_manual_formula():
    model = tiny().eval()
    pool = model.attnpool
    x = torch.randn(2, 512, 2, 2)
    tokens = x.flatten(2).permute(0, 2, 1)  # (N, 4, C)
    tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1)
    tokens = tokens + pool.pos_embed
    q = pool.q_proj(tokens[:, 0])  # (N, C)
    k, v = pool.k_proj(tokens), pool.v_proj(tokens)
    d = 512 // 4
    out = []
    for h in range(4):
        sl = slice(h * d, (h + 1) * d)
        att = torch.softmax(
            torch.einsum('nc,nlc->nl', q[:, sl], k[..., sl]) / math.sqrt(d),
            dim=-1)
        out.append(torch.einsum('nl,nlc->nc', att, v[..., sl]))
    expected = pool.out_proj(torch.cat(out, dim=1))
    torch.testing.assert_close(pool(x), expected, atol=1e-5, rtol=1e-5)


def test_position_embedding_interpolation():
    pool = tiny().attnpool
    assert pool.position_embedding(2, 2) is pool.pos_embed
    with torch.no_grad():
        pool.pos_embed[0] = 3.0
        pool.pos_embed[1:] = torch.arange(512.).expand(4, 512)
    emb = pool.position_embedding(3, 5)
    assert emb.shape == (1 + 15, 512)
    assert torch.all(emb[0] == 3.0)  # the mean token's entry is kept
    # a spatially constant embedding stays constant (bicubic is exact)
    torch.testing.assert_close(emb[1:], torch.arange(512.).expand(15, 512))
    grid = pool.pos_embed[1:].detach().reshape(1, 2, 2, 512)
    grid = grid.permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(3, 5), mode='bicubic',
                             align_corners=False)
    torch.testing.assert_close(emb[1:], expected.flatten(2)[0].t())


def test_frozen_stages_and_train_mode():
    model = tiny(frozen_stages=2)
    model.train()
    for module in (model.stem, model.layer1, model.layer2):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    for module in (model.layer3, model.layer4, model.attnpool):
        assert module.training
        assert all(p.requires_grad for p in module.parameters())
    model = tiny(frozen_stages=5)  # len(layers) + 1: the pool too
    model.train()
    assert not any(p.requires_grad for p in model.parameters())


def test_frozen_pool_only_when_asked():
    model = tiny(frozen_stages=4)
    assert all(p.requires_grad for p in model.attnpool.parameters())
    assert not any(p.requires_grad for p in model.layer4.parameters())


def test_norm_eval_keeps_running_statistics():
    model = tiny(norm_eval=True)
    model.train()
    assert all(not m.training for m in model.modules()
               if isinstance(m, _BatchNorm))
    before = model.stem.norm1.running_mean.clone()
    model(torch.rand(2, 3, 32, 32))
    assert torch.equal(model.stem.norm1.running_mean, before)
    trained = tiny()
    trained.train()
    trained(torch.rand(2, 3, 32, 32))
    assert not torch.equal(trained.stem.norm1.running_mean, before)


def test_gradients_reach_every_trainable_parameter():
    model = tiny(zero_init_residual=False)
    model.train()
    model(torch.rand(2, 3, 32, 32))[-1].sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters())


@pytest.mark.parametrize('kwargs, match', [
    (dict(out_indices=(4, )), 'out_indices'),
    (dict(with_attnpool=False), 'nothing to output'),
    (dict(frozen_stages=6), 'frozen_stages'),
    (dict(heads=5), 'heads'),
    (dict(image_size=100), 'image_size'),
    (dict(layers=(1, 0, 1, 1)), 'layers'),
    (dict(width=15), 'width'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny(**kwargs)


def test_too_small_input():
    with pytest.raises(ValueError, match='at least 32x32'):
        tiny()(torch.rand(1, 3, 16, 64))


def test_missing_checkpoint_is_an_error_at_construction(tmp_path):
    path = str(tmp_path / 'clip' / 'visual.pth')
    with pytest.raises(FileNotFoundError) as info:
        tiny(init_cfg=dict(type='Pretrained', checkpoint=path))
    message = str(info.value)
    assert path in message
    assert (f'python tools/model_converters/convert_clip_rn50.py RN50.pt {tmp_path / "clip"}'
            in message)
    assert 'HLSS_CLIP_DIR' in message


def test_pretrained_init_cfg_loads_weights(tmp_path):
    source = tiny(zero_init_residual=False)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
    path = str(tmp_path / 'visual.pth')
    torch.save(source.state_dict(), path)
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(type='CLIPResNet', **TINY, init_cfg=dict(
        type='Pretrained', checkpoint=path)))
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(model.eval()(x)[-1], source.eval()(x)[-1])


def test_pretrained_with_prefix_from_a_model_checkpoint(tmp_path):
    source = tiny(zero_init_residual=False)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    state = {f'module.backbone.{k}': v for k, v in source.state_dict().items()}
    state['module.heads.patch.weight'] = torch.zeros(3)
    path = str(tmp_path / 'hlss.pth')
    torch.save({'state_dict': state, 'meta': {}}, path)
    model = tiny(init_cfg=dict(type='Pretrained', checkpoint=path,
                               prefix='module.backbone.'))
    model.init_weights()
    assert torch.equal(model.attnpool.pos_embed, source.attnpool.pos_embed)


def test_pretrained_of_another_size_is_an_error(tmp_path):
    path = str(tmp_path / 'visual.pth')
    torch.save(tiny(width=32, heads=8).state_dict(), path)
    model = tiny(init_cfg=dict(type='Pretrained', checkpoint=path))
    before = model.stem.conv1.weight.clone()
    with pytest.raises(ValueError, match='shape') as info:
        model.init_weights()
    assert 'attnpool.k_proj.bias (1024,) vs (512,)' in str(info.value)
    assert 'visual_config.json' in str(info.value)
    assert torch.equal(model.stem.conv1.weight, before)  # nothing loaded
    torch.save(tiny(layers=(1, 1, 1, 1)).state_dict(), path)
    with pytest.raises(ValueError, match='missing keys layer2.1.'):
        tiny(init_cfg=dict(type='Pretrained', checkpoint=path)).init_weights()


def test_identity_neck_passes_outputs_through():
    feats = (torch.rand(2, 4, 3, 3), torch.rand(2, 5))
    out = IdentityNeck()(feats)
    assert isinstance(out, tuple) and all(a is b for a, b in zip(out, feats))
    single = torch.rand(2, 5)
    assert IdentityNeck()(single)[0] is single
    assert not list(IdentityNeck().parameters())


def test_hlss_trains_with_clip_resnet_and_identity_neck(tmp_path):
    names = {lv: [f'{lv} {i}' for i in range(3)]
             for lv in ('patch', 'slide', 'patient')}
    attrs = tmp_path / 'attrs.json'
    attrs.write_text(json.dumps({'modality': 'test', 'levels': {
        lv: {n: [n + ' a', n + ' b'] for n in ns} for lv, ns in names.items()
    }}))
    emb = tmp_path / 'emb.pt'
    all_names = [n for ns in names.values() for n in ns]
    torch.save({'texts': all_names,
                'embeddings': torch.randn(len(all_names), 24)}, str(emb))
    init_default_scope('mmpretrain')
    head = dict(attributes=str(attrs), hvc_loss=dict(
        type='HierarchicalSupConLoss', temperature=0.07),
        ha_loss=dict(type='HierarchicalAlignmentLoss', temperature=0.5))
    model = MODELS.build(dict(
        type='HLSS', backbone=dict(type='CLIPResNet', **TINY),
        neck=dict(type='IdentityNeck'), in_channels=24,
        text_tower=dict(type='PrecomputedTextTower', path=str(emb)),
        heads=dict(patch=dict(head), slide=dict(head))))
    model.init_weights()
    assert model(torch.rand(3, 3, 32, 32), mode='tensor').shape == (3, 24)
    samples = []
    for i in range(4):
        sample = DataSample(metainfo=dict(sample_idx=i))
        sample.set_field(i // 2, 'slide_idx')
        sample.set_field(0, 'patient_idx')
        samples.append(sample)
    views = [torch.rand(4, 3, 32, 32) for _ in range(2)]
    losses = model.loss(views, samples)
    sum(losses.values()).backward()
    assert model.backbone.attnpool.q_proj.weight.grad is not None
