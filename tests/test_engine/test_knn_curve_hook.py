"""KNNCurveHook with a stand-in runner: the curve lines it writes (epoch 0,
loss means, evaluation every `interval` epochs and at the last), embeddings
identical to BackboneEmbedder's test path, untouched random streams and
model mode, and argument errors."""
import copy
import json
import os.path as osp
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS, MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.engine.hooks import KNNCurveHook, read_curve
from hlss_plugin.evaluation.functional import embedding_diagnostics
from hlss_plugin.synthetic import make_synthetic_srh
from hlss_plugin.benchmark.overrides import set_crop_size
from hlss_plugin.utils.config import set_data_root

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
EVAL_BASE = osp.join(REPO, 'configs', 'mmpretrain', '_base_', 'datasets',
                     'opensrh_knn_eval.py')
PREPROCESSOR = dict(type='SelfSupDataPreprocessor',
                    mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                    to_rgb=False)


@pytest.fixture(scope='module')
def knn_cfg(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('curve') / 'srh')
    make_synthetic_srh(root, patients_per_class=2, slides=2, patches=2,
                       size=64, seed=0)
    cfg = Config.fromfile(EVAL_BASE)
    set_data_root(cfg, root)
    set_crop_size(cfg, 32)
    loader = cfg.test_dataloader.to_dict()
    loader.update(num_workers=0, persistent_workers=False, batch_size=16)
    return loader, dict(type='HierarchicalKNNMetric', k=5)


def make_model(seed=0):
    init_default_scope('mmpretrain')
    torch.manual_seed(seed)
    return MODELS.build(dict(
        type='BackboneEmbedder', backbone=dict(type='ResNet', depth=18),
        data_preprocessor=PREPROCESSOR))


def fake_runner(model, work_dir, max_epochs=3):
    return SimpleNamespace(model=model, work_dir=str(work_dir), epoch=0,
                           iter=0, max_epochs=max_epochs, seed=0)


def test_curve_lines_and_loss_means(knn_cfg, tmp_path):
    loader, metric = knn_cfg
    hook = HOOKS.build(dict(type='KNNCurveHook', interval=2,
                            dataloader=loader, evaluator=metric))
    model = make_model()
    model.train()
    runner = fake_runner(model, tmp_path)
    hook.before_train(runner)
    assert model.training and model.backbone.training  # mode restored
    epoch_losses = {0: [2.0, 4.0], 1: [1.0, 2.0, 6.0], 2: [0.5]}
    for epoch, values in epoch_losses.items():
        runner.epoch = epoch
        for i, value in enumerate(values):
            hook.after_train_iter(runner, i, outputs=dict(
                loss=torch.tensor(value), loss_patch_hvc=value / 2,
                acc=torch.tensor(0.5), per_sample=torch.ones(3)))
            runner.iter += 1
        hook.after_train_epoch(runner)
    records = read_curve(osp.join(str(tmp_path), 'curve.jsonl'))
    assert hook.path == osp.join(str(tmp_path), 'curve.jsonl')
    assert [r['epoch'] for r in records] == [0, 1, 2, 3]
    assert [r['iter'] for r in records] == [0, 2, 5, 6]
    # evaluated at 0 (start), 2 (interval) and 3 (last epoch), not at 1
    assert ['knn' in r for r in records] == [True, False, True, True]
    assert 'losses' not in records[0]
    for record, values in zip(records[1:], epoch_losses.values()):
        mean = sum(values) / len(values)
        assert record['losses'] == pytest.approx(
            dict(loss=mean, loss_patch_hvc=mean / 2))
    for record in (records[0], records[2], records[3]):
        assert set(record['knn']) == {'patch', 'slide', 'patient'}
        for values in record['knn'].values():
            assert set(values) == {'acc', 'top2', 'top3', 'mca', 'map'}
            assert all(0.0 <= v <= 1.0 for v in values.values())
        assert record['diagnostics']['samples'] == len(
            Runner.build_dataloader(copy.deepcopy(loader)).dataset)
        assert record['diagnostics']['dim'] == 512
    assert hook.eval_seconds == pytest.approx(
        sum(r.get('eval_s', 0.0) for r in records))
    # a fresh run truncates the file
    runner.epoch = 0
    hook.before_train(runner)
    assert len(read_curve(hook.path)) == 1


