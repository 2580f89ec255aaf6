"""tools/benchmark.py: an end-to-end run (random + SimCLR, 1 epoch,
ResNet-18, 32 px), its outputs, failure bookkeeping, errors, --dry-run, and
the backbone override on every benchmarkable config."""
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.models.backbones import ResNet
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.synthetic import make_synthetic_srh
from hlss_plugin.utils.benchmark_overrides import (set_backbone_depth,
                                                   set_crop_size,
                                                   set_patients_per_batch)
from hlss_plugin.utils.config import set_data_root, walk_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'benchmark.py')
LEVELS = ('patch', 'slide', 'patient')
P, SLIDES, PATCHES, VIEWS = 2, 2, 2, 2


def _load_tool():
    spec = importlib.util.spec_from_file_location('hlss_tools_benchmark',
                                                  TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


benchmark = _load_tool()


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('bench') / 'srh')
    make_synthetic_srh(path, patients_per_class=2, slides=2, patches=2,
                       size=128, seed=0)
    return path


def common_args(root, work_dir):
    return ['--data-root', root, '--budget', '1', '--work-dir', work_dir,
            '--backbone', 'resnet18', '--crop-size', '32',
            '--patients-per-batch', str(P), '--workers', '0']


def split_patches(root, split):
    """Patients and patches of a split, read from the files themselves."""
    with open(osp.join(root, 'meta', 'train_val_split.json')) as f:
        patients = json.load(f)[split]
    with open(osp.join(root, 'meta', 'opensrh.json')) as f:
        meta = json.load(f)
    patches = 0
    for patient in patients:
        for slide in meta[patient]['slides'].values():
            patches += sum(len(v) for v in slide.values()
                           if isinstance(v, list))
    return len(patients), patches


def table_rows(markdown):
    rows = [line for line in markdown.splitlines() if line.startswith('| ')]
    header = [c.strip() for c in rows[0].strip('|').split('|')]
    return [dict(zip(header, (c.strip() for c in row.strip('|').split('|'))))
            for row in rows[1:]]


