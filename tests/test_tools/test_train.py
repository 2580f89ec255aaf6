"""tools/train.py, tools/dist_train.sh, HierarchicalBatchCheckHook and
DeviceAwareDistributedDataParallel, end to end on CPU.

Training runs use MMPretrain's own SimCLR with a tiny ResNet-18 on 32 px
views (``configs/simclr_tiny_srh.py``) on a tiny synthetic OpenSRH set, in
subprocesses exactly as a user runs the tools.
"""
import glob
import importlib.util
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from torch import nn

from hlss_plugin.engine.hooks.hierarchical_batch_check_hook import \
    HierarchicalBatchCheckHook
from hlss_plugin.engine.model_wrappers import \
    DeviceAwareDistributedDataParallel
from hlss_plugin.synthetic import make_synthetic_srh
from hlss_plugin.utils.config import set_data_root
from tests.dist_helpers import run_distributed

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(REPO, 'tools', 'train.py')
DIST_TRAIN = osp.join(REPO, 'tools', 'dist_train.sh')
CONFIG = osp.join(REPO, 'tests', 'test_tools', 'configs',
                  'simclr_tiny_srh.py')
# 14 train patients, P x S x K = 2 x 2 x 2 (P over all ranks): 7 iterations
# per epoch, on one process and on two.
ITERS_PER_EPOCH = 7
# Views without randomness (centre 32 px crop, no ops), so that a resumed
# run can match an uninterrupted one bit for bit (see test_resume_*).
VIEW = 'train_dataloader.dataset.pipeline.2.transforms.0.0'
DETERMINISTIC_VIEWS = [f'{VIEW}.rand_prob=0', f'{VIEW}.base_prob=0',
                       f'{VIEW}.crop_fallback=center']
STOP_AFTER_EPOCH_1 = 'custom_hooks.2.stop_after_epoch=1'


def _load_train_tool():
    spec = importlib.util.spec_from_file_location('hlss_tools_train', TRAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train_tool = _load_train_tool()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _env(**extra):
    env = dict(os.environ, **extra)
    # Every torch.load (mmengine's resume included) is weights-only, even
    # where a caller passed weights_only=False.
    env.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', None)
    env['TORCH_FORCE_WEIGHTS_ONLY_LOAD'] = '1'
    return env


def run_train(*args, timeout=240):
    """Run ``tools/train.py CONFIG *args`` from the repository root."""
    return subprocess.run([sys.executable, TRAIN, CONFIG, *map(str, args)],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=_env())


def _ok(proc):
    assert proc.returncode == 0, (proc.stdout[-2000:] + proc.stderr[-4000:])
    return proc


def load_ckpt(path):
    # What mmengine's resume does under torch >= 2.6 (weights_only=True).
    return torch.load(path, map_location='cpu', weights_only=True)


def scalars(work_dir):
    """``{iter: record}`` of every run logged in ``work_dir``."""
    out = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                out[record['step']] = record
    return out


def run_log(work_dir):
    """Text of the newest run's log file in ``work_dir``."""
    path = sorted(glob.glob(osp.join(work_dir, '*', '*.log')))[-1]
    with open(path) as f:
        return f.read()


@pytest.fixture(scope='module')
def srh_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('train_tool') / 'srh')
    make_synthetic_srh(root, patients_per_class=3, patches=4, size=48)
    return root


@pytest.fixture(scope='module')
def full_run(srh_root, tmp_path_factory):
    """An uninterrupted 2-epoch run with deterministic views."""
    work = str(tmp_path_factory.mktemp('full'))
    _ok(run_train('--data-root', srh_root, '--work-dir', work,
                  '--cfg-options', *DETERMINISTIC_VIEWS))
    return work


@pytest.fixture(scope='module')
def interrupted_run(srh_root, tmp_path_factory):
    """The same 2-epoch schedule, stopped by an exception after epoch 1."""
    work = str(tmp_path_factory.mktemp('interrupted'))
    proc = run_train('--data-root', srh_root, '--work-dir', work,
                     '--cfg-options', *DETERMINISTIC_VIEWS,
                     STOP_AFTER_EPOCH_1)
    assert proc.returncode != 0
    assert 'SimulatedCrash: TrainProbeHook: stopped after epoch 1' in \
        proc.stderr
    return work


