"""Benchmark config overrides: backbone depth and widths, crop size,
patients per batch, and the schedule rescaled to a budget (checked against
the learning rates mmengine's schedulers actually produce)."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmengine.registry import PARAM_SCHEDULERS

from hlss_plugin.benchmark.overrides import (rescale_schedule,
                                                   set_backbone_depth,
                                                   set_crop_size,
                                                   set_patients_per_batch)


def simsiam_like(depth=50, wrapped=False):
    algorithm = dict(
        type='SimSiam',
        backbone=dict(type='ResNet', depth=depth, zero_init_residual=True),
        neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=2048,
                  out_channels=2048),
        head=dict(type='LatentPredictHead', predictor=dict(
            type='NonLinearNeck', in_channels=2048, hid_channels=512,
            out_channels=2048)))
    model = (dict(type='HLSSAuxWrapper', algorithm=algorithm,
                  in_channels=2048, heads=dict(patch=dict(
                      bridge_hidden=2048)))
             if wrapped else algorithm)
    return Config(dict(model=model, other=dict(in_channels=2048)))


def test_backbone_depth_follows_width():
    cfg = simsiam_like()
    changes = set_backbone_depth(cfg, 18)
    assert changes == {
        'model.backbone.depth': (50, 18),
        'model.neck.in_channels': (2048, 512),
        'model.neck.out_channels': (2048, 512),
        'model.head.predictor.in_channels': (2048, 512),
        'model.head.predictor.out_channels': (2048, 512)}
    assert cfg.model.neck.hid_channels == 2048  # hidden sizes kept
    assert cfg.model.head.predictor.hid_channels == 512
    assert cfg.other.in_channels == 2048  # only under model
    assert cfg.model.backbone.zero_init_residual is True
    # and back: 512 -> 2048
    back = set_backbone_depth(cfg, 50)
    assert {k: v[::-1] for k, v in back.items()} == changes


def test_backbone_depth_in_wrapper_and_same_width():
    cfg = simsiam_like(wrapped=True)
    changes = set_backbone_depth(cfg, 34)
    assert changes['model.algorithm.backbone.depth'] == (50, 34)
    assert changes['model.in_channels'] == (2048, 512)
    assert cfg.model.heads.patch.bridge_hidden == 2048
    cfg = simsiam_like()
    assert set_backbone_depth(cfg, 101) == {
        'model.backbone.depth': (50, 101)}
    assert cfg.model.neck.in_channels == 2048
    assert set_backbone_depth(cfg, 101) == {}


def test_backbone_depth_errors():
    with pytest.raises(ValueError, match=r'one of \[18, 34, 50, 101, 152\]'):
        set_backbone_depth(simsiam_like(), 20)
    with pytest.raises(ValueError, match='no ResNet backbone'):
        set_backbone_depth(Config(dict(model=dict(
            type='HLSS', backbone=dict(type='CLIPResNet', layers=[3])))), 18)
    mixed = Config(dict(model=dict(
        student=dict(type='ResNet', depth=18),
        teacher=dict(type='ResNet', depth=50))))
    with pytest.raises(ValueError, match='different widths'):
        set_backbone_depth(mixed, 50)
    with pytest.raises(ValueError, match='no `model`'):
        set_backbone_depth(Config(dict()), 18)


def test_crop_size_sets_views_and_centre_crops():
    cfg = Config(dict(
        train_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadSRHPatch'),
            dict(type='MultiView', num_views=2, transforms=[[
                dict(type='SRHAugment', rand_prob=0.3, crop_size=96)]])])),
        test_dataloader=dict(dataset=dict(pipeline=[
            dict(type='CenterCropTensor', size=224),
            dict(type='RandomResizedCrop', scale=224)]))))
    changes = set_crop_size(cfg, 48)
    assert changes == {
        'train_dataloader.dataset.pipeline.1.transforms.0.0.crop_size':
        (96, 48),
        'test_dataloader.dataset.pipeline.0.size': (224, 48)}
    assert cfg.test_dataloader.dataset.pipeline[1].scale == 224
    assert set_crop_size(cfg, 48) == {}
    with pytest.raises(ValueError, match='no SRHAugment, HEView, '
                       'LightlyView or CenterCropTensor'):
        set_crop_size(Config(dict(pipeline=[dict(type='Resize')])), 48)
    with pytest.raises(ValueError, match='crop size must be an int >= 1'):
        set_crop_size(cfg, 0)


def test_set_crop_size_reaches_the_he_views():
    cfg = Config(dict(view_pipeline=[
        dict(type='HEView', crop_size=224),
        dict(type='LightlyView', view='SimCLRViewTransform',
             input_size=224)]))
    assert set_crop_size(cfg, 64) == {
        'view_pipeline.0.crop_size': (224, 64),
        'view_pipeline.1.input_size': (224, 64)}


def test_patients_per_batch():
    cfg = Config(dict(
        patients_per_batch=32, batch_size=999,
        train_dataloader=dict(batch_size=480, sampler=dict(
            type='HierarchicalSampler', patients_per_batch=32,
            slides_per_patient=3, patches_per_slide=5))))
    changes = set_patients_per_batch(cfg, 4)
    assert changes == {
        'train_dataloader.sampler.patients_per_batch': (32, 4),
        'train_dataloader.batch_size': (480, 4 * 3 * 5),
        'patients_per_batch': (32, 4), 'batch_size': (999, 60)}
    bare = Config(dict(train_dataloader=dict(batch_size=8, sampler=dict(
        patients_per_batch=2, slides_per_patient=2, patches_per_slide=2))))
    assert set(set_patients_per_batch(bare, 3)) == {
        'train_dataloader.sampler.patients_per_batch',
        'train_dataloader.batch_size'}
    assert 'batch_size' not in bare._cfg_dict
    with pytest.raises(ValueError, match='HierarchicalSampler config'):
        set_patients_per_batch(Config(dict(train_dataloader=dict(
            sampler=dict(type='DefaultSampler')))), 4)
    with pytest.raises(ValueError, match='positive int'):
        set_patients_per_batch(cfg, 0)


def schedule_cfg(max_epochs=1000, warmup=100):
    return Config(dict(
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=max_epochs),
        param_scheduler=[
            dict(type='LinearLR', start_factor=1e-3, by_epoch=True,
                 begin=0, end=warmup, convert_to_iter_based=True),
            dict(type='CosineAnnealingLR', T_max=max_epochs - warmup,
                 eta_min=1e-6, by_epoch=True, begin=warmup, end=max_epochs,
                 convert_to_iter_based=True)]))


def lrs(schedulers, iterations):
    """Learning rates mmengine's schedulers give over ``iterations``."""
    param = torch.nn.Parameter(torch.zeros(1))
    optim = OptimWrapper(torch.optim.SGD([param], lr=1.0))
    built = [PARAM_SCHEDULERS.build(dict(s.to_dict(), optimizer=optim))
             for s in schedulers]
    values = []
    for _ in range(iterations):
        values.append(optim.optimizer.param_groups[0]['lr'])
        for sched in built:
            sched.step()
    return values


