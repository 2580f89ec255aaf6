"""Every top-level config builds its model and data and trains one step.

Parametrised over ``configs/mmpretrain/*.py``, so new configs are covered
automatically. Data: a tiny synthetic OpenSRH set, or tiny HDF5 bags for
configs whose dataset is ``TCGADataset``.
"""
import glob
import json
import os
import os.path as osp

import h5py
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.synthetic import make_synthetic_srh
from hlss_plugin.benchmark.overrides import set_crop_size

from .test_cohort_configs import write_he_manifest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'mmpretrain', '*.py')))


@pytest.fixture(scope='module')
def srh_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('srh'))
    make_synthetic_srh(root, patients_per_class=2, slides=2, patches=2,
                       size=224, seed=0)
    return root


@pytest.fixture(scope='module')
def tcga_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tcga'))
    rng = np.random.default_rng(0)
    meta, split = {}, {'train': [], 'val': []}
    for p in range(4):
        slides = {}
        for s in range(2):
            rel = f'bags/P{p}_{s}.h5'
            os.makedirs(osp.join(root, 'bags'), exist_ok=True)
            with h5py.File(osp.join(root, rel), 'w') as f:
                f.create_dataset('imgs', data=rng.integers(
                    0, 255, (3, 224, 224, 3), dtype=np.uint8))
            slides[f'DX{s}'] = {'h5': rel, 'num_patches': 3}
        meta[f'P{p}'] = {'class': 'LUAD' if p % 2 else 'LUSC',
                         'slides': slides}
        split['train'].append(f'P{p}')
    os.makedirs(osp.join(root, 'meta'))
    with open(osp.join(root, 'meta', 'tcga.json'), 'w') as f:
        json.dump(meta, f)
    with open(osp.join(root, 'meta', 'train_val_split.json'), 'w') as f:
        json.dump(split, f)
    return root


@pytest.fixture(scope='module')
def manifest_root(tmp_path_factory):
    return write_he_manifest(str(tmp_path_factory.mktemp('cohort')))


@pytest.fixture(scope='module')
def backbone_ckpt(tmp_path_factory):
    """An HLSS-style checkpoint holding a ResNet-50 under 'backbone.'."""
    init_default_scope('mmpretrain')
    backbone = MODELS.build(dict(type='ResNet', depth=50))
    path = str(tmp_path_factory.mktemp('ckpt') / 'hlss.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in
                               backbone.state_dict().items()},
                'meta': {}}, path)
    return path


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.basename(p) for p in CONFIGS])
def test_config_trains_one_step(path, srh_root, tcga_root, backbone_ckpt,
                                request, monkeypatch):
    monkeypatch.setenv('HLSS_BACKBONE_CKPT', backbone_ckpt)
    if 'clip' in osp.basename(path):
        monkeypatch.setenv('HLSS_CLIP_DIR', request.getfixturevalue(
            'clip_dir'))
    cfg = Config.fromfile(path)
    try:  # 64 px views: the step checks building and training, not size
        set_crop_size(cfg, 64)
    except ValueError:
        pass  # no SRH crop in this config (TCGA, linear probe)
    loader_cfg = cfg.train_dataloader
    roots = dict(TCGADataset=tcga_root)
    if loader_cfg.dataset.type == 'HierarchicalManifestDataset':
        roots['HierarchicalManifestDataset'] = request.getfixturevalue(
            'manifest_root')
    loader_cfg.dataset.data_root = roots.get(loader_cfg.dataset.type,
                                             srh_root)
    sampler = loader_cfg.sampler
    if sampler.type == 'HierarchicalSampler':
        sampler.patients_per_batch = 2
        loader_cfg.batch_size = 2 * sampler.slides_per_patient * \
            sampler.patches_per_slide
    else:
        loader_cfg.batch_size = 4
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    trainable = {n: p.detach().clone() for n, p in model.named_parameters()
                 if p.requires_grad}
    assert trainable, 'nothing to train'
    losses = model.train_step(next(iter(loader)), optim)
    assert losses and all(torch.isfinite(v) for v in losses.values())
    params = dict(model.named_parameters())
    changed = [n for n, v in trainable.items() if not torch.equal(params[n],
                                                                 v)]
    assert changed, 'one step changed no trainable parameter'
    if cfg.model.type == 'ImageClassifier':  # linear probe: frozen backbone
        ckpt = torch.load(backbone_ckpt, weights_only=True)['state_dict']
        for name, value in model.backbone.state_dict().items():
            if value.dtype.is_floating_point:
                assert torch.equal(value, ckpt[f'backbone.{name}']), name
    assert not any('text_tower' in k for k in model.state_dict())
