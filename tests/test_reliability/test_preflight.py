"""PreflightHook and the rules it checks before the first iteration (issue
13): nothing that validation or testing needs may fail after the epochs are
spent.

One small CPU test per case: the evaluation dataset (built, non-empty, bank
and query kept), ``k`` against the bank size (one clip-with-warning rule
naming the key in use), patch size against every crop, patient labels (the
dataset layer refuses them when the runner builds the loop), and one
bad-patch policy per split (the kNN bank follows the training dataset).
"""
import glob
import os.path as osp
import re
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS

import hlss_plugin  # noqa: F401  registers datasets, transforms, hooks
from hlss_plugin.datasets import OpenSRHDataset
from hlss_plugin.engine.hooks import PreflightError, PreflightHook
from hlss_plugin.engine.hooks.preflight_hook import view_sizes
from hlss_plugin.errors import BadPatchError
from hlss_plugin.evaluation import HierarchicalKNNMetric
from tests.test_reliability.test_fault_injection import write_csv
from tests.test_tools.test_train import CONFIG, _env

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
KNN_KEYS = ['patient', 'slide', 'patient_idx', 'slide_idx', 'knn_role',
            'knn_id']
CROP_KEY = 'val_dataloader.dataset.pipeline.2.size'
EVAL_BASE = osp.join(REPO, 'configs', 'mmpretrain', '_base_', 'datasets',
                     'opensrh_knn_eval.py')


@pytest.fixture(autouse=True)
def _scope():
    init_default_scope('mmpretrain')


def knn_pipeline(crop=32):
    return [dict(type='LoadSRHPatch'), dict(type='SRHThirdChannel'),
            dict(type='CenterCropTensor', size=crop),
            dict(type='PackInputs', algorithm_keys=KNN_KEYS)]


def knn_stage(root, stage='val', crop=32, k=2, bank=None, query=None,
              **dataset_kwargs):
    """``(cfg, loop, metric)`` of a val/test stage as the runner builds it:
    the tiny_srh set's train split is the bank (4 patches), val the
    queries (4 patches), 32 px patches."""
    dataset_cfg = dict(
        type='HierarchicalKNNDataset',
        bank=dict(dict(type='OpenSRHDataset', data_root=root,
                       split='train'), **(bank or {})),
        query=dict(dict(type='OpenSRHDataset', data_root=root, split='val'),
                   **(query or {})),
        pipeline=knn_pipeline(crop), **dataset_kwargs)
    cfg = Config({f'{stage}_dataloader': dict(dataset=dataset_cfg),
                  f'{stage}_evaluator': dict(type='HierarchicalKNNMetric',
                                             k=k)})
    metric = HierarchicalKNNMetric(k=k)
    loop = SimpleNamespace(
        dataloader=SimpleNamespace(dataset=DATASETS.build(dataset_cfg)),
        evaluator=SimpleNamespace(metrics=[metric]))
    return cfg, loop, metric


def train_runner(root, cfg, loop=None, on_bad_patch='skip', loader=None):
    """A runner as ``before_train`` sees it (datasets built)."""
    dataset = OpenSRHDataset(root, split='train', on_bad_patch=on_bad_patch,
                             pipeline=[loader or dict(type='LoadSRHPatch')])
    return SimpleNamespace(cfg=cfg, val_loop=loop,
                           train_dataloader=SimpleNamespace(dataset=dataset))


def corrupt(path):
    with open(path, 'wb') as f:
        f.write(b'II*\x00 truncated')


# ------------------------------------------------- evaluation dataset built
def test_good_setup_passes_and_metrics_learn_their_key(tiny_srh):
    hook = PreflightHook()
    cfg, loop, metric = knn_stage(tiny_srh)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert hook.check_eval(cfg, 'val', loop) == []
    assert metric.evaluator_key == 'val_evaluator'
    cfg, loop, metric = knn_stage(tiny_srh, stage='test')
    assert hook.check_eval(cfg, 'test', loop) == []
    assert metric.evaluator_key == 'test_evaluator'
    cfg.test_evaluator = [dict(type='Other'), cfg.test_evaluator]
    loop.evaluator.metrics = [object(), metric]
    hook.check_eval(cfg, 'test', loop)
    assert metric.evaluator_key == 'test_evaluator.1'