@pytest.mark.parametrize('epochs,iters', [(3, 7), (10, 9)])
def test_rescale_schedule_keeps_the_shape(epochs, iters):
    cfg = schedule_cfg()
    total = epochs * iters
    changes = rescale_schedule(cfg, epochs, iters)
    assert cfg.train_cfg.max_epochs == epochs
    assert changes['train_cfg.max_epochs'] == (1000, epochs)
    warm, cos = cfg.param_scheduler
    warm_end = round(0.1 * total)  # 10 % of the iterations
    assert (warm.begin, warm.end, warm.by_epoch) == (0, warm_end, False)
    assert (cos.begin, cos.end, cos.T_max) == (warm_end, total,
                                               total - warm_end)
    assert 'convert_to_iter_based' not in warm
    assert changes['param_scheduler.1'][0]['T_max'] == 900
    values = lrs(cfg.param_scheduler, total)
    for t, lr in enumerate(values):
        if t < warm_end:  # mmengine's LinearLR: 1 at its last iteration
            expected = 1e-3 + (1 - 1e-3) * t / (warm_end - 1)
        else:  # cosine from 1 to eta_min over the rest
            expected = 1e-6 + (1 - 1e-6) * (1 + math.cos(
                math.pi * (t - warm_end) / (total - warm_end))) / 2
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-9), t


def test_rescale_schedule_tiny_budgets():
    cfg = schedule_cfg()
    changes = rescale_schedule(cfg, 1, 1)  # one iteration: no warm-up left
    assert changes['param_scheduler.0'][1] is None
    (cos,) = cfg.param_scheduler
    assert (cos.begin, cos.end, cos.T_max) == (0, 1, 1)
    cfg = schedule_cfg()
    rescale_schedule(cfg, 1, 3)  # warm-up rounds to 0 but lasts >= 1
    assert [(s.begin, s.end) for s in cfg.param_scheduler] == [(0, 1),
                                                               (1, 3)]


def test_rescale_schedule_milestones_t_max_and_errors():
    cfg = Config(dict(train_cfg=dict(max_epochs=100), param_scheduler=dict(
        type='MultiStepLR', milestones=[30, 60, 90], by_epoch=True)))
    rescale_schedule(cfg, 2, 50)
    assert cfg.param_scheduler.milestones == [30, 60, 90]
    assert (cfg.param_scheduler.begin, cfg.param_scheduler.end) == (0, 100)
    cfg = Config(dict(train_cfg=dict(max_epochs=100), param_scheduler=[
        dict(type='CosineAnnealingLR', T_max=50, begin=0, end=100)]))
    rescale_schedule(cfg, 1, 10)  # T_max is not the phase length: scaled
    assert cfg.param_scheduler[0].T_max == 5
    with pytest.raises(ValueError, match=r'param_scheduler\.0 is iteration'):
        rescale_schedule(Config(dict(
            train_cfg=dict(max_epochs=10),
            param_scheduler=[dict(type='LinearLR', by_epoch=False)])), 1, 1)
    with pytest.raises(ValueError, match='max_epochs'):
        rescale_schedule(Config(dict(train_cfg=dict(
            type='IterBasedTrainLoop', max_iters=10))), 1, 1)
    with pytest.raises(ValueError, match='epochs must be a positive int'):
        rescale_schedule(schedule_cfg(), 0, 1)
