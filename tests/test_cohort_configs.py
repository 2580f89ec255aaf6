"""The H&E cohort configs: TCGA (HLSS and the baselines) and the CSV
manifest cohort read their data, evaluate with kNN on their own cohort, and
use the views they document."""
import csv
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
from mmpretrain.registry import DATASETS, MODELS
from PIL import Image

import hlss_plugin  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO, 'configs', 'mmpretrain')
#: config -> the Lightly view of each of its two training views
TCGA_VIEWS = {
    'hlss_tcga.py': ['HEView', 'HEView'],
    'simclr_resnet50_tcga.py': ['SimCLRViewTransform'] * 2,
    'byol_resnet50_tcga.py': ['BYOLView1Transform', 'BYOLView2Transform'],
    'mocov3_resnet50_tcga.py': ['BYOLView1Transform', 'BYOLView2Transform'],
    'vicreg_resnet50_tcga.py': ['VICRegViewTransform'] * 2,
    'hidisc_resnet50_tcga.py': ['HEView', 'HEView'],
}
MANIFEST_CONFIG = 'hlss_manifest_cohort.py'
#: patients P0..P3: P0, P1 train; P2, P3 val; classes alternate.
PATIENTS = {f'P{p}': ('LUAD' if p % 2 else 'LUSC',
                      'train' if p < 2 else 'val') for p in range(4)}


def write_tcga(root, size=224, slides=2, patches=2):
    """Tiny TCGA layout: one uint8 HDF5 bag per slide, train/val split."""
    rng = np.random.default_rng(0)
    meta, split = {}, {'train': [], 'val': []}
    os.makedirs(osp.join(root, 'bags'))
    os.makedirs(osp.join(root, 'meta'))
    for patient, (label, part) in PATIENTS.items():
        bags = {}
        for s in range(slides):
            rel = f'bags/{patient}_{s}.h5'
            with h5py.File(osp.join(root, rel), 'w') as f:
                f['imgs'] = rng.integers(0, 256, (patches, size, size, 3),
                                         dtype=np.uint8)
            bags[f'DX{s}'] = {'h5': rel, 'num_patches': patches}
        meta[patient] = {'class': label, 'slides': bags}
        split[part].append(patient)
    with open(osp.join(root, 'meta', 'tcga.json'), 'w') as f:
        json.dump(meta, f)
    with open(osp.join(root, 'meta', 'train_val_split.json'), 'w') as f:
        json.dump(split, f)
    return root


def write_he_manifest(root, size=224, slides=2, patches=2,
                      name='manifest.csv'):
    """Tiny CSV-manifest cohort: RGB PNG patches and ``root/name``."""
    rng = np.random.default_rng(1)
    rows = []
    for patient, (label, part) in PATIENTS.items():
        for s in range(slides):
            folder = osp.join(root, patient, f's{s}')
            os.makedirs(folder)
            for k in range(patches):
                rel = f'{patient}/s{s}/{k}.png'
                Image.fromarray(rng.integers(0, 256, (size, size, 3),
                                             dtype=np.uint8)).save(
                    osp.join(root, rel))
                rows.append([rel, patient, f's{s}', label, part])
    with open(osp.join(root, name), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['path', 'patient', 'slide', 'label', 'split'])
        writer.writerows(rows)
    return root


@pytest.fixture(scope='module')
def tcga_root(tmp_path_factory):
    return write_tcga(str(tmp_path_factory.mktemp('tcga')))


@pytest.fixture(scope='module')
def manifest_root(tmp_path_factory):
    return write_he_manifest(str(tmp_path_factory.mktemp('cohort')))


