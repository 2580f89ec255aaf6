"""tools/model_converters/convert_clip_rn50.py against open_clip (the test oracle).

A randomly initialised ``open_clip`` RN50-quickgelu (fixed seed, every
image-tower weight and BatchNorm statistic randomised so no residual branch
is zero) is saved as an open_clip training checkpoint and converted; the
converted towers must reproduce ``encode_image`` / ``encode_text`` to 1e-4
in float32 and the tokenizer must give open_clip's ids. A tiny CLIP ResNet
covers the OpenAI formats (TorchScript archive, float16 state dict) fast.
"""
import importlib.util
import json
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.models.backbones import CLIPResNet
from hlss_plugin.models.text_towers import HFCLIPTextTower

open_clip = pytest.importorskip('open_clip')

os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(REPO, 'configs', 'mmpretrain', 'hlss_clip_rn50_srh.py')
SENTENCES = [
    'Dense sheets of atypical tumour cells.',
    'HELLO, World! Necrosis: YES (approx. 30%)',
    "the patient's glioma; Ki-67 index > 12.5 and 3 mitoses/10 HPF",
    'x',
]
TOL = 1e-4


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        'hlss_tools_convert_clip_rn50',
        osp.join(REPO, 'tools', 'model_converters', 'convert_clip_rn50.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Random weights of sensible scale and random BatchNorm statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=gen) * p[0].numel()
                        ** -0.5)
            elif name.endswith('weight'):
                p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        for name, b in module.named_buffers():
            if name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith('running_var'):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)


def tiny_clip(seed: int = 0):
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    torch.manual_seed(seed)
    model = CLIP(32, quick_gelu=True,
                 vision_cfg=CLIPVisionCfg(layers=(1, 2, 1, 1), width=16,
                                          image_size=64),
                 text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408,
                                      width=128, heads=2, layers=2))
    randomise(model.visual, seed + 1)
    return model.eval()


def build_backbone(checkpoint: str, **kwargs) -> CLIPResNet:
    init_default_scope('mmpretrain')
    model = MODELS.build(dict(type='CLIPResNet', **kwargs, init_cfg=dict(
        type='Pretrained', checkpoint=checkpoint)))
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module')
def rn50(tmp_path_factory):
    """open_clip RN50-quickgelu, its training checkpoint and conversion."""
    root = tmp_path_factory.mktemp('rn50')
    torch.manual_seed(0)
    model = open_clip.create_model('RN50-quickgelu', pretrained=None).eval()
    randomise(model.visual, 1)
    src = str(root / 'epoch_1.pt')
    torch.save({'epoch': 1, 'name': 'rn50', 'state_dict': {
        f'module.{k}': v for k, v in model.state_dict().items()}}, src)
    out = str(root / 'converted')
    info = tool.convert(src, out)
    return model, out, info


def test_rn50_sizes_are_inferred(rn50):
    _, out, info = rn50
    assert info['visual'] == dict(layers=[3, 4, 6, 3], width=64, heads=32,
                                  output_dim=1024, image_size=224)
    text = info['text']
    assert (text['hidden_size'], text['num_hidden_layers'],
            text['num_attention_heads'], text['projection_dim'],
            text['vocab_size'], text['max_position_embeddings'],
            text['hidden_act']) == (512, 12, 8, 1024, 49408, 77, 'quick_gelu')
    with open(osp.join(out, 'visual_config.json')) as f:
        assert json.load(f) == dict(type='CLIPResNet', **info['visual'])
    assert {'config.json', 'model.safetensors', 'vocab.json', 'merges.txt'
            } <= set(os.listdir(osp.join(out, 'text')))


def test_rn50_image_embeddings_match_open_clip(rn50):
    model, out, _ = rn50
    backbone = build_backbone(osp.join(out, 'visual.pth'))  # RN50 defaults
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model.encode_image(x)
        got = backbone(x)[-1]
    assert got.shape == (1, 1024)
    diff = (got - expected).abs().max().item()
    print(f'RN50 image embedding max abs diff: {diff:.3g}')
    assert diff <= TOL


def test_rn50_text_embeddings_and_tokens_match_open_clip(rn50):
    model, out, _ = rn50
    tower = HFCLIPTextTower(model_path=osp.join(out, 'text'))
    tokens = open_clip.get_tokenizer('RN50-quickgelu')(SENTENCES)
    ours = tower.backend['tokenizer'](SENTENCES)['input_ids']
    for row, ids in zip(tokens, ours):
        assert row[:len(ids)].tolist() == ids
        assert row[len(ids):].eq(0).all()  # open_clip pads with zeros
    with torch.no_grad():
        expected = model.encode_text(tokens)
    got = tower.encode(SENTENCES)
    diff = (got - expected).abs().max().item()
    print(f'RN50 text embedding max abs diff: {diff:.3g}')
    assert diff <= TOL