@pytest.mark.parametrize('indices, counts, missing', [
    (None, dict(bank=4, query=4), None),
    (4, dict(bank=4, query=0), 'query'),
    (-3, dict(bank=0, query=3), 'bank'),
    ([0, 5, 6], dict(bank=1, query=2), None),
])
def test_knn_dataset_must_keep_bank_and_query(tiny_srh, indices, counts,
                                              missing):
    """An ``indices`` subset that drops a whole role would only fail in the
    metric, after training."""
    cfg, loop, _ = knn_stage(tiny_srh, indices=indices, k=1)
    assert loop.dataloader.dataset.role_counts == counts
    errors = PreflightHook().check_eval(cfg, 'val', loop)
    if missing is None:
        assert errors == []
    else:
        (msg, ) = errors
        assert msg.startswith('val_dataloader.dataset (HierarchicalKNNDataset'
                              f') keeps no {missing} item after its indices')
        assert 'Drop val_dataloader.dataset.indices' in msg


# --------------------------------------------------------- k vs bank size
@pytest.mark.parametrize('stage', ['val', 'test'])
def test_k_larger_than_bank_warns_before_training(tiny_srh, stage):
    cfg, loop, metric = knn_stage(tiny_srh, stage=stage, k=10)
    with pytest.warns(UserWarning) as record:
        assert PreflightHook().check_eval(cfg, stage, loop) == []
    msg = str(record[0].message)
    assert msg.startswith(f'HierarchicalKNNMetric: {stage}_evaluator.k=10 is '
                          f'larger than the kNN bank (4 patches); using k=4')
    assert f'--cfg-options {stage}_evaluator.k=4' in msg
    assert metric.effective_k(4, warn=False) == 4


# --------------------------------------------------- patch size vs crops
def test_eval_patch_smaller_than_center_crop_is_an_error(tiny_srh):
    cfg, loop, _ = knn_stage(tiny_srh, crop=48)
    errors = PreflightHook().check_eval(cfg, 'val', loop)
    assert len(errors) == 2  # one patch of each split
    for role, split, msg in zip(('bank', 'query'), ('train', 'val'),
                                errors):
        assert msg.startswith(f"val {role} (val_dataloader.dataset.{role}, "
                              f"split '{split}') patch {tiny_srh}/studies/")
        assert ('.tif is 32x32 px, smaller than the 48x48 px view set by '
                f'{CROP_KEY} (CenterCropTensor)') in msg
        assert f'Set {CROP_KEY} to at most 32' in msg
        assert f'--cfg-options {CROP_KEY}=32' in msg


def _train_cfg(where, crop):
    aug = dict(type='SRHAugment', crop_size=crop)
    if where == 'pipeline':
        return Config(dict(train_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadSRHPatch'),
            dict(type='MultiView', num_views=2, transforms=[[aug]])]))))
    return Config(dict(
        train_dataloader=dict(dataset=dict(pipeline=[
            dict(type='LoadSRHPatchRaw')])),
        model=dict(data_preprocessor=dict(augment=aug))))


@pytest.mark.parametrize('where, key', [
    ('pipeline', 'train_dataloader.dataset.pipeline.1.transforms.0.0.'
                 'crop_size'),
    ('preprocessor', 'model.data_preprocessor.augment.crop_size'),
])
def test_train_patch_smaller_than_view_is_an_error(tiny_srh, where, key):
    """Training would upsample a 32 px patch to a 48 px view silently; the
    view may be set in the pipeline or on the device (the fast config's
    SRHBatchAugmentPreprocessor)."""
    cfg = _train_cfg(where, 48)
    assert view_sizes(cfg, ['train_dataloader', 'model']) == [
        (key, (48, 48), 'SRHAugment')]
    hook = PreflightHook()
    with pytest.raises(PreflightError) as err:
        hook.before_train(train_runner(tiny_srh, cfg))
    msg = str(err.value)
    assert msg.startswith("PreflightHook: training (train_dataloader.dataset"
                          ", split 'train') patch ")
    assert f'is 32x32 px, smaller than the 48x48 px view set by {key}' in msg
    assert 'training would silently upsample it' in msg
    # views no larger than the patches: fine
    hook.before_train(train_runner(tiny_srh, _train_cfg(where, 32)))