def test_matches_backbone_embedder_test_path(knn_cfg, tmp_path):
    """The hook scores exactly what tools/benchmarks/benchmark.py's final evaluation
    (BackboneEmbedder.test_step) scores, with a given preprocessor."""
    loader_cfg, metric = knn_cfg
    model = make_model(seed=3)
    # the model trains with another preprocessor; evaluation uses the given
    model.data_preprocessor = MODELS.build(dict(
        type='SelfSupDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1]))
    hook = KNNCurveHook(loader_cfg, metric, data_preprocessor=PREPROCESSOR)
    hook.before_train(fake_runner(model, tmp_path))
    record = read_curve(hook.path)[0]

    reference = make_model(seed=3)
    reference.eval()
    loader = Runner.build_dataloader(copy.deepcopy(loader_cfg))
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = loader.dataset.metainfo
    with torch.no_grad():
        for batch in loader:
            evaluator.process(reference.test_step(batch), batch)
    metrics = evaluator.evaluate(len(loader.dataset))
    for key, value in metrics.items():
        level, name = key.split('/')
        assert record['knn'][level][name] == pytest.approx(value / 100)
    feats = evaluator.metrics[0].last_results['feats']
    assert record['diagnostics'] == pytest.approx(
        embedding_diagnostics(feats))


def test_random_streams_untouched(knn_cfg, tmp_path):
    loader, metric = knn_cfg
    model = make_model()

    def draws():
        return (torch.rand(4).tolist(), float(np.random.rand()),
                random.random())

    def seed_all():
        torch.manual_seed(11)
        np.random.seed(11)
        random.seed(11)

    seed_all()
    expected = draws()
    seed_all()
    hook = KNNCurveHook(loader, metric)
    hook.before_train(fake_runner(model, tmp_path))
    assert 'knn' in read_curve(hook.path)[0]
    assert draws() == expected


def test_no_eval_at_start_and_resume_appends(knn_cfg, tmp_path):
    loader, metric = knn_cfg
    path = tmp_path / 'curve.jsonl'
    path.write_text(json.dumps(dict(epoch=1)) + '\n')
    hook = KNNCurveHook(loader, metric, interval=5, eval_at_start=False)
    runner = fake_runner(make_model(), tmp_path, max_epochs=10)
    runner.epoch = 1  # resumed
    hook.before_train(runner)
    hook.after_train_epoch(runner)
    records = read_curve(str(path))
    assert [r['epoch'] for r in records] == [1, 2]
    assert 'knn' not in records[1] and records[1]['losses'] == {}


@pytest.mark.parametrize('kwargs, match', [
    (dict(interval=0), 'interval must be an int >= 1'),
    (dict(interval=True), 'interval must be an int >= 1'),
    (dict(dataloader=dict(batch_size=2)), 'dataloader must be'),
    (dict(evaluator='knn'), 'evaluator must be'),
    (dict(data_preprocessor='SelfSup'), 'data_preprocessor must be'),
    (dict(out_file='/abs/curve.jsonl'), 'out_file must be'),
])
def test_argument_errors(kwargs, match):
    args = dict(dataloader=dict(dataset=dict(type='X')),
                evaluator=dict(type='HierarchicalKNNMetric'))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        KNNCurveHook(**args)


def test_model_without_backbone(knn_cfg, tmp_path):
    loader, metric = knn_cfg
    hook = KNNCurveHook(loader, metric)
    with pytest.raises(ValueError, match='has no `backbone`'):
        hook.before_train(fake_runner(torch.nn.Linear(2, 2), tmp_path))


def test_read_curve_names_bad_line(tmp_path):
    path = tmp_path / 'curve.jsonl'
    path.write_text('{"epoch": 0}\n\nnot json\n')
    with pytest.raises(ValueError, match=r'curve.jsonl:3: not a JSON line'):
        read_curve(str(path))
