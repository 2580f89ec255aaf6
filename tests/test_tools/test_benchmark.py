"""tools/benchmarks/benchmark.py: an end-to-end run (random + SimCLR, 1 epoch,
ResNet-18, 32 px, learning curves), its outputs, seeds, failure
bookkeeping, errors, presets and variants on the command line, --dry-run,
--make-data, and the backbone override on every benchmarkable config."""
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
import hlss_plugin.benchmark.benchmark_run as benchmark_run
from hlss_plugin.benchmark.benchmark_run import make_data
from hlss_plugin.benchmark.methods import CONFIG_DIR, METHOD_CONFIGS
from hlss_plugin.benchmark.overrides import (set_backbone_depth,
                                             set_crop_size,
                                             set_patients_per_batch)
from hlss_plugin.benchmark.presets import PRESETS
from hlss_plugin.benchmark.runs import _reusable, run_training
from hlss_plugin.utils.config import set_data_root, walk_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'benchmarks', 'benchmark.py')
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
    """The rows of the results table (after the chance-level table)."""
    lines = markdown.splitlines()
    lines = lines[lines.index('## Results'):]
    rows = [line for line in lines if line.startswith('| ')]
    header = [c.strip() for c in rows[0].strip('|').split('|')]
    return [dict(zip(header, (c.strip() for c in row.strip('|').split('|'))))
            for row in rows[1:]]