# ---------------------------------------------------- patient label check
def test_patient_with_two_labels_fails_when_the_loop_is_built(tmp_path):
    """The runner builds the val/test dataset before any hook runs; the
    dataset layer refuses a patient with two labels there."""
    path = write_csv(tmp_path, 'path,patient,slide,label,split\n'
                     'a/1.png,pA,s1,tumour,train\n'
                     'a/2.png,pA,s2,normal,train\n'
                     'b/1.png,pB,s1,normal,val\n')
    with pytest.raises(ValueError, match=rf"manifest {path}: patient 'pA' "
                       r'has more than one label'):
        DATASETS.build(dict(
            type='HierarchicalKNNDataset',
            bank=dict(type='HierarchicalManifestDataset', manifest=path,
                      split='train'),
            query=dict(type='HierarchicalManifestDataset', manifest=path,
                       split='val')))


# ------------------------------------------------ one bad-patch policy
def _bank_patch(dataset):
    idx = 1  # not the first patch, which the pre-flight reads
    return idx, dataset.get_data_info(idx)['img_path']


def test_knn_bank_skip_leaves_the_bad_patch_out(tiny_srh_copy):
    """Under 'skip' (the training policy of the train split) a corrupt bank
    patch is left out of the kNN evaluation: its slot is served by another
    item with that item's own knn_id, which the metric counts once."""
    _, loop, metric = knn_stage(tiny_srh_copy, bank=dict(on_bad_patch='skip'))
    dataset = loop.dataloader.dataset
    idx, path = _bank_patch(dataset)
    corrupt(path)
    sample = dataset[idx]['data_samples']
    assert sample.knn_id != idx and dataset.num_skipped == 1
    metric.dataset_meta = dataset.metainfo
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        out = sample.to_dict()
        out['feats'] = dataset[i]['inputs'].float().mean((1, 2))
        metric.process(None, [out])
    metric.evaluate(len(dataset))
    ids = metric.last_results['ids'].tolist()
    assert ids == [i for i in range(len(dataset)) if i != idx]
    assert metric.last_results['roles'].count('bank') == 3


def test_knn_raise_names_the_file_role_and_key(tiny_srh_copy):
    _, loop, _ = knn_stage(tiny_srh_copy)
    dataset = loop.dataloader.dataset
    idx, path = _bank_patch(dataset)
    corrupt(path)
    with pytest.raises(BadPatchError) as err:
        dataset[idx]
    msg = str(err.value)
    assert msg.startswith(f'{path}: ')
    assert "kNN bank patch, split 'train'" in msg
    assert ('set val_dataloader.dataset.bank.on_bad_patch / '
            'test_dataloader.dataset.bank.on_bad_patch to "skip"') in msg


def test_bank_policy_must_match_the_training_split(tiny_srh):
    cfg, loop, _ = knn_stage(tiny_srh)  # bank: 'raise'
    runner = train_runner(tiny_srh, cfg, loop, on_bad_patch='skip')
    with pytest.raises(PreflightError) as err:
        PreflightHook().before_train(runner)
    msg = str(err.value)
    assert ("train_dataloader.dataset reads split 'train' of "
            f"{tiny_srh} with on_bad_patch='skip', but "
            "val_dataloader.dataset.bank reads the same split with "
            "on_bad_patch='raise'") in msg
    assert ("--cfg-options val_dataloader.dataset.bank.on_bad_patch=skip"
            in msg)
    PreflightHook(enabled=False).before_train(runner)  # the off switch
    # any hierarchical evaluation dataset (e.g. a linear probe's)
    plain = OpenSRHDataset(tiny_srh, split='train',
                           pipeline=[dict(type='LoadSRHPatch')])
    loop = SimpleNamespace(dataloader=SimpleNamespace(dataset=plain),
                           evaluator=SimpleNamespace(metrics=[]))
    with pytest.raises(PreflightError, match=r'but val_dataloader\.dataset '
                       r"reads the same split with on_bad_patch='raise'"):
        PreflightHook().before_train(train_runner(tiny_srh, Config(), loop))
    # the same policy, or another split, is fine
    cfg, loop, _ = knn_stage(tiny_srh, bank=dict(on_bad_patch='skip'))
    PreflightHook().before_train(train_runner(tiny_srh, cfg, loop))
    cfg, loop, _ = knn_stage(tiny_srh)
    PreflightHook().before_train(train_runner(tiny_srh, cfg, loop,
                                              on_bad_patch='raise'))