def test_end_to_end(root, tmp_path):
    work = str(tmp_path / 'work')
    env = dict(os.environ)
    env['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    proc = subprocess.run(
        [sys.executable, TOOL, '--methods', 'random', 'simclr',
         *common_args(root, work)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for ext in ('md', 'json', 'png'):
        assert osp.getsize(osp.join(work, f'benchmark.{ext}')) > 0
    with open(osp.join(work, 'benchmark.json')) as f:
        report = json.load(f)
    with open(osp.join(work, 'benchmark.md')) as f:
        markdown = f.read()

    # budget: every train patient once per epoch, P per batch
    train_patients, train_patches = split_patches(root, 'train')
    _, val_patches = split_patches(root, 'val')
    iterations = train_patients // P
    images = iterations * P * SLIDES * PATCHES * VIEWS
    settings = report['settings']
    assert settings['images_seen'] == images > 0
    assert (settings['bank_patches'], settings['query_patches']) == (
        train_patches, val_patches)
    assert settings['k'] == min(200, train_patches) < 200
    assert 'clipped to the bank' in markdown

    entries = {e['method']: e for e in report['methods']}
    assert list(entries) == ['random', 'simclr']
    assert all(e['error'] is None for e in entries.values())
    assert entries['random']['images_seen'] == 0
    simclr = entries['simclr']
    assert simclr['iterations'] == iterations
    assert simclr['images_seen'] == images
    assert simclr['train_time_s'] > 0
    # the checkpoint holds a trained ResNet-18 under 'backbone.'
    state = torch.load(simclr['checkpoint'], weights_only=True)['state_dict']
    assert state['backbone.layer4.1.conv2.weight'].shape == (512, 512, 3, 3)
    assert 'backbone.layer4.2.conv1.weight' not in state

    rows = {r['method']: r for r in table_rows(markdown)}
    assert set(rows) == set(entries)
    for name, entry in entries.items():
        row = rows[name]
        assert row['images seen'] == str(entry['images_seen'])
        assert row['status'] == 'ok'
        assert float(row['train time (s)']) == pytest.approx(
            entry['train_time_s'], abs=0.051)
        for level in LEVELS:
            assert set(entry['metrics'][level]) == {'acc', 'top2', 'top3',
                                                    'mca', 'map'}
            for value in entry['metrics'][level].values():
                assert 0.0 <= value <= 1.0
            for key in ('acc', 'mca'):
                assert row[f'{level} {key}'] == \
                    f'{entry["metrics"][level][key]:.3f}'
    # accuracy over a handful of queries: a multiple of 1 / count
    for level, count in (('patch', val_patches),):
        for entry in entries.values():
            acc = entry['metrics'][level]['acc'] * count
            assert acc == pytest.approx(round(acc), abs=1e-4)
    machine = report['machine']
    assert machine['cpu_count'] == os.cpu_count()
    assert machine['torch'] == torch.__version__
    assert f'{machine["cpu_count"]} CPUs' in markdown
    assert '--methods random simclr' in report['command']
    assert report['command'] in markdown


def test_failed_method_is_recorded(root, tmp_path, monkeypatch, capsys):
    calls = []

    def broken(name, cfg, args):
        calls.append(name)
        return dict(error='training failed (exit 1): RuntimeError: boom',
                    wall_s=0.5, log='train.log')

    monkeypatch.setattr(benchmark, 'run_training', broken)
    work = str(tmp_path / 'work')
    status = benchmark.main(['--methods', 'simclr', 'random',
                             *common_args(root, work)])
    assert status == 1 and calls == ['simclr']
    with open(osp.join(work, 'benchmark.json')) as f:
        report = json.load(f)
    simclr, random = report['methods']
    assert 'RuntimeError: boom' in simclr['error']
    assert simclr['metrics'] is None and simclr['images_seen'] == 0
    assert random['error'] is None
    assert 0.0 <= random['metrics']['patient']['acc'] <= 1.0
    rows = {r['method']: r for r in table_rows(
        open(osp.join(work, 'benchmark.md')).read())}
    assert rows['simclr']['status'].startswith('failed: training failed')
    assert rows['simclr']['patch acc'] == '—'
    assert rows['random']['status'] == 'ok'
    assert osp.isfile(osp.join(work, 'benchmark.png'))
    assert 'failed: simclr' in capsys.readouterr().err


def test_unknown_or_missing_method(root, tmp_path, monkeypatch):
    work = str(tmp_path / 'work')
    with pytest.raises(SystemExit) as err:
        benchmark.main(['--methods', 'random', 'dino',
                        *common_args(root, work)])
    message = str(err.value)
    assert 'unknown method(s) dino' in message
    assert 'valid names: random, hlss, hidisc, simclr' in message
    monkeypatch.setitem(benchmark.METHOD_CONFIGS, 'simclr',
                        'no_such_config.py')
    with pytest.raises(SystemExit, match='no_such_config.py not found'):
        benchmark.main(['--methods', 'simclr', *common_args(root, work)])
    with pytest.raises(SystemExit, match='given twice: random'):
        benchmark.main(['--methods', 'random', 'random',
                        *common_args(root, work)])
    assert not osp.exists(work)


def test_dry_run_prints_overrides(root, tmp_path, capsys):
    work = str(tmp_path / 'work')
    status = benchmark.main(['--methods', 'random', 'simsiam', '--dry-run',
                             *common_args(root, work)])
    out = capsys.readouterr().out
    assert status == 0 and not osp.exists(work)
    train_patients, _ = split_patches(root, 'train')
    images = train_patients // P * P * SLIDES * PATCHES * VIEWS
    for line in ('[random] untrained backbone',
                 'model.backbone.depth: 50 -> 18',
                 'model.head.predictor.in_channels: 2048 -> 512',
                 'train_dataloader.batch_size: 128 -> 8',
                 'crop_size: None -> 32', 'train_cfg.max_epochs: 1000 -> 1',
                 f'= {images}'):
        assert line in out, line
    # the rescaled warm-up + cosine, iteration based
    iters = train_patients // P
    warmup = max(1, round(0.1 * iters))
    assert re.search(rf'CosineAnnealingLR\(begin={warmup}, end={iters}, '
                     rf'T_max={iters - warmup}, by_epoch=False\)', out)


@pytest.fixture(scope='module')
def batch(root):
    """One hierarchical batch of the shared pipeline at 32 px."""
    cfg = Config.fromfile(osp.join(benchmark.CONFIG_DIR,
                                   'simclr_resnet50_srh.py'))
    set_data_root(cfg, root)
    set_crop_size(cfg, 32)
    set_patients_per_batch(cfg, P)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return next(iter(loader))


@pytest.mark.parametrize('method', list(benchmark.METHOD_CONFIGS))
def test_backbone_override_builds_every_config(method, batch):
    path = osp.join(benchmark.CONFIG_DIR, benchmark.METHOD_CONFIGS[method])
    if not osp.isfile(path):
        pytest.skip(f'{osp.basename(path)} is not in this checkout')
    cfg = Config.fromfile(path)
    changes = set_backbone_depth(cfg, 18)
    assert any(k.endswith('.depth') for k in changes)
    left = [p for c, k, p in walk_config(cfg.model, 'model')
            if k in ('in_channels', 'out_channels') and c[k] == 2048]
    assert not left, left
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    resnets = [m for m in model.modules() if isinstance(m, ResNet)]
    assert resnets and all(m.depth == 18 for m in resnets)
    assert all(m.layer4[-1].conv2.out_channels == 512 for m in resnets)
    data = model.data_preprocessor(batch, True)
    with torch.no_grad():
        losses = model(**data, mode='loss')
    assert losses and all(torch.isfinite(v).all() for k, v in losses.items()
                          if k.startswith('loss'))