def test_end_to_end(root, tmp_path):
    work = str(tmp_path / 'work')
    env = dict(os.environ)
    env['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    proc = subprocess.run(
        [sys.executable, TOOL, '--methods', 'random', 'simclr',
         '--eval-every', '1', *common_args(root, work)],
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
    assert [len(e['runs']) for e in entries.values()] == [1, 1]
    simclr = entries['simclr']['runs'][0]
    assert simclr['seed'] == 0
    assert simclr['iterations'] == iterations
    assert simclr['images_seen'] == entries['simclr']['images_seen'] == images
    assert simclr['train_time_s'] > 0 and simclr['curve_eval_s'] > 0
    assert simclr['checkpoint'].startswith(osp.join(work, 'simclr', 'seed0'))
    # the checkpoint holds a trained ResNet-18 under 'backbone.'
    state = torch.load(simclr['checkpoint'], weights_only=True)['state_dict']
    assert state['backbone.layer4.1.conv2.weight'].shape == (512, 512, 3, 3)
    assert 'backbone.layer4.2.conv1.weight' not in state

    # learning curve: epoch 0 (untrained) and epoch 1 (= the final model)
    curve = simclr['curve']
    assert simclr['curve_path'] == osp.join(work, 'simclr', 'seed0', 'train',
                                            'curve.jsonl')
    assert [r['epoch'] for r in curve] == [0, 1]
    assert 'losses' not in curve[0]
    assert set(curve[1]['losses']) == {'loss'}  # SimCLR's one term
    assert curve[1]['losses']['loss'] > 0
    for level in LEVELS:
        assert curve[1]['knn'][level] == pytest.approx(
            simclr['metrics'][level], abs=1e-6)
    assert curve[1]['diagnostics'] == pytest.approx(simclr['diagnostics'])
    assert osp.getsize(osp.join(work, 'curves.png')) > 0

    rows = {r['method']: r for r in table_rows(markdown)}
    assert set(rows) == set(entries)
    for name, entry in entries.items():
        row = rows[name]
        run = entry['runs'][0]
        assert row['images seen'] == str(run['images_seen'])
        assert row['status'] == 'ok' and row['seeds'] == '1/1'
        assert float(row['train time (s)']) == pytest.approx(
            run['train_time_s'], abs=0.051)
        assert row['eff. rank'] == \
            f'{run["diagnostics"]["effective_rank"]:.1f}'
        for level in LEVELS:
            assert set(run['metrics'][level]) == {'acc', 'top2', 'top3',
                                                  'mca', 'map'}
            assert entry['metrics'][level] == run['metrics'][level]
            for value in run['metrics'][level].values():
                assert 0.0 <= value <= 1.0
            for key in ('acc', 'mca'):
                # percent, one seed: no ± and no spread mark
                assert row[f'{level} {key}'] == \
                    f'{100 * run["metrics"][level][key]:.1f}'
    # accuracy over a handful of queries: a multiple of 1 / count
    for level, count in (('patch', val_patches),):
        for entry in entries.values():
            acc = entry['metrics'][level]['acc'] * count
            assert acc == pytest.approx(round(acc), abs=1e-4)
    knn = settings['knn_data']
    assert knn['query']['patches'] == val_patches
    assert knn['bank']['patches'] == train_patches
    assert f'| patch | {val_patches} | {train_patches} | 7 | 14.3 |' \
        in markdown
    machine = report['machine']
    assert machine['cpu_count'] == os.cpu_count()
    assert machine['torch'] == torch.__version__
    assert f'{machine["cpu_count"]} CPUs' in markdown
    assert '--methods random simclr' in report['command']
    assert report['command'] in markdown


def test_failed_method_and_random_seeds(root, tmp_path, monkeypatch,
                                        capsys):
    calls = []

    def broken(out_dir, name, cfg, seed, reuse=False):
        calls.append((osp.relpath(out_dir, work), name, seed,
                      cfg.randomness.seed,
                      cfg.train_dataloader.sampler.seed))
        return dict(error='training failed (exit 1): RuntimeError: boom',
                    wall_s=0.5, log='train.log')

    monkeypatch.setattr(benchmark_run, 'run_training', broken)
    work = str(tmp_path / 'work')
    status = benchmark.main(['--methods', 'simclr', 'random',
                             *common_args(root, work), '--seeds', '2'])
    assert status == 1
    # every seed reaches the model init, augmentation and sampler
    assert calls == [(osp.join('simclr', 'seed0'), 'simclr', 0, 0, 0),
                     (osp.join('simclr', 'seed1'), 'simclr', 1, 1, 1)]
    with open(osp.join(work, 'benchmark.json')) as f:
        report = json.load(f)
    assert report['settings']['seeds'] == [0, 1]
    simclr, random = report['methods']
    assert simclr['error'].startswith('every seed failed: seed 0: '
                                      'training failed')
    assert 'RuntimeError: boom' in simclr['error']
    assert simclr['metrics'] is None and simclr['images_seen'] == 0
    assert random['error'] is None
    # random: one different init per seed, then mean and std over seeds
    runs = random['runs']
    assert [r['seed'] for r in runs] == [0, 1]
    ranks = [r['diagnostics']['effective_rank'] for r in runs]
    assert ranks[0] != ranks[1]
    summary = random['summary']['metrics']['patient']['acc']
    values = [r['metrics']['patient']['acc'] for r in runs]
    assert summary['mean'] == pytest.approx(sum(values) / 2)
    assert summary['std'] == pytest.approx(abs(values[0] - values[1])
                                           / 2 ** 0.5)
    rows = {r['method']: r for r in table_rows(
        open(osp.join(work, 'benchmark.md')).read())}
    assert rows['simclr']['status'].startswith('failed: every seed failed')
    assert rows['simclr']['patch acc'] == '—'
    assert rows['simclr']['seeds'] == '0/2'
    assert rows['random']['status'] == 'ok'
    assert rows['random']['seeds'] == '2/2'
    assert ' ± ' in rows['random']['patient acc']
    assert osp.isfile(osp.join(work, 'benchmark.png'))
    assert not osp.exists(osp.join(work, 'curves.png'))  # no --eval-every
    assert 'failed: simclr' in capsys.readouterr().err


def test_unknown_or_missing_method(root, tmp_path, monkeypatch):
    work = str(tmp_path / 'work')
    with pytest.raises(SystemExit) as err:
        benchmark.main(['--methods', 'random', 'dino',
                        *common_args(root, work)])
    message = str(err.value)
    assert 'unknown method(s) dino' in message
    assert 'valid names: random, hlss, hidisc, simclr' in message
    monkeypatch.setitem(METHOD_CONFIGS, 'simclr',
                        'no_such_config.py')
    with pytest.raises(SystemExit, match='no_such_config.py not found'):
        benchmark.main(['--methods', 'simclr', *common_args(root, work)])
    with pytest.raises(SystemExit, match='given twice: random'):
        benchmark.main(['--methods', 'random', 'random',
                        *common_args(root, work)])
    # a named variant and its options are the same run
    with pytest.raises(SystemExit, match=r'given twice: hlss:ha=off '
                       r'\(= hlss_no_ha\)'):
        benchmark.main(['--methods', 'hlss_no_ha', 'hlss:ha=off',
                        *common_args(root, work)])
    with pytest.raises(SystemExit, match="ha='maybe' is not allowed"):
        benchmark.main(['--methods', 'hlss:ha=maybe',
                        *common_args(root, work)])
    with pytest.raises(SystemExit, match='unknown method.*hlss_tiny'):
        benchmark.main(['--methods', 'hlss_tiny', *common_args(root, work)])
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


def test_preset_flags_and_seeds_resolve(root, tmp_path, monkeypatch):
    monkeypatch.setitem(PRESETS, 'tiny', dict(
        crop_size=48, budget=2, k=7, eval_every=1, seeds=3))
    base = ['--data-root', root, '--work-dir', str(tmp_path), '--methods',
            'random']
    args = benchmark.parse_args(base + ['--preset', 'tiny', '--crop-size',
                                        '32'])
    assert (args.crop_size, args.sources['crop_size']) == (32, 'flag')
    assert (args.budget, args.sources['budget']) == (2, 'preset tiny')
    assert (args.k, args.eval_every) == (7, 1)
    assert args.seeds == [0, 1, 2]
    assert (args.backbone, args.sources['backbone']) == ('resnet18',
                                                         'default')
    args = benchmark.parse_args(base + ['--preset', 'tiny', '--seed-list',
                                        '5', '9', '--eval-every', '0'])
    assert args.seeds == [5, 9] and args.eval_every is None
    args = benchmark.parse_args(base + ['--budget', '1', '--seed', '4'])
    assert args.seeds == [4] and args.eval_every is None
    assert benchmark.parse_args(base + ['--budget', '1']).seeds == [0]
    for extra, message in (
            ([], '--budget is required'),
            (['--budget', '1', '--seeds', '0'], 'must be >= 1'),
            (['--budget', '1', '--seed-list', '1', '1'], 'given twice'),
            (['--budget', '1', '--seeds', '2', '--seed', '1'],
             'not allowed with argument'),
            (['--budget', '0'], '--budget must be an int >= 1')):
        with pytest.raises(SystemExit):
            benchmark.parse_args(base + extra)
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--work-dir', str(tmp_path), '--methods',
                              'random', '--budget', '1'])  # no data root


