"""BackboneEmbedder: loading backbones from every checkpoint layout,
strictness, modes and the predict path used by the kNN metric."""
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import hlss_plugin  # noqa: F401
from hlss_plugin.models.algorithms import backbone_embedder as module

TINY = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)
MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.5]


def source_backbone(seed=1, **overrides):
    """A backbone with non-default weights (what a training run saved)."""
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    backbone = MODELS.build(dict(TINY, **overrides))
    backbone.init_weights()
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.01 * torch.randn_like(p))
        for name, b in backbone.named_buffers():
            if name.endswith('running_mean'):
                b.copy_(0.1 * torch.randn_like(b))
    backbone.eval()
    return backbone


def save(tmp_path, state, name='ckpt.pth', wrap=True):
    path = str(tmp_path / name)
    torch.save({'meta': {'epoch': 1}, 'state_dict': state} if wrap else
               state, path)
    return path


def prefixed(backbone, prefix):
    return {f'{prefix}{k}': v.clone() for k, v in
            backbone.state_dict().items()}


def build(**kwargs):
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    cfg = dict(type='BackboneEmbedder', backbone=dict(TINY))
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.eval()
    return model


def assert_same_backbone(model, backbone):
    expected = backbone.state_dict()
    got = model.backbone.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


@pytest.mark.parametrize('prefix', list(module.BACKBONE_PREFIXES))
def test_auto_prefix_finds_every_layout(tmp_path, prefix):
    src = source_backbone()
    other = prefix.replace('backbone.', 'neck.')
    state = prefixed(src, prefix)
    state[f'{other}fc.weight'] = torch.ones(3, 3)
    state['head.loss.weight'] = torch.ones(2)
    model = build(checkpoint=save(tmp_path, state))
    assert model.checkpoint_prefix == prefix
    assert_same_backbone(model, src)


def test_features_match_manual_pooling(tmp_path):
    src = source_backbone()
    model = build(checkpoint=save(tmp_path, prefixed(src, 'backbone.')))
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        expected = src(x)[-1].mean(dim=(2, 3))  # global average pooling
        got = model(x, mode='tensor')
        views = model([x, x.flip(-1)], mode='tensor')
    assert got.shape == (3, 64)
    torch.testing.assert_close(got, expected)
    assert len(views) == 2
    torch.testing.assert_close(views[0], expected)


def test_predict_through_data_preprocessor(tmp_path):
    src = source_backbone()
    model = build(checkpoint=save(tmp_path, prefixed(src, 'backbone.')),
                  data_preprocessor=dict(type='SelfSupDataPreprocessor',
                                         mean=MEAN, std=STD, to_rgb=False))
    x = torch.rand(4, 3, 32, 32)
    samples = [DataSample(metainfo=dict(knn_id=i)) for i in range(4)]
    out = model.test_step(dict(inputs=x, data_samples=samples))
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = src((x - mean) / std)[-1].mean(dim=(2, 3))
    assert [s.knn_id for s in out] == [0, 1, 2, 3]
    torch.testing.assert_close(torch.stack([s.feats for s in out]),
                               expected)


def test_plain_state_dict_and_explicit_prefixes(tmp_path):
    src = source_backbone()
    bare = save(tmp_path, prefixed(src, ''), 'bare.pth', wrap=False)
    assert_same_backbone(build(checkpoint=bare, prefix=''), src)
    student = save(tmp_path, prefixed(src, 'student.backbone.'), 's.pth')
    model = build(checkpoint=student, prefix='student.backbone.')
    assert model.checkpoint_prefix == 'student.backbone.'
    assert_same_backbone(model, src)


def test_no_backbone_lists_found_prefixes(tmp_path):
    src = source_backbone()
    state = prefixed(src, 'student.backbone.')
    state['neck.fc.weight'] = torch.ones(2, 2)
    with pytest.raises(ValueError) as err:
        build(checkpoint=save(tmp_path, state))
    message = str(err.value)
    assert 'neck.' in message and 'student.backbone.' in message
    assert 'prefix=' in message
    with pytest.raises(ValueError, match="prefix='head.'"):
        build(checkpoint=save(tmp_path, state), prefix='head.')