def test_openai_torchscript_archive(tmp_path):
    model = tiny_clip()
    src = str(tmp_path / 'tiny.pt')
    torch.jit.script(model).save(src)
    info = tool.convert(src, str(tmp_path / 'out'))
    assert info['visual'] == dict(layers=[1, 2, 1, 1], width=16, heads=8,
                                  output_dim=32, image_size=64)
    backbone = build_backbone(str(tmp_path / 'out' / 'visual.pth'),
                              **info['visual'])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (backbone(x)[-1] - model.encode_image(x)).abs().max() <= TOL
    tower = HFCLIPTextTower(model_path=str(tmp_path / 'out' / 'text'))
    tokens = open_clip.get_tokenizer('RN50-quickgelu')(SENTENCES)
    with torch.no_grad():
        expected = model.encode_text(tokens)
    assert (tower.encode(SENTENCES) - expected).abs().max() <= TOL


def test_openai_float16_state_dict(tmp_path):
    model = tiny_clip(seed=3)
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point() and value.dim() > 1:
            value = value.half()  # OpenAI stores conv/linear weights in fp16
        state[key] = value
    state.update(input_resolution=torch.tensor(64),
                 context_length=torch.tensor(77),
                 vocab_size=torch.tensor(49408))
    for key in [k for k in state if k.endswith('num_batches_tracked')]:
        del state[key]  # absent from some archives
    src = str(tmp_path / 'openai.pt')
    torch.save(state, src)
    tool.convert(src, str(tmp_path / 'out'))
    converted = torch.load(str(tmp_path / 'out' / 'visual.pth'),
                           weights_only=True)
    assert all(v.dtype in (torch.float32, torch.int64)
               for v in converted.values())
    model.load_state_dict({k: v.float() for k, v in state.items()
                           if k in model.state_dict()}, strict=False)
    backbone = build_backbone(str(tmp_path / 'out' / 'visual.pth'),
                              layers=(1, 2, 1, 1), width=16, heads=8,
                              output_dim=32, image_size=64)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (backbone(x)[-1] - model.encode_image(x)).abs().max() <= TOL


def test_vit_checkpoint_is_refused_with_expected_and_found_keys(tmp_path):
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
    vit = CLIP(32, vision_cfg=CLIPVisionCfg(layers=1, width=64, patch_size=32,
                                            image_size=64),
               text_cfg=CLIPTextCfg(vocab_size=49408, width=64, heads=1,
                                    layers=1))
    src = str(tmp_path / 'vit.pt')
    torch.save(vit.state_dict(), src)
    with pytest.raises(tool.ConvertError) as info:
        tool.convert(src, str(tmp_path / 'out'))
    message = str(info.value)
    assert 'CLIP ViT' in message
    assert 'visual.attnpool.positional_embedding' in message  # expected
    assert 'found' in message and 'visual.class_embedding' in message
    assert not osp.exists(tmp_path / 'out')


def test_torchvision_resnet_is_refused(tmp_path, capsys):
    from torchvision.models import resnet18
    src = str(tmp_path / 'r18.pth')
    torch.save(resnet18().state_dict(), src)
    assert tool.main([src, str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert 'torchvision-style ResNet' in err
    assert 'visual.layer1.0.conv1.weight' in err and 'fc.weight' in err


def test_missing_source_and_bad_bpe(tmp_path):
    with pytest.raises(tool.ConvertError, match='no such file'):
        tool.convert(str(tmp_path / 'nope.pt'), str(tmp_path / 'out'))
    src = str(tmp_path / 'tiny.pt')
    torch.save(tiny_clip().state_dict(), src)
    bad = tmp_path / 'bpe.txt'
    bad.write_text('#version\na b\n')
    with pytest.raises(tool.ConvertError, match='needs 48894 merges'):
        tool.convert(src, str(tmp_path / 'out'), bpe=str(bad))


def test_without_open_clip_the_bpe_must_be_given(monkeypatch):
    monkeypatch.setitem(__import__('sys').modules, 'open_clip', None)
    with pytest.raises(tool.ConvertError, match='--bpe PATH'):
        tool.default_bpe_path()


def test_config_reads_hlss_clip_dir(rn50, monkeypatch):
    _, out, _ = rn50
    monkeypatch.setenv('HLSS_CLIP_DIR', out)
    cfg = Config.fromfile(CONFIG)
    assert cfg.model.backbone.init_cfg.checkpoint == osp.join(
        out, 'visual.pth')
    assert cfg.model.text_tower.model_path == osp.join(out, 'text')
    assert cfg.model.neck.type == 'IdentityNeck'
    assert cfg.model.in_channels == 1024


def test_config_without_converted_folder_says_how_to_convert(
        tmp_path, monkeypatch):
    folder = str(tmp_path / 'clip_rn50')
    monkeypatch.setenv('HLSS_CLIP_DIR', folder)
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmpretrain')
    with pytest.raises(FileNotFoundError) as info:
        MODELS.build(cfg.model)
    assert (f'python tools/model_converters/convert_clip_rn50.py RN50.pt {folder}'
            in str(info.value))
    assert 'HLSS_CLIP_DIR' in str(info.value)