def test_dry_run_with_preset_and_variant(root, tmp_path, capsys):
    work = str(tmp_path / 'work')
    status = benchmark.main([
        '--methods', 'random', 'hlss_ha_published', '--dry-run',
        '--preset', 'cpu', '--data-root', root, '--work-dir', work,
        '--crop-size', '32', '--budget', '1', '--seed-list', '3', '4'])
    out = capsys.readouterr().out
    assert status == 0 and not osp.exists(work)
    for line in ('[settings] preset: cpu', '  crop_size: 32 (flag)',
                 '  budget: 1 (flag)', '  seeds: [3, 4] (flag)',
                 f"  backbone: {PRESETS['cpu']['backbone']!r} "
                 f'(preset cpu)',
                 "[hlss_ha_published] configs/mmpretrain/hlss_srh.py + "
                 "{'ha': 'published'}",
                 'model.heads.patch.ha_loss: HierarchicalAlignmentLoss('
                 'loss_weight=1.0, detach=False) -> HierarchicalAlignment'
                 'Loss(loss_weight=1.0, detach=True)',
                 'train_dataloader.sampler.seed: None -> 3',
                 "randomness: {'seed': 0, 'deterministic': False} -> "
                 "{'seed': 3,",
                 'KNNCurveHook(interval=', '[seeds] [3, 4]',
                 'curves every'):
        assert line in out, line


