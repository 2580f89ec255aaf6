"""HLSSPretrained: a backbone from every checkpoint layout through
``init_cfg`` + ``init_weights()``, prefixes, strictness and the linear
probe config."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import BaseModule
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS, WEIGHT_INITIALIZERS
from mmpretrain.structures import DataSample
from torch import nn

import hlss_plugin  # noqa: F401
from hlss_plugin.models.initializers import hlss_pretrained_init as module
from hlss_plugin.utils.backbone_state import BACKBONE_PREFIXES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
TINY = dict(type='ResNet', depth=18, base_channels=8, stem_channels=8)


def source_backbone(seed=1, **overrides):
    """A trained-looking backbone: every tensor differs from a fresh one
    (including the residual norms ``zero_init_residual`` would zero)."""
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    backbone = MODELS.build(dict(TINY, **overrides))
    with torch.no_grad():
        for p in backbone.parameters():
            p.add_(0.1 * torch.randn_like(p) + 0.05)
        for name, b in backbone.named_buffers():
            if b.is_floating_point():
                b.add_(0.1 * torch.rand_like(b))
            else:  # num_batches_tracked
                b.fill_(seed + 6)
    return backbone


def layout(backbone, prefix):
    """A checkpoint's state dict: the backbone under ``prefix`` plus the
    neck / head keys such a training run also saves."""
    state = {f'{prefix}{k}': v.clone()
             for k, v in backbone.state_dict().items()}
    if prefix:
        neck = prefix.replace('backbone.', 'neck.')
        state[f'{neck}fc.weight'] = torch.ones(4, 64)
        state['head.loss.temperature'] = torch.ones(1)
    return state


def save(tmp_path, state, name='ckpt.pth', wrap=True):
    path = str(tmp_path / name)
    torch.save({'meta': {'epoch': 3}, 'state_dict': state} if wrap
               else state, path)
    return path


def init_from(checkpoint, backbone=TINY, **init_args):
    """A fresh backbone initialised through the config path."""
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(dict(backbone, init_cfg=dict(
        type='HLSSPretrained', checkpoint=checkpoint, **init_args)))
    model.init_weights()
    return model


def assert_same_tensors(model, source):
    expected, got = source.state_dict(), model.state_dict()
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


@pytest.fixture
def logs(monkeypatch):
    lines = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: lines.append(msg))
    return lines


def test_registered_under_the_mmpretrain_scope():
    assert WEIGHT_INITIALIZERS.get('HLSSPretrained') is \
        module.HLSSPretrainedInit


@pytest.mark.parametrize('prefix', list(BACKBONE_PREFIXES) + [''],
                         ids=lambda p: p or 'plain')
def test_every_layout_loads_every_tensor(tmp_path, logs, prefix):
    src = source_backbone()
    path = save(tmp_path, layout(src, prefix), wrap=bool(prefix))
    model = init_from(path)
    assert_same_tensors(model, src)  # includes zero_init_residual's norms
    assert len(logs) == 1 and path in logs[0]
    if prefix:
        assert f"prefix '{prefix}', detected" in logs[0]
    else:
        assert 'plain state dict' in logs[0]


def test_clip_converter_visual_pth_loads_into_clip_resnet(tmp_path):
    """``visual.pth`` as tools/model_converters/convert_clip_rn50.py writes it (a plain
    dict), checked against open_clip's own image tower."""
    from open_clip.modified_resnet import ModifiedResNet
    spec = importlib.util.spec_from_file_location(
        'convert_clip_rn50_for_init_test',
        osp.join(REPO, 'tools', 'model_converters', 'convert_clip_rn50.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    torch.manual_seed(3)
    clip = ModifiedResNet((1, 1, 1, 1), output_dim=32, heads=8,
                          image_size=64, width=16).eval()
    with torch.no_grad():
        for p in clip.parameters():
            p.add_(0.05 * torch.randn_like(p))
    visual = tool.convert_visual({f'visual.{k}': v for k, v in
                                  clip.state_dict().items()})
    path = str(tmp_path / 'visual.pth')
    torch.save(visual, path)
    model = init_from(path, backbone=dict(
        type='CLIPResNet', layers=(1, 1, 1, 1), width=16, heads=8,
        output_dim=32, image_size=64)).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[-1], clip(x))


def test_loaded_weights_survive_submodule_init_cfgs(tmp_path):
    """A child's own init_cfg (run after the parent's by mmengine) must not
    overwrite the checkpoint, as with mmengine's Pretrained."""

    class Child(BaseModule):

        def __init__(self):
            super().__init__(init_cfg=dict(type='Constant', val=0.0,
                                           layer='Linear'))
            self.fc = nn.Linear(3, 2)

    class Net(BaseModule):

        def __init__(self, init_cfg):
            super().__init__(init_cfg=init_cfg)
            self.child = Child()

    torch.manual_seed(0)
    src = Net(None)
    path = save(tmp_path, layout(src, 'backbone.'))
    init_default_scope('mmpretrain')
    net = Net(dict(type='HLSSPretrained', checkpoint=path))
    net.init_weights()
    assert_same_tensors(net, src)
    assert net.child.fc.weight.abs().sum() > 0


def test_wrong_architecture_names_file_prefixes_and_keys(tmp_path):
    deeper = save(tmp_path, layout(source_backbone(depth=34),
                                   'algorithm.backbone.'), 'deep.pth')
    with pytest.raises(ValueError) as err:
        init_from(deeper)
    message = str(err.value)
    assert deeper in message
    assert all(repr(p) in message for p in BACKBONE_PREFIXES)
    assert "'algorithm.backbone.' detected" in message
    assert 'unexpected keys: layer1.2.' in message
    assert 'same ResNet depth' in message
    wider = save(tmp_path, layout(source_backbone(base_channels=16), ''),
                 'wide.pth', wrap=False)
    with pytest.raises(ValueError, match='shape mismatch: layer1'):
        init_from(wider)
    student = save(tmp_path, layout(source_backbone(), 'student.backbone.'),
                   'student.pth')
    with pytest.raises(ValueError) as err:
        init_from(student)
    message = str(err.value)
    assert student in message and 'plain backbone state dict' in message
    assert 'missing keys: bn1.bias' in message
    assert 'unexpected keys: head.loss.temperature' in message
    assert "'student.backbone.'" in message  # suggested from the file


def test_explicit_prefix_is_used_as_given(tmp_path, logs):
    teacher, student = source_backbone(seed=1), source_backbone(seed=2)
    both = save(tmp_path, {**layout(teacher, 'backbone.'),
                           **layout(student, 'algorithm.backbone.')})
    with pytest.raises(ValueError, match='different backbones'):
        init_from(both)
    assert_same_tensors(init_from(both, prefix='algorithm.backbone.'),
                        student)
    assert_same_tensors(init_from(both, prefix='backbone.'), teacher)
    assert "prefix 'backbone.')" in logs[-1]  # given, not detected
    custom = save(tmp_path, layout(student, 'student.backbone.'), 'c.pth')
    assert_same_tensors(init_from(custom, prefix='student.backbone.'),
                        student)


def test_prefix_matching_nothing_or_malformed_fails(tmp_path):
    path = save(tmp_path, layout(source_backbone(), 'backbone.'))
    with pytest.raises(ValueError) as err:
        init_from(path, prefix='teacher.backbone.')
    message = str(err.value)
    assert "prefix='teacher.backbone.'" in message and 'neck.' in message
    with pytest.raises(ValueError, match="ending with '.'"):
        init_from(path, prefix='backbone')
    with pytest.raises(ValueError, match='epoch_N.pth'):
        init_from('')


def test_reads_weights_only(tmp_path, monkeypatch):
    src = source_backbone()
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get('weights_only'))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, 'load', spy)
    init_from(save(tmp_path, layout(src, 'backbone.')))
    assert calls == [True]
    unsafe = str(tmp_path / 'unsafe.pth')
    torch.save({'state_dict': layout(src, 'backbone.'),
               'meta': {'obj': DataSample()}}, unsafe)
    with pytest.raises(ValueError, match='weights_only=True'):
        init_from(unsafe)
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        init_from(str(tmp_path / 'missing.pth'))


def test_linear_probe_config_loads_a_wrapper_checkpoint(tmp_path,
                                                        monkeypatch):
    """The linear probe takes an HLSSAuxWrapper checkpoint as it is."""
    src = source_backbone()
    path = save(tmp_path, layout(src, 'algorithm.backbone.'))
    monkeypatch.setenv('HLSS_BACKBONE_CKPT', path)
    cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'mmpretrain', 'linear_probe_resnet50_srh.py'))
    assert cfg.model.backbone.init_cfg == dict(type='HLSSPretrained',
                                               checkpoint=path)
    cfg.model.backbone.update(depth=18, base_channels=8, stem_channels=8)
    cfg.model.head.in_channels = 64
    init_default_scope('mmpretrain')
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert_same_tensors(model.backbone, src)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    with torch.no_grad():
        scores = model(torch.rand(2, 3, 32, 32), mode='tensor')
    assert scores.shape == (2, 7)