# ------------------------------------------------------------ (a) training
def test_train_writes_checkpoints_and_loss_log(full_run):
    for epoch in (1, 2):
        ckpt = load_ckpt(osp.join(full_run, f'epoch_{epoch}.pth'))
        assert ckpt['meta']['epoch'] == epoch
        assert ckpt['meta']['iter'] == epoch * ITERS_PER_EPOCH
        assert 'backbone.conv1.weight' in ckpt['state_dict']
    with open(osp.join(full_run, 'last_checkpoint')) as f:
        assert f.read().strip().endswith('epoch_2.pth')
    records = scalars(full_run)
    assert sorted(records) == list(range(1, 2 * ITERS_PER_EPOCH + 1))
    losses = [r['loss'] for r in records.values()]
    assert all(0 < loss < 100 for loss in losses)
    log = run_log(full_run)
    assert 'Epoch(train) [1][1/7]' in log and 'loss:' in log
    assert 'HierarchicalBatchCheckHook' in log  # registered and ordered
    # warm-up from lr * 0.1 to lr over epoch 1, then cosine down
    lrs = [records[i]['lr'] for i in sorted(records)]
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[ITERS_PER_EPOCH - 1] == pytest.approx(1e-3)
    assert lrs[ITERS_PER_EPOCH:] == sorted(lrs[ITERS_PER_EPOCH:],
                                           reverse=True)


# -------------------------------------------------------------- (b) resume
def _assert_resumed_like_full(resumed, full, first_run=None):
    """The resumed work dir ends exactly where the uninterrupted one ends."""
    log = run_log(resumed)
    assert f'resumed epoch: 1, iter: {ITERS_PER_EPOCH}' in log
    a = load_ckpt(osp.join(full, 'epoch_2.pth'))
    b = load_ckpt(osp.join(resumed, 'epoch_2.pth'))
    assert b['meta']['epoch'] == a['meta']['epoch'] == 2
    assert b['meta']['iter'] == a['meta']['iter'] == 2 * ITERS_PER_EPOCH
    # learning rate of every iteration: epoch 1 from the interrupted run,
    # epoch 2 from the resumed one
    full_log = scalars(full)
    both = scalars(first_run or resumed)
    both.update(scalars(resumed))
    assert sorted(both) == sorted(full_log)
    for it in full_log:
        assert both[it]['lr'] == full_log[it]['lr'], it
        assert both[it]['loss'] == pytest.approx(full_log[it]['loss'],
                                                 rel=1e-5), it
    # bit-identical weights (and BN statistics), optimizer and scheduler
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(value, b['state_dict'][key]), key
    for state_a, state_b in zip(a['optimizer']['state'].values(),
                                b['optimizer']['state'].values()):
        for key in state_a:
            assert torch.equal(state_a[key], state_b[key]), key
    assert a['param_schedulers'] == b['param_schedulers']


def test_resume_auto_continues_exactly(full_run, interrupted_run, srh_root,
                                      tmp_path):
    assert osp.exists(osp.join(interrupted_run, 'epoch_1.pth'))
    assert not osp.exists(osp.join(interrupted_run, 'epoch_2.pth'))
    work = str(tmp_path / 'work')
    shutil.copytree(interrupted_run, work)
    _ok(run_train('--data-root', srh_root, '--work-dir', work, '--resume',
                  '--cfg-options', *DETERMINISTIC_VIEWS))
    _assert_resumed_like_full(work, full_run)


def test_resume_from_checkpoint_path(full_run, interrupted_run, srh_root,
                                     tmp_path):
    work = str(tmp_path / 'fresh')
    _ok(run_train('--data-root', srh_root, '--work-dir', work, '--resume',
                  osp.join(interrupted_run, 'epoch_1.pth'), '--cfg-options',
                  *DETERMINISTIC_VIEWS))
    _assert_resumed_like_full(work, full_run, first_run=interrupted_run)


def _last_line(proc):
    assert proc.returncode != 0
    return proc.stderr.strip().splitlines()[-1]


