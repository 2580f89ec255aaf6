"""Under DDP, validation evaluates exactly the weights and buffers that are
saved (issue 13).

With plain BatchNorm nothing synchronises the running statistics: each rank
ends an epoch with those of its own batches, rank 0 saves its own, and each
rank validated its share of the data with its own. EvalBufferSyncHook
(``default_hooks.sync_buffers``) makes them identical before every
checkpoint and validation, for epoch- and iteration-based loops.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop
from torch import nn

import hlss_plugin  # noqa: F401  registers the hooks and the DDP wrapper
from hlss_plugin.engine.hooks import EvalBufferSyncHook, PlainCheckpointHook
from tests.dist_helpers import run_distributed
from tests.test_tools.test_train import (CONFIG, DIST_TRAIN, REPO, _env,
                                         _free_port, _ok, run_log)

EVAL_BASE = osp.join(REPO, 'configs', 'mmpretrain', '_base_', 'datasets',
                     'opensrh_knn_eval.py')
LEVELS = ('patch', 'slide', 'patient')
KEYS = ('acc', 'top2', 'top3', 'mca', 'map')


# ------------------------------------------------------------- the hook
def _hook_worker(rank, world_size):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    model.register_buffer('const', torch.zeros(2))
    bn = model[1]

    def diverge():  # what each rank's own batches leave behind
        bn.running_mean.fill_(rank + 1.0)
        bn.running_var.fill_(2.0 * (rank + 1))
        bn.num_batches_tracked.fill_(5 + rank)
        model.const.fill_(float(rank))

    def assert_synced():
        assert torch.equal(bn.running_mean, torch.full((3, ), 1.5))  # mean
        assert torch.equal(bn.running_var, torch.full((3, ), 3.0))
        assert int(bn.num_batches_tracked) == 5  # rank 0's (counters)
        assert torch.equal(model.const, torch.zeros(2))  # rank 0's

    hook = EvalBufferSyncHook()
    epoch = SimpleNamespace(model=model,
                            train_loop=object.__new__(EpochBasedTrainLoop))
    diverge()
    hook.after_train_iter(epoch, 0)  # epoch-based: not per iteration
    assert float(bn.running_mean[0]) == rank + 1.0
    hook.after_train_epoch(epoch)
    assert_synced()
    iters = SimpleNamespace(model=model,
                            train_loop=object.__new__(IterBasedTrainLoop))
    diverge()
    hook.after_train_epoch(iters)  # iteration-based: every iteration
    assert float(bn.running_mean[0]) == rank + 1.0
    hook.after_train_iter(iters, 0)
    assert_synced()


def test_hook_is_registered_by_default_and_ordered_before_checkpoint():
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'mmpretrain', '_base_',
                                   'default_runtime.py'))
    assert cfg.default_hooks.sync_buffers.type == 'EvalBufferSyncHook'
    assert cfg.default_hooks.preflight.type == 'PreflightHook'
    from mmengine.hooks import CheckpointHook
    from mmengine.runner.priority import get_priority
    assert get_priority(EvalBufferSyncHook.priority) < \
        get_priority(CheckpointHook.priority)


# ---------------------------------------- an iteration-based Runner, DDP
class _ToyNet(BaseModel):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 4)
        self.bn = nn.BatchNorm1d(4)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.bn(self.fc(torch.stack(inputs)))
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return [dict(out=row) for row in out]


class _ToyData(torch.utils.data.Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), i * i / 10.0]))


class _Count(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.extend(data_samples)

    def compute_metrics(self, results):
        return dict(n=len(results))


class _BufferProbe(Hook):
    """Saves the BN buffers each rank validates with."""

    def before_val_epoch(self, runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        torch.save({k: v.clone() for k, v in model.state_dict().items()
                    if k.startswith('bn.')},
                   osp.join(runner.work_dir,
                            f'val_rank{torch.distributed.get_rank()}.pth'))


def _worker(rank, world_size, root):
    _hook_worker(rank, world_size)
    from mmengine.runner import Runner
    os.environ['LOCAL_RANK'] = str(rank)
    loader = dict(dataset=_ToyData(), batch_size=4, num_workers=0,
                  sampler=dict(type='DefaultSampler', shuffle=False),
                  collate_fn=dict(type='pseudo_collate'))
    for tag, hooks in (('synced', dict(sync_buffers=EvalBufferSyncHook())),
                       ('plain', dict())):
        torch.manual_seed(0)
        runner = Runner(
            model=_ToyNet(), work_dir=osp.join(root, tag),
            experiment_name=f'{tag}_{rank}',
            train_dataloader=loader, val_dataloader=loader,
            train_cfg=dict(by_epoch=False, max_iters=2, val_interval=2),
            val_cfg=dict(), val_evaluator=[_Count()],
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
            default_hooks=dict(hooks, checkpoint=dict(
                type='CheckpointHook', by_epoch=False, interval=2)),
            custom_hooks=[PlainCheckpointHook(), _BufferProbe()],
            launcher='pytorch',
            env_cfg=dict(dist_cfg=dict(backend='gloo')),
            cfg=dict(model_wrapper_cfg=dict(
                type='DeviceAwareDistributedDataParallel',
                broadcast_buffers=False)))
        runner.train()
        torch.distributed.barrier()


def test_validation_uses_the_saved_buffers_on_two_ranks(tmp_path):
    """In 2 gloo processes (one spawn for both parts):

    * the hook itself: BN running stats become their mean over the ranks,
      other buffers rank 0's, after each epoch of an epoch-based loop and
      each iteration of an iteration-based one;
    * a real Runner with IterBasedTrainLoop, which saves iter_N.pth in
      after_train_iter and validates right after: each rank validates with
      the buffers the checkpoint holds (mmengine's own SyncBuffersHook syncs
      only before validation, after the save); without the hook rank 1
      validates with its own.
    """
    run_distributed(_worker, 2, str(tmp_path))
    for tag, same in (('synced', True), ('plain', False)):
        saved = torch.load(str(tmp_path / tag / 'iter_2.pth'),
                           weights_only=True)['state_dict']
        for rank in (0, 1):
            used = torch.load(str(tmp_path / tag / f'val_rank{rank}.pth'),
                              weights_only=True)
            equal = all(torch.equal(used[k], saved[k]) for k in used)
            # without the hook rank 1 validates with its own statistics
            assert equal == (same or rank == 0), (tag, rank)


# ------------------------- end to end: tools/dist_train.sh vs tools/test.py
@pytest.fixture
def eval_config(tmp_path):
    """The tiny SimCLR test config plus kNN validation after epoch 1."""
    path = tmp_path / 'simclr_tiny_knn.py'
    path.write_text(
        f'_base_ = [{CONFIG!r}, {EVAL_BASE!r}]\n'
        "val_cfg = dict(type='EmbeddingValLoop')\n"
        "test_cfg = dict(type='EmbeddingTestLoop')\n"
        'train_cfg = dict(max_epochs=1, val_interval=1)\n'
        'knn_test_pipeline = [\n'
        "    dict(type='LoadSRHPatch'), dict(type='SRHThirdChannel'),\n"
        "    dict(type='CenterCropTensor', size=32),\n"
        "    dict(type='PackInputs', algorithm_keys={{_base_.knn_keys}})]\n"
        'val_dataloader = dict(batch_size=16, num_workers=0,\n'
        '    persistent_workers=False,\n'
        '    dataset=dict(pipeline=knn_test_pipeline))\n'
        'test_dataloader = val_dataloader\n'
        'val_evaluator = dict(k=5)\n'
        'test_evaluator = val_evaluator\n')
    return str(path)


def test_two_process_validation_equals_test_tool_on_the_checkpoint(
        train_srh, eval_config, tmp_path):
    """2 gloo processes train 1 epoch and validate; tools/test.py (1
    process) on the epoch_1.pth they saved gives the very same kNN metrics.

    One training patch (not the first) is corrupt: the kNN bank, which
    reads the train split with the training dataset's policy ('skip'),
    leaves it out, in both runs (before, the bank read it with 'raise' and
    validation crashed after training)."""
    data = str(tmp_path / 'srh')
    shutil.copytree(train_srh, data)
    with open(osp.join(data, 'meta', 'train_val_split.json')) as f:
        patient = json.load(f)['train'][3]
    with open(osp.join(data, 'meta', 'opensrh.json')) as f:
        slides = json.load(f)[patient]['slides']
    record = next(iter(slides.values()))
    bad = osp.join(data, (record['tumor_patches'] or
                          record['normal_patches'])[1])
    with open(bad, 'wb') as f:
        f.write(b'II*\x00 truncated')

    work = str(tmp_path / 'dist')
    proc = subprocess.run(
        ['bash', DIST_TRAIN, eval_config, '2', '--data-root', data,
         '--work-dir', work],
        cwd=REPO, capture_output=True, text=True, timeout=240,
        env=_env(PORT=str(_free_port())))
    _ok(proc)
    log = run_log(work)
    assert 'Distributed training: True' in log
    assert "PreflightHook: val_dataloader ready: bank 112 patches (split " \
        "'train', on_bad_patch='skip')" in log
    (path, ) = glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        logged = [r for r in map(json.loads, f) if 'patch/acc' in r]
    assert len(logged) == 1

    from tests.test_tools.test_test_tool import test_tool
    dump = str(tmp_path / 'emb.npz')
    tested = test_tool.main([eval_config, osp.join(work, 'epoch_1.pth'),
                             '--data-root', data, '--work-dir',
                             str(tmp_path / 'test'), '--tsne-max', '0',
                             '--dump-embeddings', dump])
    for level in LEVELS:
        for key in KEYS:
            assert logged[0][f'{level}/{key}'] == pytest.approx(
                tested[level][key], abs=1e-6), (level, key)
    # the corrupt bank patch was left out, every other patch counted once
    paths = np.load(dump)['path'].tolist()
    assert bad not in paths and len(paths) == len(set(paths)) == 112 + 56 - 1
