"""tools/train.py's MMPretrain flags (--no-validate, --auto-scale-lr,
--no-pin-memory, --no-persistent-workers), --epochs, the schedule warning,
the start-up warning filter and the launch scripts' arguments.

Each option is checked on the resolved config against what MMPretrain's
``tools/train.py`` does; --epochs against the rescaling arithmetic written
out here.
"""
import math
import os
import os.path as osp
import stat
import subprocess
import sys
import warnings

import pytest
from mmengine.config import Config

from hlss_plugin.apis import (ToolError, build_runner, filter_startup_warnings,
                              merge_args, rescale_epochs, schedule_overruns)
from hlss_plugin.apis.startup_warnings import STARTUP_WARNINGS
from tests.test_tools.test_train import (CONFIG, ITERS_PER_EPOCH, REPO, TRAIN,
                                         _env, _ok, run_log, scalars,
                                         srh_root, train_tool)

HLSS = osp.join(REPO, 'configs', 'mmpretrain', 'hlss_srh.py')
__all__ = ['srh_root']  # the module-scoped fixture, used here too


def merged(*argv, config=HLSS):
    args = train_tool.parse_args([config, *argv])
    return merge_args(Config.fromfile(config), args)


# ------------------------------------------------------- MMPretrain flags
def test_no_validate_drops_validation():
    cfg = merged()
    assert cfg.val_dataloader is not None and cfg.val_cfg is not None
    cfg = merged('--no-validate')
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.val_evaluator is None
    assert cfg.test_dataloader is not None  # only validation goes


def test_auto_scale_lr_enables_the_configs_setting(tmp_path):
    assert not merged().auto_scale_lr.get('enable', False)
    cfg = merged('--auto-scale-lr')
    assert cfg.auto_scale_lr.enable is True
    assert cfg.auto_scale_lr.base_batch_size == 128  # the config's, kept
    bare = tmp_path / 'bare.py'
    bare.write_text('train_cfg = dict(max_epochs=1)\n')
    with pytest.raises(ToolError, match=r'--auto-scale-lr: the config .*'
                       r'has no auto_scale_lr; add auto_scale_lr = dict\('
                       r'base_batch_size=N\)'):
        merged('--auto-scale-lr', config=str(bare))


def test_pin_memory_and_persistent_workers_off_in_every_loader():
    cfg = merged('--cfg-options', 'train_dataloader.num_workers=2',
                 'train_dataloader.persistent_workers=True',
                 'train_dataloader.pin_memory=True')
    assert cfg.train_dataloader.persistent_workers is True
    assert cfg.train_dataloader.pin_memory is True
    cfg = merged('--no-pin-memory', '--no-persistent-workers',
                 '--cfg-options', 'train_dataloader.num_workers=2',
                 'train_dataloader.persistent_workers=True',
                 'train_dataloader.pin_memory=True')
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[key].pin_memory is False, key
        assert cfg[key].persistent_workers is False, key


def test_int_options_are_checked_by_argparse(capsys):
    for bad in ('0', '-2', 'x'):
        with pytest.raises(SystemExit):
            train_tool.parse_args([CONFIG, '--epochs', bad])
        assert 'argument --epochs' in capsys.readouterr().err
    assert train_tool.parse_args([CONFIG, '--epochs', '3']).epochs == 3


# ----------------------------------------------------------------- --epochs
def test_schedule_overruns_names_the_keys():
    cfg = Config.fromfile(HLSS)
    assert schedule_overruns(cfg) == []
    cfg.merge_from_dict({'train_cfg.max_epochs': 1})
    assert schedule_overruns(cfg) == [
        'param_scheduler.0.end=100', 'param_scheduler.1.begin=100',
        'param_scheduler.1.end=1000']
    cfg.param_scheduler = dict(type='LinearLR', by_epoch=False, end=10**6)
    assert schedule_overruns(cfg) == []  # iterations: not compared


def test_rescale_epochs_keeps_the_schedule_shape(srh_root, tmp_path):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict({'train_cfg.val_interval': 5,
                         'default_hooks.checkpoint.interval': 5})
    merge_args(cfg, train_tool.parse_args(
        [CONFIG, '--data-root', srh_root, '--work-dir', str(tmp_path)]))
    changes = rescale_epochs(cfg, 1)
    # 2 epochs (warm-up 0-1, cosine 1-2) become 1 epoch of 7 iterations:
    # position x of 2 epochs -> round(x / 2 * 7), inside [1, 6]
    total = 1 * ITERS_PER_EPOCH
    warm_end = min(max(round(1 / 2 * total), 1), total - 1)
    assert cfg.train_cfg.max_epochs == 1
    warm, cosine = cfg.param_scheduler
    assert (warm.begin, warm.end, warm.by_epoch) == (0, warm_end, False)
    assert (cosine.begin, cosine.end) == (warm_end, total)
    assert cosine.T_max == total - warm_end and cosine.by_epoch is False
    assert cfg.train_cfg.val_interval == 1
    assert cfg.default_hooks.checkpoint.interval == 1
    assert changes['train_cfg.max_epochs'] == (2, 1)
    assert schedule_overruns(cfg) == []
    bad = Config.fromfile(CONFIG)
    bad.train_dataloader.dataset.data_root = str(tmp_path / 'missing')
    with pytest.raises(ToolError, match='--epochs 1: '):
        rescale_epochs(bad, 1)


def test_overrun_warning_is_logged_once_at_runner_build(tmp_path):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = 'overrun_check'
    cfg.train_cfg.max_epochs = 1
    build_runner(cfg)
    log = run_log(str(tmp_path))
    assert log.count('the schedule outlasts train_cfg.max_epochs=1') == 1
    assert 'param_scheduler.1.end=2' in log and '--epochs N' in log