def test_resume_garbage_file_is_a_one_line_error(srh_root, tmp_path):
    garbage = tmp_path / 'epoch_9.pth'
    garbage.write_bytes(b'not a checkpoint at all')
    proc = run_train('--data-root', srh_root, '--work-dir',
                     str(tmp_path / 'w'), '--resume', str(garbage))
    line = _last_line(proc)
    assert line.startswith(f'tools/train.py: error: --resume: {garbage} is '
                           f'not a readable checkpoint: it is not a file '
                           f'written by torch.save')
    assert 'pass a checkpoint a training run wrote' in line
    assert 'weights_only` set to `False' not in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_resume_with_changed_model_is_a_one_line_error(interrupted_run,
                                                       srh_root, tmp_path):
    ckpt = osp.join(interrupted_run, 'epoch_1.pth')
    proc = run_train('--data-root', srh_root, '--work-dir',
                     str(tmp_path / 'w'), '--resume', ckpt, '--cfg-options',
                     'model.neck.hid_channels=24')
    line = _last_line(proc)
    assert line.startswith(f'tools/train.py: error: --resume: checkpoint '
                           f'{ckpt} was saved by another model or optimizer')
    assert 'neck.fc0.weight (checkpoint (32, 64), model (24, 64))' in line
    assert 'Resume with the config the checkpoint was trained with' in line
    assert 'Traceback' not in proc.stderr


# ----------------------------------------------------- (c) distributed, CPU
def test_dist_train_sh_two_gloo_processes(srh_root, tmp_path):
    work = str(tmp_path / 'dist')
    proc = subprocess.run(
        ['bash', DIST_TRAIN, CONFIG, '2', '--data-root', srh_root,
         '--work-dir', work, '--cfg-options', 'train_cfg.max_epochs=1'],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env=_env(PORT=str(_free_port())))
    _ok(proc)
    log = run_log(work)
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    assert 'DeviceAwareDistributedDataParallel: the module is on the CPU' \
        in log
    ckpt = load_ckpt(osp.join(work, 'epoch_1.pth'))
    # P = 2 patients per step over both ranks (batch_scope='global'): as
    # many steps as on one process, 1 patient x 2 x 2 per rank and step
    assert ckpt['meta']['iter'] == ITERS_PER_EPOCH  # 14 patients // 2
    probes = []
    for rank in (0, 1):
        with open(osp.join(work, f'probe_rank{rank}.json')) as f:
            probes.append(json.load(f))
        assert probes[rank]['rank'] == rank
        assert probes[rank]['world_size'] == 2
        assert probes[rank]['iter'] == ITERS_PER_EPOCH
        assert len(probes[rank]['patients']['1']) == ITERS_PER_EPOCH * 4
    # ranks train on disjoint patients (HierarchicalSampler under DDP) ...
    assert not (set(probes[0]['patients']['1']) &
                set(probes[1]['patients']['1']))
    # ... yet end with identical parameters: gradients were averaged
    params = [torch.load(osp.join(work, f'probe_rank{r}_params.pth'),
                         weights_only=True) for r in (0, 1)]
    for key, value in params[0].items():
        assert torch.equal(value, params[1][key]), key
        assert torch.equal(value, ckpt['state_dict'][key]), key


