"""tools/test.py end to end on a tiny synthetic OpenSRH set, and its
checkpoint / config checks; tools/benchmarks/benchmark_knn.py --quick's output."""
import csv
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.apis import prepare_test_config
from hlss_plugin.evaluation.functional import (hierarchical_metrics,
                                               knn_scores)
from hlss_plugin.synthetic import make_synthetic_srh

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'test.py')
TINY = osp.join(REPO, 'configs', 'mmpretrain', 'hlss_srh_tiny.py')
EVAL_BASE = osp.join(REPO, 'configs', 'mmpretrain', '_base_', 'datasets',
                     'opensrh_knn_eval.py')
K = 10
OPTIONS = [f'test_evaluator.k={K}',
           'test_dataloader.dataset.pipeline.2.size=96',
           'test_dataloader.num_workers=0']
LEVELS = ('patch', 'slide', 'patient')
KEYS = ['acc', 'top2', 'top3', 'mca', 'map']


def _load_tool():
    spec = importlib.util.spec_from_file_location('hlss_tools_test', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


test_tool = _load_tool()


def _env():
    env = dict(os.environ)
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    env['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    return env


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Synthetic data, the tiny config with kNN test settings, and a
    checkpoint of a freshly built model in mmengine's format."""
    tmp = tmp_path_factory.mktemp('test_tool')
    root = str(tmp / 'srh')
    make_synthetic_srh(root, patients_per_class=2, slides=2, patches=3,
                       size=96)
    config = TINY
    if Config.fromfile(TINY).get('test_dataloader', None) is None:
        config = str(tmp / 'hlss_srh_tiny_knn.py')
        with open(config, 'w') as f:
            f.write(f'_base_ = [{TINY!r}, {EVAL_BASE!r}]\n')
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model)
    ckpt = str(tmp / 'epoch_0.pth')
    torch.save({'meta': {'epoch': 0}, 'state_dict': model.state_dict()},
               ckpt)
    return dict(root=root, config=config, ckpt=ckpt, model=model, tmp=tmp)


def test_end_to_end(setup):
    work = str(setup['tmp'] / 'work')
    dump = str(setup['tmp'] / 'emb' / 'embeddings.npz')
    proc = subprocess.run(
        [sys.executable, TOOL, setup['config'], setup['ckpt'], '--work-dir',
         work, '--data-root', setup['root'], '--dump-embeddings', dump,
         '--cfg-options', *OPTIONS],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    with open(osp.join(work, 'metrics.json')) as f:
        metrics = json.load(f)
    assert list(metrics) == list(LEVELS)
    for level in LEVELS:
        assert list(metrics[level]) == KEYS
        assert all(0 <= v <= 100 for v in metrics[level].values())
        assert metrics[level]['acc'] <= metrics[level]['top2'] <= \
            metrics[level]['top3']
    with open(osp.join(work, 'metrics.csv')) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ['level'] + KEYS
    assert [r[0] for r in rows[1:]] == list(LEVELS)
    for name in ('confusion_patch', 'confusion_slide', 'confusion_patient',
                 'tsne'):
        with open(osp.join(work, f'{name}.png'), 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n', name

    data = np.load(dump, allow_pickle=False)  # nothing pickled
    n = len(data['embeddings'])
    assert data['embeddings'].shape == (n, 512)
    assert data['embeddings'].dtype == np.float32
    for key in ('class_names', 'patient', 'slide', 'path', 'split', 'role'):
        assert data[key].dtype.kind == 'U', key
    assert list(data['class_names']) == ['hgg', 'lgg', 'mening', 'metast',
                                         'normal', 'pitui', 'schwan']
    split = json.load(open(osp.join(setup['root'], 'meta',
                                    'train_val_split.json')))
    meta = json.load(open(osp.join(setup['root'], 'meta', 'opensrh.json')))
    assert n == 7 * 2 * 2 * 3  # every patch once, no DDP/batch padding
    assert sorted(data['knn_id'].tolist()) == list(range(n))
    for i in range(n):
        patient = str(data['patient'][i])
        assert patient in split[str(data['split'][i])]
        assert data['role'][i] == ('bank' if data['split'][i] == 'train'
                                   else 'query')
        assert data['class_names'][data['labels'][i]] == \
            meta[patient]['class']
        assert osp.isfile(str(data['path'][i]))
        assert str(data['slide'][i]).startswith(patient + '/')

    # the metrics are the kNN metrics of the dumped embeddings
    t = torch.from_numpy
    bank, query = data['role'] == 'bank', data['role'] == 'query'
    scores = knn_scores(t(data['embeddings'][query]),
                        t(data['embeddings'][bank]),
                        t(data['labels'][bank]), 7, k=K)
    ref = hierarchical_metrics(scores, t(data['labels'][query]),
                               t(data['slide_idx'][query]),
                               t(data['patient_idx'][query]), 7)
    for level in LEVELS:
        for key in KEYS:
            assert metrics[level][key] == pytest.approx(ref[level][key],
                                                        abs=1e-6)


def test_mismatched_checkpoint_is_refused(setup, tmp_path):
    state = dict(setup['model'].state_dict())
    state.pop('backbone.conv1.weight')
    state['extra.weight'] = torch.zeros(1)
    state['neck.weight'] = torch.zeros(2)  # not in the model either
    key = 'backbone.layer1.0.conv1.weight'
    state[key] = torch.zeros(3, 3)
    bad = str(tmp_path / 'bad.pth')
    torch.save({'state_dict': state}, bad)
    with pytest.raises(test_tool.ToolError) as err:
        test_tool.check_checkpoint(setup['model'], bad)
    msg = str(err.value)
    assert 'missing keys: backbone.conv1.weight' in msg
    assert 'unexpected keys: extra.weight, neck.weight' in msg
    assert f'{key} (checkpoint (3, 3), model (64, 64, 3, 3))' in msg
    assert 'Pass the config the checkpoint was trained with' in msg
    assert (f'use the config saved in the work dir ({osp.dirname(bad)}/'
            f'<config name>.py, next to the checkpoint)') in msg
    test_tool.check_checkpoint(setup['model'], setup['ckpt'])  # fine
    module_prefixed = str(tmp_path / 'ddp.pth')  # DDP-saved names load
    torch.save({'state_dict': {f'module.{k}': v for k, v in
                               setup['model'].state_dict().items()}},
               module_prefixed)
    test_tool.check_checkpoint(setup['model'], module_prefixed)

    # a module's _extra_state (the augmentation step of the fast config's
    # preprocessor) is optional: checkpoints from before it load
    from hlss_plugin.models.data_preprocessors import \
        SRHBatchAugmentPreprocessor
    with_extra = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with_extra.data_preprocessor = SRHBatchAugmentPreprocessor(seed=1)
    full = with_extra.state_dict()
    assert 'data_preprocessor._extra_state' in full
    legacy = str(tmp_path / 'legacy.pth')
    torch.save({'state_dict': {k: v for k, v in full.items()
                               if not k.endswith('_extra_state')}}, legacy)
    test_tool.check_checkpoint(with_extra, legacy)
    with_extra.load_state_dict(torch.load(legacy)['state_dict'])
    torch.save({'state_dict': {k: v for k, v in full.items()
                               if k != '0.weight'}}, legacy)
    with pytest.raises(test_tool.ToolError, match='missing keys: 0.weight'):
        test_tool.check_checkpoint(with_extra, legacy)

    # through the command line: the run stops before testing
    with pytest.raises(SystemExit) as exc:
        test_tool.main([setup['config'], bad, '--work-dir',
                        str(tmp_path / 'w'), '--data-root', setup['root'],
                        '--cfg-options', *OPTIONS])
    assert 'missing keys: backbone.conv1.weight' in str(exc.value)
    assert not osp.exists(tmp_path / 'w' / 'metrics.json')


def test_dist_test_sh_two_gloo_processes_match_one(setup, tmp_path):
    """tools/dist_test.sh CONFIG CHECKPOINT 2: two gloo processes report the
    metrics of a single-process run (every patch scored once)."""
    import socket
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    common = ['--data-root', setup['root'], '--tsne-max', '0',
              '--cfg-options', *OPTIONS]
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', 'dist_test.sh'), setup['config'],
         setup['ckpt'], '2', '--work-dir', str(tmp_path / 'two'), *common],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(_env(), PORT=str(port), OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    with open(tmp_path / 'two' / 'metrics.json') as f:
        two = json.load(f)
    one = test_tool.main([setup['config'], setup['ckpt'], '--work-dir',
                          str(tmp_path / 'one'), *common])
    for level in LEVELS:
        for key in KEYS:
            assert two[level][key] == pytest.approx(one[level][key],
                                                    abs=1e-4), (level, key)


def test_config_without_test_settings_is_refused(setup, tmp_path):
    args = test_tool.parse_args([TINY, setup['ckpt']])
    cfg = Config.fromfile(TINY)
    cfg.test_dataloader = None
    with pytest.raises(test_tool.ToolError, match='has no test_dataloader.*'
                       'opensrh_knn_eval.py'):
        prepare_test_config(cfg, args)
    args = test_tool.parse_args([setup['config'], str(tmp_path / 'no.pth')])
    with pytest.raises(test_tool.ToolError, match='not found'):
        prepare_test_config(Config.fromfile(setup['config']), args)


def test_benchmark_quick_prints_one_json_line():
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'benchmarks', 'benchmark_knn.py'),
         '--quick', '--queries', '300', '--bank', '2000', '--dim', '256'],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result['queries'] == 2000 and result['bank'] == 10000  # --quick
    assert result['scores_finite'] and result['seconds'] > 0
    assert result['peak_extra_mib'] is None or \
        result['peak_extra_mib'] <= result['budget_mib']
