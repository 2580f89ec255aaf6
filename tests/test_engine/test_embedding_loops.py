"""EmbeddingValLoop / EmbeddingTestLoop: kNN validation of models that
cannot predict (MMPretrain's baselines), through a real mmengine Runner on
a tiny synthetic OpenSRH set, checked against independent computations."""
import importlib.util
import json
import os.path as osp
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, ValLoop
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.engine.loops import EmbeddingTestLoop, EmbeddingValLoop
from hlss_plugin.engine.loops import embedding_step
from hlss_plugin.evaluation.functional import (hierarchical_metrics,
                                               knn_scores)
from hlss_plugin.models.algorithms import HLSSAuxWrapper
from hlss_plugin.synthetic import make_synthetic_srh
from hlss_plugin.benchmark.overrides import (set_crop_size,
                                                   set_patients_per_batch)
from hlss_plugin.utils.config import set_data_root

from ..test_models.test_algorithms.test_hlss import text_files  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(REPO, 'configs', 'mmpretrain')
SIMCLR = osp.join(CONFIGS, 'simclr_resnet50_srh.py')
SIMCLR_HLSS = osp.join(CONFIGS, 'simclr_hlss_srh.py')
K = 5
LEVELS = ('patch', 'slide', 'patient')
# ResNet-18 at 1/8 width (64 output channels) and a 16-d projector: the
# baseline config with everything but the sizes kept
TINY = {'model.backbone.depth': 18, 'model.backbone.stem_channels': 8,
        'model.backbone.base_channels': 8, 'model.neck.in_channels': 64,
        'model.neck.hid_channels': 32, 'model.neck.out_channels': 16}


@pytest.fixture(scope='module')
def srh_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('srh'))
    make_synthetic_srh(root, patients_per_class=2, slides=2, patches=2,
                       size=64, seed=0)
    return root


def tiny_config(path, root, work_dir, options=TINY):
    """``path`` shrunk for 2 CPU cores: tiny model, 64 px, P = 2, one
    epoch validated at its end, k = 5, no workers, local logs only."""
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(dict(options))
    set_data_root(cfg, root)
    set_crop_size(cfg, 64)  # 2 x 2 last-stage maps: pooling matters
    set_patients_per_batch(cfg, 2)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].num_workers = 0
        cfg[key].persistent_workers = False
    cfg.val_dataloader.batch_size = cfg.test_dataloader.batch_size = 16
    cfg.val_evaluator.k = cfg.test_evaluator.k = K
    cfg.train_cfg.update(max_epochs=1, val_interval=1)
    cfg.visualizer.vis_backends = [dict(type='LocalVisBackend')]
    cfg.default_hooks.logger.interval = 1
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'embedding_loops_{time.time_ns()}'
    return cfg


def normalised(pre, inputs):
    """The preprocessor config's normalisation: (x - mean) / std."""
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    return (inputs.float() - mean) / std


def record_processed(evaluator):
    """Wrap ``evaluator.process``; returns the list of (batch, feats)."""
    seen, process = [], evaluator.process

    def spy(data_samples, data_batch=None):
        feats = torch.stack([s.feats.detach().clone() for s in data_samples])
        seen.append((data_batch, feats))
        return process(data_samples, data_batch)

    evaluator.process = spy
    return seen


def embedder_feats(cfg, checkpoint, loader):
    """``{knn_id: feats}`` from ``BackboneEmbedder`` (what
    tools/benchmarks/benchmark.py evaluates) loaded from ``checkpoint``."""
    init_default_scope('mmpretrain')
    embedder = MODELS.build(dict(
        type='BackboneEmbedder', backbone=cfg.model.backbone,
        data_preprocessor=cfg.model.data_preprocessor,
        checkpoint=checkpoint)).eval()
    out = {}
    with torch.no_grad():
        for batch in loader:
            for sample in embedder.test_step(batch):
                out[int(sample.knn_id)] = sample.feats
    return out


def logged_validations(runner):
    """The validation entries of the run's ``vis_data/scalars.json``."""
    with open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')) as f:
        logged = [json.loads(line) for line in f]
    return [entry for entry in logged if 'patch/acc' in entry]


