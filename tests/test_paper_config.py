"""configs/mmpretrain/hlss_clip_rn50_srh.py is the published HLSS recipe.

Every row of docs/reproduction.md that a config decides is checked here on
the resolved config or the built model (a random-weight open_clip RN50
converted by tools/model_converters/convert_clip_rn50.py stands in for the CC12M weights).
"""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.augmentation.recipes import RECIPES

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PAPER = osp.join(REPO, 'configs', 'mmpretrain', 'hlss_clip_rn50_srh.py')
LEVELS = ('patch', 'slide', 'patient')


@pytest.fixture(scope='module')
def cfg():
    return Config.fromfile(PAPER)


@pytest.fixture(scope='module')
def model(clip_dir):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('HLSS_CLIP_DIR', clip_dir)
        config = Config.fromfile(PAPER)
    init_default_scope('mmpretrain')
    built = MODELS.build(config.model)
    built.init_weights()
    return built


def test_heads_have_no_bridge_and_128_attribute_rows(model):
    for level in LEVELS:
        head = model.heads[level]
        assert isinstance(head.bridge, torch.nn.Identity), level
        assert head.num_attributes == 128, level
        assert head.attribute_proj.weight.shape == (128, 1024), level
        torch.testing.assert_close(head.attribute_proj.weight.detach(),
                                   head.text_embeddings)
        assert torch.count_nonzero(head.attribute_proj.bias) == 0


def test_each_attribute_text_selects_its_own_row(model):
    """The language tie at initialisation: a level's attribute text
    embedding fed as an image embedding picks that attribute (100 %)."""
    for level in LEVELS:
        head = model.heads[level]
        _, s = head(head.text_embeddings)
        assert s.argmax(dim=1).tolist() == list(range(128)), level


def test_ha_is_the_published_form(cfg, model):
    for level in LEVELS:
        ha = model.heads[level].ha_loss
        assert (ha.detach, ha.temperature, ha.reduction,
                ha.gather_distributed, ha.loss_weight) == (
                    True, 1.0, 'sum', True, 1.0), level
        hvc = model.heads[level].hvc_loss
        assert (hvc.temperature, hvc.base_temperature,
                hvc.gather_distributed) == (0.07, 0.07, True)


def test_visual_tower_is_clip_rn50_without_normalisation(cfg, model):
    assert cfg.model.backbone.type == 'CLIPResNet'
    assert cfg.model.backbone.output_dim == 1024
    assert cfg.model.text_tower.type == 'HFCLIPTextTower'
    pre = model.data_preprocessor
    assert torch.equal(pre.mean.flatten(), torch.zeros(3))
    assert torch.equal(pre.std.flatten(), torch.ones(3))
    feats = model(torch.rand(2, 3, 224, 224), mode='tensor')
    assert feats.shape == (2, 1024)


def test_data_augmentation_sampling_and_evaluation(cfg):
    loader = cfg.train_dataloader
    views = loader.dataset.pipeline[2]
    assert views.type == 'MultiView' and views.num_views == 2
    assert views.transforms == [[dict(type='SRHAugment',
                                      recipe='published')]]
    assert RECIPES['published']['rand_prob'] == 0.5
    sampler = loader.sampler
    assert (sampler.patients_per_batch, sampler.slides_per_patient,
            sampler.patches_per_slide) == (32, 2, 2)
    assert sampler.batch_scope == 'global'
    assert sampler.class_balanced == 'replicate'
    assert loader.batch_size == 32 * 2 * 2
    assert loader.batch_sampler.type == 'HierarchicalBatchSampler'
    for name in ('val', 'test'):
        evaluator = cfg[f'{name}_evaluator']
        assert (evaluator.k, evaluator.temperature,
                evaluator.aggregation) == (200, 0.07, 'published')
        steps = [t.type for t in cfg[f'{name}_dataloader'].dataset.pipeline]
        assert 'ResizeTensor' in steps and 'CenterCropTensor' not in steps


def test_schedule(cfg):
    opt = cfg.optim_wrapper.optimizer
    assert (opt.type, opt.lr, opt.weight_decay) == ('AdamW', 1e-3, 0.01)
    warm, cos = cfg.param_scheduler
    assert cfg.train_cfg.max_epochs == 40000
    assert warm.end == 4000 == 0.1 * cfg.train_cfg.max_epochs
    assert cos.begin == 4000 and cos.end == 40000 and cos.eta_min == 0
    assert warm.convert_to_iter_based and cos.convert_to_iter_based
    assert cfg.train_cfg.val_interval == 400


@pytest.mark.parametrize('value', ['', '  '])
def test_empty_hlss_clip_dir_is_a_clear_error(monkeypatch, value):
    """HLSS_CLIP_DIR set but empty names the variable and how to set it
    (mmengine's own ``{{$VAR:default}}`` would end in a KeyError claiming it
    is not set)."""
    monkeypatch.setenv('HLSS_CLIP_DIR', value)
    with pytest.raises(ValueError, match='HLSS_CLIP_DIR is set but empty') \
            as info:
        Config.fromfile(PAPER)
    assert 'export HLSS_CLIP_DIR=' in str(info.value)
    assert 'convert_clip_rn50.py' in str(info.value)


def test_hlss_clip_dir_sets_both_towers(monkeypatch):
    monkeypatch.setenv('HLSS_CLIP_DIR', '/weights/clip')
    model_cfg = Config.fromfile(PAPER).model
    assert model_cfg.backbone.init_cfg.checkpoint == '/weights/clip/visual.pth'
    assert model_cfg.text_tower.model_path == '/weights/clip/text'
    monkeypatch.delenv('HLSS_CLIP_DIR')
    default = Config.fromfile(PAPER).model
    assert default.backbone.init_cfg.checkpoint == (
        'checkpoints/clip_rn50/visual.pth')