def test_configs_read_each_split_with_one_policy():
    """Every shipped config: a kNN bank / query reading the training split
    has the training dataset's on_bad_patch (what the pre-flight checks on
    the built datasets, here on the config)."""
    checked = 0
    for path in sorted(glob.glob(osp.join(REPO, 'configs', 'mmpretrain',
                                          '*.py'))):
        cfg = Config.fromfile(path)
        train = cfg.get('train_dataloader', {}).get('dataset', {})
        for key in ('val_dataloader', 'test_dataloader'):
            evl = (cfg.get(key, None) or {}).get('dataset', {})
            if evl.get('type') != 'HierarchicalKNNDataset':
                continue
            for role in ('bank', 'query'):
                sub = evl[role]
                if (sub['type'], sub.get('split')) == (train.get('type'),
                                                       train.get('split')):
                    checked += 1
                    assert sub.get('on_bad_patch', 'raise') == train.get(
                        'on_bad_patch', 'raise'), (path, key, role)
    assert checked >= 4


def test_corrupt_first_patch_under_raise_stops_before_training(tiny_srh_copy):
    cfg, loop, _ = knn_stage(tiny_srh_copy)
    dataset = loop.dataloader.dataset
    query_first = dataset.role_counts['bank']
    path = dataset.get_data_info(query_first)['img_path']
    corrupt(path)
    with pytest.raises(PreflightError, match=r'reading a patch before '
                       rf'training failed: {re.escape(path)}: .*'
                       r"on_bad_patch='raise'"):
        PreflightHook().check_eval(cfg, 'val', loop)
    # under 'skip' the next patch is read instead
    cfg, loop, _ = knn_stage(tiny_srh_copy, query=dict(on_bad_patch='skip'))
    assert PreflightHook().check_eval(cfg, 'val', loop) == []


# ----------------------------------------- wired into tools/train.py
def test_train_tool_stops_before_the_first_iteration(train_srh, tmp_path):
    """The hook comes with default_runtime.py's default_hooks (so configs
    replacing custom_hooks keep it) and tools/train.py prints its error as
    one line: no iteration runs, no checkpoint is written."""
    config = tmp_path / 'cfg.py'
    config.write_text(
        f'_base_ = [{CONFIG!r}, {EVAL_BASE!r}]\n'
        "val_cfg = dict(type='EmbeddingValLoop')\n"
        'train_cfg = dict(val_interval=1)\n'
        'val_dataloader = dict(num_workers=0, persistent_workers=False)\n')
    work = tmp_path / 'w'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'train.py'), str(config),
         '--data-root', train_srh, '--work-dir', str(work)],
        cwd=REPO, capture_output=True, text=True, timeout=200, env=_env())
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tools/train.py: error: PreflightHook found 2 "
                           "problems: (1) val bank (val_dataloader.dataset."
                           "bank, split 'train') patch ")
    assert ('is 48x48 px, smaller than the 224x224 px view set by '
            f'{CROP_KEY} (CenterCropTensor)') in last
    assert 'Traceback' not in proc.stderr
    assert 'Epoch(train)' not in proc.stdout + proc.stderr
    assert not glob.glob(str(work / '*.pth'))