def test_baseline_trains_with_knn_validation(srh_root, tmp_path):
    cfg = tiny_config(SIMCLR, srh_root, tmp_path)
    assert cfg.model.type == 'SimCLR'
    assert cfg.val_cfg.type == 'EmbeddingValLoop'
    runner = Runner.from_cfg(cfg)
    loop = runner.val_loop
    assert isinstance(loop, EmbeddingValLoop) and not loop.predicts
    seen = record_processed(loop.evaluator)
    runner.train()

    # the validation ran on every bank and query patch, and was logged
    dataset = loop.dataloader.dataset
    assert sum(len(f) for _, f in seen) == len(dataset)
    val = logged_validations(runner)
    assert len(val) == 1
    for level in LEVELS:
        for key in ('acc', 'top2', 'mca', 'map'):
            assert 0 <= val[0][f'{level}/{key}'] <= 100
    # save_best='patient/acc' (from the shared base) kept a checkpoint
    assert osp.isfile(osp.join(tmp_path, 'best_patient_acc_epoch_1.pth'))

    # the loop's feats = backbone + mean over H, W of the normalised batch
    model = runner.model.eval()
    batch, feats = seen[0]
    with torch.no_grad():
        expected = model.backbone(normalised(cfg.model.data_preprocessor,
                                           batch['inputs']))[-1]
    torch.testing.assert_close(feats, expected.mean(dim=(2, 3)),
                               rtol=1e-5, atol=1e-5)

    # ... = BackboneEmbedder's on the same weights, and the logged metrics
    # are the kNN metrics of those embeddings
    ckpt = osp.join(tmp_path, 'epoch_1.pth')
    reference = embedder_feats(cfg, ckpt, loop.dataloader)
    ids = [int(i) for b, _ in seen for i in
           (s.knn_id for s in b['data_samples'])]
    torch.testing.assert_close(torch.cat([f for _, f in seen]),
                               torch.stack([reference[i] for i in ids]),
                               rtol=0, atol=1e-6)
    items = [dataset.get_data_info(i) for i in range(len(dataset))]
    ids = np.array([item['knn_id'] for item in items])
    bank = np.array([item['knn_role'] == 'bank' for item in items])
    emb = torch.stack([reference[i] for i in ids])
    labels = torch.tensor([item['gt_label'] for item in items])
    hier = {key: torch.tensor([item[key] for item in items])
            for key in ('slide_idx', 'patient_idx')}
    classes = len(dataset.metainfo['classes'])
    ref = hierarchical_metrics(
        knn_scores(emb[~bank], emb[bank], labels[bank], classes, k=K),
        labels[~bank], hier['slide_idx'][~bank], hier['patient_idx'][~bank],
        classes)
    for level in LEVELS:
        for key in ('acc', 'mca', 'map'):
            assert val[0][f'{level}/{key}'] == pytest.approx(
                ref[level][key], abs=1e-3), (level, key)