def test_train_epochs_end_to_end(srh_root, tmp_path):
    """--epochs 1 on the 2-epoch tiny config: 7 iterations, warm-up over
    the first 4 (round(1 / 2 * 7)), cosine over the last 3."""
    proc = _ok(subprocess.run(
        [sys.executable, TRAIN, CONFIG, '--data-root', srh_root,
         '--work-dir', str(tmp_path), '--epochs', '1', '--no-pin-memory'],
        cwd=REPO, capture_output=True, text=True, timeout=240, env=_env()))
    records = scalars(str(tmp_path))
    assert max(records) == ITERS_PER_EPOCH
    lr, eta_min, warm_end = 1e-3, 1e-5, 4
    # mmengine's LinearLR from 0.1 * lr reaches lr at its last iteration
    # (factor 0.1 + 0.9 * i / (end - begin - 1))
    for i in range(warm_end):
        factor = 0.1 + (1 - 0.1) * i / (warm_end - 1)
        assert records[i + 1]['lr'] == pytest.approx(lr * factor, rel=1e-4)
    for i in range(warm_end, ITERS_PER_EPOCH):  # cosine, T_max = 3
        t = (i - warm_end) / (ITERS_PER_EPOCH - warm_end)
        expected = eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t)) / 2
        assert records[i + 1]['lr'] == pytest.approx(expected, rel=1e-4)
    assert osp.isfile(tmp_path / 'epoch_1.pth')
    assert 'outlasts' not in proc.stdout + proc.stderr


# ------------------------------------------------------ start-up warnings
def test_filter_hides_only_the_known_warnings():
    known = [message.replace('\\', '') for message, _, _ in
             STARTUP_WARNINGS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for text in known:
            warnings.warn(text + ' (details)', UserWarning if 'broadcast'
                          not in text else FutureWarning)
        warnings.warn('hlss_plugin: a warning of the project', UserWarning)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter('always')
        kept = filter_startup_warnings(caught)
        # installed filters hide the library's later warnings (by module)
        warnings.warn_explicit(known[1] + ' 1', UserWarning, 'setup_env.py',
                               1, module='mmengine.utils.dl_utils.setup_env')
        warnings.warn_explicit('another mmengine warning', UserWarning,
                               'setup_env.py', 2,
                               module='mmengine.utils.dl_utils.setup_env')
    assert [str(w.message) for w in kept] == [
        'hlss_plugin: a warning of the project']
    assert [str(w.message) for w in shown] == [
        'hlss_plugin: a warning of the project', 'another mmengine warning']


def test_train_help_prints_no_warning_and_project_warnings_still_show():
    proc = subprocess.run([sys.executable, TRAIN, '--help'], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and 'usage: train.py' in proc.stdout
    assert proc.stderr == ''
    code = (
        'import importlib.util, warnings, sys\n'
        f'spec = importlib.util.spec_from_file_location("t", {TRAIN!r})\n'
        'tool = importlib.util.module_from_spec(spec)\n'
        'spec.loader.exec_module(tool)\n'
        'warnings.warn_explicit("Setting OMP_NUM_THREADS environment '
        'variable for each process to be 1", UserWarning, "s.py", 1, '
        'module="mmengine.utils.dl_utils.setup_env")\n'
        'warnings.warn_explicit("hlss_plugin: shown", UserWarning, '
        '"hlss_plugin/x.py", 1, module="hlss_plugin.x")\n')
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'hlss_plugin: shown' in proc.stderr
    assert 'OMP_NUM_THREADS' not in proc.stderr
    assert 'MultiScaleDeformableAttention' not in proc.stderr


# ----------------------------------------------------------- shell scripts
SCRIPTS = {
    'dist_train.sh': 'CONFIG NPROC_PER_NODE',
    'dist_test.sh': 'CONFIG CHECKPOINT NPROC_PER_NODE',
    'slurm_train.sh': 'PARTITION JOB_NAME CONFIG WORK_DIR',
    'slurm_test.sh': 'PARTITION JOB_NAME CONFIG CHECKPOINT',
}


@pytest.mark.parametrize('name', sorted(SCRIPTS))
def test_launch_script_usage(name):
    path = osp.join(REPO, 'tools', name)
    assert os.access(path, os.X_OK)
    assert subprocess.run(['bash', '-n', path]).returncode == 0
    for argv, code in (([], 2), (['--help'], 0)):
        proc = subprocess.run(['bash', path, *argv], capture_output=True,
                              text=True, timeout=30)
        assert proc.returncode == code
        assert proc.stderr.startswith(f'usage: {path} {SCRIPTS[name]} ')
        assert '+ ' not in proc.stderr  # set -x does not echo the usage


@pytest.mark.parametrize('name,tool,fourth', [
    ('slurm_train.sh', 'train.py', '--work-dir=/runs/w'),
    ('slurm_test.sh', 'test.py', 'ckpt.pth')])
def test_slurm_scripts_pass_mmpretrains_arguments(tmp_path, name, tool,
                                                  fourth):
    fake = tmp_path / 'srun'
    fake.write_text('#!/usr/bin/env bash\necho "srun $*"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    last = '/runs/w' if name == 'slurm_train.sh' else 'ckpt.pth'
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS='4',
               GPUS_PER_NODE='4')
    proc = subprocess.run(
        ['bash', osp.join(REPO, 'tools', name), 'part', 'job', 'cfg.py',
         last, '--cfg-options', 'a=1'],
        capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith('srun -p part --job-name=job --gres=gpu:4 '
                           '--ntasks=4 --ntasks-per-node=4')
    assert line.endswith(f'/tools/{tool} cfg.py {fourth} --launcher slurm '
                         f'--cfg-options a=1')