# ------------------------------------------------------------ (d) bad input
def test_missing_data_root_is_a_clear_error(tmp_path):
    missing = str(tmp_path / 'no_such_data')
    proc = run_train('--data-root', missing, '--work-dir', tmp_path / 'w')
    assert proc.returncode != 0
    assert f"--data-root '{missing}': no such folder" in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_amp_on_cpu_is_a_clear_error(srh_root, tmp_path):
    assert not torch.cuda.is_available()  # this suite runs on CPU
    proc = run_train('--amp', '--data-root', srh_root, '--work-dir',
                     tmp_path / 'w')
    assert proc.returncode != 0
    assert 'needs a CUDA GPU' in proc.stderr
    assert 'leave out --amp' in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_fast_config_trains_on_cpu_with_its_bf16_fallback(srh_root,
                                                         tmp_path):
    """hlss_srh_fast.py's AmpOptimWrapper has a CPU fallback constructor,
    so tools/train.py must not refuse it without CUDA (unlike --amp)."""
    work = tmp_path / 'w'
    fast = osp.join(REPO, 'configs', 'mmpretrain', 'hlss_srh_fast.py')
    proc = subprocess.run(
        [sys.executable, TRAIN, fast, '--data-root', srh_root,
         '--work-dir', str(work), '--cfg-options',
         'model.backbone.depth=18', 'model.in_channels=512',
         'model.data_preprocessor.augment.crop_size=32',
         'train_dataloader.sampler.patients_per_batch=2',
         'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False',
         'train_cfg.max_epochs=1', 'val_dataloader.dataset.pipeline.1.size=32',
         'val_dataloader.num_workers=0',
         'val_dataloader.persistent_workers=False', 'val_evaluator.k=5',
         'default_hooks.logger.interval=1'],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=_env())
    _ok(proc)
    log = run_log(str(work))
    assert 'CPUAutocastOptimWrapper' in log
    (path,) = glob.glob(osp.join(str(work), '*', 'vis_data',
                                 'scalars.json'))
    with open(path) as f:
        records = [json.loads(line) for line in f]
    train = [r for r in records if 'loss' in r]
    assert len(train) == ITERS_PER_EPOCH
    assert all(torch.isfinite(torch.tensor(r['loss'])) for r in train)
    assert 'patient/acc' in log  # kNN validation on raw uint16 crops


def test_batch_size_not_p_s_k_fails_via_hook(srh_root, tmp_path):
    # Without HierarchicalBatchSampler (which would refuse the batch size
    # when the DataLoader is built) the hook catches it.
    work = tmp_path / 'w'
    proc = run_train('--data-root', srh_root, '--work-dir', work,
                     '--cfg-options', 'train_dataloader.batch_size=6',
                     'train_dataloader.batch_sampler=None')
    assert proc.returncode != 0
    assert ('ValueError: train_dataloader.batch_size is 6 but '
            'HierarchicalSampler yields chunks') in proc.stderr
    assert 'set train_dataloader.batch_size = 2*2*2 = 8' in proc.stderr
    assert 'before_train' in proc.stderr  # raised by the hook
    assert not glob.glob(str(work / '*.pth'))


# ------------------------------------- the tool's pieces, in this process
def test_set_data_root_replaces_every_entry(tmp_path):
    cfg = Config(dict(
        data_root='old',
        train_dataloader=dict(dataset=dict(
            type='ConcatDataset',
            datasets=[dict(type='A', data_root='old'),
                      dict(type='RepeatDataset',
                           dataset=dict(type='B', data_root='old'))])),
        val_dataloader=dict(dataset=dict(type='C', data_root='old'))))
    keys = set_data_root(cfg, str(tmp_path))
    assert sorted(keys) == sorted([
        'data_root', 'train_dataloader.dataset.datasets.0.data_root',
        'train_dataloader.dataset.datasets.1.dataset.data_root',
        'val_dataloader.dataset.data_root'])
    ds = cfg.train_dataloader.dataset.datasets
    assert {cfg.data_root, ds[0].data_root, ds[1].dataset.data_root,
            cfg.val_dataloader.dataset.data_root} == {str(tmp_path)}
    with pytest.raises(ValueError, match='no `data_root`'):
        set_data_root(Config(dict(model=dict())), str(tmp_path))


def test_resume_flag_and_missing_checkpoint(tmp_path):
    cfg = Config.fromfile(CONFIG, import_custom_modules=False)
    args = train_tool.parse_args([CONFIG, '--resume'])
    cfg = train_tool.merge_args(cfg, args)
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir == osp.join('./work_dirs', 'simclr_tiny_srh')
    args = train_tool.parse_args([CONFIG, '--resume', str(tmp_path / 'x')])
    with pytest.raises(train_tool.ToolError, match='no such checkpoint'):
        train_tool.merge_args(cfg, args)