def test_model_that_predicts_goes_through_predict(srh_root, tmp_path,
                                                  text_files,  # noqa: F811
                                                  monkeypatch):
    attrs, emb = text_files
    options = {f'model.algorithm.{k[len("model."):]}': v
               for k, v in TINY.items()}
    options.update({'model.in_channels': 64,
                    'model.text_tower': dict(_delete_=True,
                                             type='PrecomputedTextTower',
                                             path=emb)})
    for level in LEVELS:
        options.update({f'model.heads.{level}.attributes': attrs,
                        f'model.heads.{level}.bridge_hidden': 16,
                        f'model.heads.{level}.num_outputs': 8})
    cfg = tiny_config(SIMCLR_HLSS, srh_root, tmp_path, options)
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.val_loop, EmbeddingValLoop)
    assert isinstance(runner.model, HLSSAuxWrapper)
    assert runner.val_loop.predicts

    calls = {'run_iter': 0, 'predict': 0}
    run_iter, predict = ValLoop.run_iter, HLSSAuxWrapper.predict

    def spy_run_iter(self, idx, data_batch):
        calls['run_iter'] += 1
        return run_iter(self, idx, data_batch)

    def spy_predict(self, inputs, data_samples=None):
        calls['predict'] += 1
        return predict(self, inputs, data_samples)

    def no_embedding(*args, **kwargs):
        raise AssertionError('the embedding path ran for a predicting model')

    monkeypatch.setattr(ValLoop, 'run_iter', spy_run_iter)
    monkeypatch.setattr(HLSSAuxWrapper, 'predict', spy_predict)
    monkeypatch.setattr(embedding_step, 'embed_batch', no_embedding)
    seen = record_processed(runner.val_loop.evaluator)
    runner.train()  # one epoch, validated at its end
    batches = len(runner.val_loop.dataloader)
    assert calls == {'run_iter': batches, 'predict': batches} and batches
    val = logged_validations(runner)
    assert len(val) == 1 and 0 <= val[0]['patient/acc'] <= 100
    # what the wrapper predicts: its own pooled backbone features
    batch, feats = seen[0]
    with torch.no_grad():
        expected = runner.model.eval().backbone(normalised(
            cfg.model.algorithm.data_preprocessor, batch['inputs']))
    torch.testing.assert_close(feats, expected[-1].mean(dim=(2, 3)),
                               rtol=1e-5, atol=1e-5)


def test_test_tool_accepts_a_baseline_checkpoint(srh_root, tmp_path):
    spec = importlib.util.spec_from_file_location(
        'hlss_tools_test', osp.join(REPO, 'tools', 'test.py'))
    test_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(test_tool)
    cfg = tiny_config(SIMCLR, srh_root, tmp_path)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = str(tmp_path / 'simclr.pth')
    torch.save({'meta': {}, 'state_dict': model.state_dict()}, ckpt)
    dump = str(tmp_path / 'emb.npz')
    options = [f'{k}={v}' for k, v in TINY.items()] + [
        f'test_evaluator.k={K}', 'test_dataloader.dataset.pipeline.2.size=64',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False',
        f'experiment_name=embedding_loops_tool_{time.time_ns()}']
    nested = test_tool.main([SIMCLR, ckpt, '--work-dir', str(tmp_path / 'w'),
                             '--data-root', srh_root, '--tsne-max', '0',
                             '--dump-embeddings', dump,
                             '--cfg-options', *options])
    assert list(nested) == list(LEVELS)
    # the dumped embeddings are BackboneEmbedder's for the checkpoint
    data = np.load(dump)
    loader = Runner.build_dataloader(cfg.test_dataloader, seed=0)
    reference = embedder_feats(cfg, ckpt, loader)
    assert sorted(data['knn_id'].tolist()) == sorted(reference)
    torch.testing.assert_close(
        torch.from_numpy(data['embeddings']),
        torch.stack([reference[int(i)] for i in data['knn_id']]),
        rtol=0, atol=1e-6)


@pytest.mark.parametrize('loop', [EmbeddingValLoop, EmbeddingTestLoop])
def test_model_without_predict_or_backbone_is_refused(loop):
    class LossOnly(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Linear(2, 2)

    runner = SimpleNamespace(model=LossOnly())
    match = (rf'{loop.__name__}: the model LossOnly has neither a '
             r'predict\(\).*BackboneEmbedder')
    with pytest.raises(ValueError, match=match):
        loop(runner, dataloader=None, evaluator=None)


def test_pooled_backbone_feats_shapes():
    torch.manual_seed(0)
    x = torch.rand(3, 5, 4, 4)
    stages = (torch.rand(3, 2, 8, 8), x)
    feats = embedding_step.pooled_backbone_feats(lambda _: stages, None)
    torch.testing.assert_close(feats, x.mean(dim=(2, 3)))
    pooled = torch.rand(3, 7)  # a backbone that pools itself: kept
    assert embedding_step.pooled_backbone_feats(
        lambda _: pooled, None) is pooled
    with pytest.raises(ValueError, match=r'\(3, 6, 7\).*cls_token'):
        embedding_step.pooled_backbone_feats(
            lambda _: (torch.rand(3, 6, 7), ), None)