def test_differing_duplicate_backbones_are_ambiguous(tmp_path):
    src, other = source_backbone(seed=1), source_backbone(seed=2)
    same = {**prefixed(src, 'backbone.'),
            **prefixed(src, 'algorithm.backbone.')}
    model = build(checkpoint=save(tmp_path, same, 'same.pth'))
    assert model.checkpoint_prefix == 'backbone.'
    assert_same_backbone(model, src)
    differ = {**prefixed(src, 'backbone.'),
              **prefixed(other, 'algorithm.backbone.')}
    with pytest.raises(ValueError, match='different backbones'):
        build(checkpoint=save(tmp_path, differ, 'differ.pth'))
    model = build(checkpoint=save(tmp_path, differ, 'differ.pth'),
                  prefix='algorithm.backbone.')
    assert_same_backbone(model, other)


def test_strict_load_lists_missing_unexpected_and_shapes(tmp_path):
    src = source_backbone()
    state = prefixed(src, 'backbone.')
    del state['backbone.conv1.weight']
    state['backbone.extra.weight'] = torch.ones(1)
    with pytest.raises(ValueError) as err:
        build(checkpoint=save(tmp_path, state))
    assert 'missing keys: conv1.weight' in str(err.value)
    assert 'unexpected keys: extra.weight' in str(err.value)
    wider = source_backbone(base_channels=16)
    with pytest.raises(ValueError, match='shape mismatch: layer1'):
        build(checkpoint=save(tmp_path, prefixed(wider, 'backbone.'),
                              'wide.pth'))
    deeper = source_backbone(depth=34)
    with pytest.raises(ValueError, match=r'unexpected keys: layer1\.2\.'):
        build(checkpoint=save(tmp_path, prefixed(deeper, 'backbone.'),
                              'deep.pth'))


def test_loads_weights_only(tmp_path, monkeypatch):
    src = source_backbone()
    path = save(tmp_path, prefixed(src, 'backbone.'))
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get('weights_only'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(module.torch, 'load', spy)
    build(checkpoint=path)
    assert calls == [True]
    monkeypatch.setattr(module.torch, 'load', real_load)
    unsafe = str(tmp_path / 'unsafe.pth')
    torch.save({'state_dict': prefixed(src, 'backbone.'),
                'meta': {'obj': DataSample()}}, unsafe)
    with pytest.raises(ValueError, match='weights_only=True'):
        build(checkpoint=unsafe)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        build(checkpoint=str(tmp_path / 'missing.pth'))
    torch.save({'state_dict': {}}, str(tmp_path / 'empty.pth'))
    with pytest.raises(ValueError, match='holds no state dict'):
        build(checkpoint=str(tmp_path / 'empty.pth'))


def test_init_weights_keeps_the_checkpoint(tmp_path):
    src = source_backbone()
    model = build(checkpoint=save(tmp_path, prefixed(src, 'backbone.')))
    model.init_weights()
    assert_same_backbone(model, src)
    untrained = build()
    assert untrained.checkpoint_prefix is None
    before = {k: v.clone() for k, v in untrained.state_dict().items()}
    untrained.init_weights()  # an untrained baseline: just initialised
    assert any(not torch.equal(before[k], v)
               for k, v in untrained.state_dict().items())


def test_loss_and_unknown_modes_are_refused():
    model = build()
    x = torch.rand(2, 3, 32, 32)
    with pytest.raises(ValueError, match='evaluation-only'):
        model(x, mode='loss')
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(ValueError, match='evaluation-only'):
        model.train_step(dict(inputs=[x], data_samples=None), optim)
    with pytest.raises(ValueError, match="unknown mode 'logits'"):
        model(x, mode='logits')
    with pytest.raises(ValueError, match='prefix must be a str'):
        build(prefix=None)