def test_cpu_launch_refuses_sync_bn_and_needs_torchrun_env(monkeypatch):
    cfg = Config.fromfile(CONFIG, import_custom_modules=False)
    cfg.model.neck.norm_cfg.type = 'SyncBN'
    with pytest.raises(train_tool.ToolError,
                       match=r'SyncBN needs CUDA.*model\.neck\.norm_cfg'):
        train_tool.prepare_distributed(cfg, 'pytorch')
    cfg = Config.fromfile(CONFIG, import_custom_modules=False)
    cfg.sync_bn = 'torch'
    with pytest.raises(train_tool.ToolError, match='sync_bn'):
        train_tool.prepare_distributed(cfg, 'pytorch')
    cfg = Config.fromfile(CONFIG, import_custom_modules=False)
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(train_tool.ToolError,
                       match='RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are '
                       'not set; start the job with tools/dist_train.sh'):
        train_tool.prepare_distributed(cfg, 'pytorch')
    assert cfg.model_wrapper_cfg.type == 'DeviceAwareDistributedDataParallel'
    assert cfg.model_wrapper_cfg.broadcast_buffers is False
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'
    assert not torch_dist.is_initialized()


# ---------------------------------------------- HierarchicalBatchCheckHook
class _Sampler:
    batch_size = 8

    def __init__(self):
        self.calls = []

    def check_batch_size(self, batch_size, where):
        self.calls.append((batch_size, where))


def _runner(loader):
    return SimpleNamespace(train_dataloader=loader)


def test_batch_check_hook_finds_sampler_and_batch_size():
    hook = HierarchicalBatchCheckHook()
    sampler = _Sampler()
    dataset = list(range(16))
    # mmengine's default: DataLoader(batch_size=..., sampler=...)
    loader = torch.utils.data.DataLoader(dataset, batch_size=6,
                                         sampler=sampler)
    hook.before_train(_runner(loader))
    assert sampler.calls == [(6, 'train_dataloader.batch_size')]
    # a batch sampler wrapping it (DataLoader.batch_size is then None)
    sampler = _Sampler()
    batch_sampler = torch.utils.data.BatchSampler(sampler, 8, False)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler)
    hook.before_train(_runner(loader))
    assert sampler.calls == [(8, 'train_dataloader.batch_size')]
    # a sampler without check_batch_size: nothing to check
    loader = torch.utils.data.DataLoader(dataset, batch_size=3)
    hook.before_train(_runner(loader))