def test_make_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(PRESETS, 'tiny', dict(
        budget=1, data=dict(patients_per_class=2, slides=1, patches=1,
                            size=32)))
    work = str(tmp_path / 'work')
    argv = ['--methods', 'random', '--preset', 'tiny', '--make-data',
            '--work-dir', work]
    # a dry run says what it would write and writes nothing
    assert benchmark.main(argv + ['--dry-run']) == 0
    out = capsys.readouterr().out
    data_root = osp.join(work, 'synthetic_srh')
    assert "'patients_per_class': 2" in out and data_root in out
    assert 'does not exist yet' in out and not osp.exists(work)
    args = benchmark.parse_args(argv)
    assert args.data_root == data_root
    assert make_data(args)['patches'] == 1
    with open(osp.join(data_root, 'meta', 'opensrh.json')) as f:
        assert len(json.load(f)) == 14  # 7 classes x 2 patients
    assert make_data(args) is None  # exists: used as it is
    # without --make-data a missing root stops with the fix
    with pytest.raises(SystemExit, match='--make-data'):
        benchmark.main(['--methods', 'random', '--budget', '1',
                        '--data-root', str(tmp_path / 'none'),
                        '--work-dir', work])


@pytest.fixture(scope='module')
def batch(root):
    """One hierarchical batch of the shared pipeline at 32 px."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR,
                                   'simclr_resnet50_srh.py'))
    set_data_root(cfg, root)
    set_crop_size(cfg, 32)
    set_patients_per_batch(cfg, P)
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    return next(iter(loader))


@pytest.mark.parametrize('method', list(METHOD_CONFIGS))
def test_backbone_override_builds_every_config(method, batch):
    path = osp.join(CONFIG_DIR, METHOD_CONFIGS[method])
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


def test_reuse_keeps_a_finished_run_of_the_identical_config(tmp_path):
    cfg = Config(dict(model=dict(type='X'), helper=1,
                      work_dir=str(tmp_path / 'w')))
    out = str(tmp_path / 'hlss' / 'seed0')
    os.makedirs(osp.join(out, 'train'))
    ckpt = osp.join(out, 'train', 'epoch_1.pth')
    open(ckpt, 'wb').close()
    config_path = osp.join(out, 'hlss_benchmark_config.py')
    result_path = osp.join(out, 'train_result.json')
    cfg.dump(config_path)
    with open(result_path, 'w') as f:
        # written where the folder was before it moved
        json.dump(dict(iterations=3, wall_s=1.5,
                       checkpoint='/elsewhere/train/epoch_1.pth'), f)
    # another work dir and helper variable: the same training
    same = Config(dict(model=dict(type='X'), helper=2,
                       work_dir=str(tmp_path / 'v')))
    result = run_training(out, 'hlss', same, 0, reuse=True)
    assert result['reused'] and result['iterations'] == 3
    assert result['checkpoint'] == ckpt
    # a recorded path outside the folder is never followed, even when a
    # file is there (another run may have moved into that place)
    os.makedirs(tmp_path / 'elsewhere' / 'train')
    decoy = tmp_path / 'elsewhere' / 'train' / 'epoch_2.pth'
    decoy.write_bytes(b'')
    with open(result_path, 'w') as f:
        json.dump(dict(iterations=3, checkpoint=str(decoy)), f)
    assert _reusable(config_path, cfg, result_path, out) is None
    with open(result_path, 'w') as f:
        json.dump(dict(iterations=3, checkpoint=ckpt), f)
    # another model is another training
    other = Config(dict(model=dict(type='Y'), work_dir=str(tmp_path / 'w')))
    assert _reusable(config_path, other, result_path, out) is None
    os.remove(ckpt)  # a run whose checkpoint is gone is not reused either
    assert _reusable(config_path, cfg, result_path, out) is None