def _set_data_root(node, root):
    """Replace every ``data_root`` entry (as the tools' --data-root)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'data_root':
                node[key] = root
            else:
                _set_data_root(value, root)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _set_data_root(value, root)


def _load(name, root):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    _set_data_root(cfg._cfg_dict, root)
    init_default_scope('mmpretrain')
    return cfg


def _views(pipeline):
    """The view transform of each MultiView branch of a train pipeline."""
    multi = next(t for t in pipeline if t['type'] == 'MultiView')
    branches = multi['transforms']
    counts = multi['num_views']
    counts = [counts] * len(branches) if isinstance(counts, int) else counts
    return [b[0] for b, n in zip(branches, counts) for _ in range(n)]


@pytest.mark.parametrize('name', sorted(TCGA_VIEWS))
def test_tcga_training_views(name, tcga_root):
    cfg = _load(name, tcga_root)
    dataset_cfg = cfg.train_dataloader.dataset
    assert dataset_cfg.type == 'TCGADataset'
    views = _views(dataset_cfg.pipeline)
    assert [v.get('view', v['type']) for v in views] == TCGA_VIEWS[name]
    # every view ends in HED stain jitter (the transforms' default)
    assert all(v.get('hed', {}) is not None for v in views)
    dataset = DATASETS.build(dataset_cfg)
    assert {dataset.get_data_info(i)['patient']
            for i in range(len(dataset))} == {'P0', 'P1'}  # train split
    torch.manual_seed(0)
    np.random.seed(0)
    out = dataset[0]
    assert len(out['inputs']) == 2
    for view in out['inputs']:
        assert view.shape == (3, 224, 224) and view.dtype == torch.float32
        assert 0 <= view.min() and view.max() <= 1
    assert not torch.equal(out['inputs'][0], out['inputs'][1])


def _check_knn_eval(cfg, dataset_type):
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        knn = loader.dataset
        assert knn.type == 'HierarchicalKNNDataset'
        assert (knn.bank.type, knn.query.type) == (dataset_type,) * 2
        assert (knn.bank.split, knn.query.split) == ('train', 'val')
        # the bank reads the train split with the training policy
        assert knn.bank.on_bad_patch == \
            cfg.train_dataloader.dataset.on_bad_patch
    assert cfg.val_evaluator.type == 'HierarchicalKNNMetric'
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    assert dataset.split_names == {'bank': 'train', 'query': 'val'}
    roles = [dataset[i]['data_samples'].knn_role
             for i in range(len(dataset))]
    assert roles.count('bank') == roles.count('query') == 8
    item = dataset[len(dataset) - 1]
    assert item['inputs'].shape == (3, 224, 224)
    return dataset


@pytest.mark.parametrize('name', sorted(TCGA_VIEWS))
def test_tcga_knn_evaluation_reads_tcga(name, tcga_root):
    cfg = _load(name, tcga_root)
    _check_knn_eval(cfg, 'TCGADataset')


def test_manifest_cohort_reads_the_csv(manifest_root):
    cfg = _load(MANIFEST_CONFIG, manifest_root)
    dataset_cfg = cfg.train_dataloader.dataset
    assert dataset_cfg.type == 'HierarchicalManifestDataset'
    assert [v['type'] for v in _views(dataset_cfg.pipeline)] == \
        ['HEView'] * 2
    train = DATASETS.build(dataset_cfg)
    assert len(train) == 8 and train.metainfo['classes'] == ('LUAD',
                                                             'LUSC')
    _check_knn_eval(cfg, 'HierarchicalManifestDataset')


def test_manifest_name_from_environment(manifest_root, monkeypatch):
    os.rename(osp.join(manifest_root, 'manifest.csv'),
              osp.join(manifest_root, 'cohort_v2.csv'))
    try:
        monkeypatch.setenv('HLSS_MANIFEST', 'cohort_v2.csv')
        cfg = _load(MANIFEST_CONFIG, manifest_root)
        knn = cfg.val_dataloader.dataset
        assert {cfg.train_dataloader.dataset.manifest, knn.bank.manifest,
                knn.query.manifest} == {'cohort_v2.csv'}
        assert len(DATASETS.build(cfg.train_dataloader.dataset)) == 8
    finally:
        os.rename(osp.join(manifest_root, 'cohort_v2.csv'),
                  osp.join(manifest_root, 'manifest.csv'))


def test_manifest_cohort_trains_one_step(manifest_root):
    """What tests/test_configs.py checks, on a manifest (64 px views)."""
    cfg = _load(MANIFEST_CONFIG, manifest_root)
    loader_cfg = cfg.train_dataloader
    for view in _views(loader_cfg.dataset.pipeline):
        view.crop_size = 64
    loader_cfg.sampler.patients_per_batch = 2
    loader_cfg.batch_size = 2 * 2 * 2
    loader_cfg.num_workers = 0
    loader_cfg.persistent_workers = False
    loader = Runner.build_dataloader(loader_cfg, seed=0)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    before = {n: p.detach().clone() for n, p in model.named_parameters()
              if p.requires_grad}
    losses = model.train_step(next(iter(loader)), optim)
    assert losses and all(torch.isfinite(v) for v in losses.values())
    params = dict(model.named_parameters())
    assert any(not torch.equal(params[n], v) for n, v in before.items())