class _HierarchyDataset:
    """8 patients x 1 slide x 2 patches; items are their own index."""

    def __init__(self):
        from hlss_plugin.datasets.hierarchy import Hierarchy
        self.hierarchy = Hierarchy.from_items(
            item_patient=[i // 2 for i in range(16)],
            item_slide=[i // 2 for i in range(16)],
            patient_labels=[0] * 8, patient_names=tuple('abcdefgh'),
            slide_names=tuple('abcdefgh'))

    def get_hierarchy(self):
        return self.hierarchy

    def __len__(self):
        return 16

    def __getitem__(self, idx):
        return idx


def test_batch_check_hook_global_scope_on_two_ranks():
    from hlss_plugin.datasets.samplers import (HierarchicalBatchSampler,
                                               HierarchicalSampler)
    hook = HierarchicalBatchCheckHook()
    dataset = _HierarchyDataset()

    def sampler(**kwargs):
        return HierarchicalSampler(dataset, patients_per_batch=4,
                                   slides_per_patient=1, patches_per_slide=2,
                                   seed=0, rank=1, world_size=2, **kwargs)

    # global scope (P = 4 over 2 ranks): a plain DataLoader with the
    # config's batch size 8 mixes two chunks per batch; the fix is named
    loader = torch.utils.data.DataLoader(dataset, batch_size=8,
                                         sampler=sampler())
    with pytest.raises(ValueError,
                       match=r"train_dataloader.batch_size is 8 .*"
                       r"train_dataloader.batch_sampler=dict\(type="
                       r"'HierarchicalBatchSampler'\)"):
        hook.before_train(_runner(loader))
    # the batch sampler batches per-rank chunks of 2 patients x 1 x 2
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=HierarchicalBatchSampler(sampler(), 8))
    hook.before_train(_runner(loader))
    assert [len(b) for b in loader] == [4, 4]
    # auto_scale_lr would scale by world_size x the global batch
    runner = SimpleNamespace(train_dataloader=loader,
                             auto_scale_lr=dict(enable=True,
                                                base_batch_size=8))
    with pytest.raises(ValueError,
                       match=r"auto_scale_lr.enable=True.*batch_scope="
                       r"'global'.*2 times too large; set "
                       r'auto_scale_lr.enable=False'):
        hook.before_train(runner)
    runner.auto_scale_lr = dict(enable=False, base_batch_size=8)
    hook.before_train(runner)
    # per_gpu: mmengine's batch size is per GPU, auto_scale_lr is right
    per_gpu = sampler(batch_scope='per_gpu')
    runner.train_dataloader = torch.utils.data.DataLoader(
        dataset, batch_sampler=HierarchicalBatchSampler(per_gpu, 8))
    runner.auto_scale_lr = dict(enable=True, base_batch_size=8)
    hook.before_train(runner)
    runner.train_dataloader = torch.utils.data.DataLoader(
        dataset, batch_size=8, sampler=per_gpu)
    hook.before_train(runner)


# ------------------------------------- (e) DeviceAwareDistributedDataParallel
def test_wrapper_is_found_by_name_in_both_registries():
    from mmengine.registry import MODEL_WRAPPERS as ROOT
    from mmpretrain.registry import MODEL_WRAPPERS
    name = 'DeviceAwareDistributedDataParallel'
    assert ROOT.get(name) is DeviceAwareDistributedDataParallel
    assert MODEL_WRAPPERS.get(name) is DeviceAwareDistributedDataParallel


def test_wrapper_passes_device_ids_unchanged_off_cpu(monkeypatch):
    from mmengine.model import MMDistributedDataParallel
    seen = {}

    def fake_init(self, module, detect_anomalous_params=False, **kwargs):
        seen.update(kwargs)

    monkeypatch.setattr(MMDistributedDataParallel, '__init__', fake_init)
    DeviceAwareDistributedDataParallel(
        nn.Linear(2, 2, device='meta'), device_ids=[3], output_device=3,
        broadcast_buffers=False)
    assert seen == dict(device_ids=[3], output_device=3,
                        broadcast_buffers=False)
    seen.clear()
    DeviceAwareDistributedDataParallel(nn.Linear(2, 2), device_ids=[3])
    assert seen == dict(device_ids=None, output_device=None)


def _wrapper_worker(rank, world_size):
    """Each rank wraps a CPU model the way mmengine's Runner does and
    takes a step on its own data; gradients must be the mean of the
    single-process gradients of all ranks' data."""
    from mmengine.runner import Runner
    os.environ['LOCAL_RANK'] = str(rank)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(),
                          nn.Linear(8, 1))
    reference = [torch.zeros_like(p) for p in model.parameters()]
    inputs = [torch.randn(6, 4, generator=torch.Generator().manual_seed(r))
              for r in range(world_size)]
    for x in inputs:  # single-process gradients of every rank's batch
        model.zero_grad()
        model(x).pow(2).mean().backward()
        for acc, p in zip(reference, model.parameters()):
            acc += p.grad / world_size
    model.zero_grad()
    runner = SimpleNamespace(distributed=True, cfg=Config(dict()))
    ddp = Runner.wrap_model(
        runner, dict(type='DeviceAwareDistributedDataParallel'), model)
    assert isinstance(ddp, DeviceAwareDistributedDataParallel)
    assert ddp.device_ids is None and ddp.output_device is None
    ddp(inputs[rank]).pow(2).mean().backward()
    for p, expected in zip(ddp.module.parameters(), reference):
        torch.testing.assert_close(p.grad, expected)


def test_wrapper_syncs_cpu_gradients_over_two_gloo_processes():
    run_distributed(_wrapper_worker, 2)


def test_wrapper_refuses_sync_bn_on_cpu():
    model = nn.Sequential(nn.Linear(2, 2), nn.SyncBatchNorm(2))
    with pytest.raises(ValueError, match=r'has 1 SyncBatchNorm layers \(1\)'):
        DeviceAwareDistributedDataParallel(model)
