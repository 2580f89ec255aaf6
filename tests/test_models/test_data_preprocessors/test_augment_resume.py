"""SRHBatchAugmentPreprocessor's augmentation stream survives a resume.

The views of training step ``k`` come from a generator seeded with
``mix_seed(base, rank, k)``; ``(base, step)`` are checkpointed as
``data_preprocessor._extra_state``. Unit tests check the formula, restoring
a state mid-run, ranks, ``seed=None``, weights-only loading and checkpoints
from before the state existed; one mmengine Runner test interrupts and
resumes a tiny SimCLR run and compares the views of its last iterations.
"""

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict as mm_load_state_dict
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

import hlss_plugin  # noqa: F401
from hlss_plugin.augmentation import apply_plan
from hlss_plugin.models.data_preprocessors import SRHBatchAugmentPreprocessor
from hlss_plugin.models.data_preprocessors import \
    srh_batch_augment_preprocessor as module
from hlss_plugin.utils.checkpoint import read_state_dict
from hlss_plugin.utils.seed_mix import mix_seed

KEY = '_extra_state'


def raw_batch(seed, b=4, size=24):
    """Raw ``(B, 2, H, W)`` uint16 SRH-like patches."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(500, 12000, (b, 2, size, size),
                         generator=g).to(torch.uint16)


def build(seed=1, **kwargs):
    kwargs.setdefault('augment', dict(rand_prob=0.5, crop_size=16))
    return SRHBatchAugmentPreprocessor(seed=seed, **kwargs)


def views(pre, raw):
    return torch.stack(pre(dict(inputs=raw), training=True)['inputs'])


def formula_views(pre, raw, base, rank, step):
    """The views of ``step`` rebuilt from the documented seeding: a fresh
    generator seeded with ``mix_seed(base, rank, step)``, one plan per
    view (the preprocessor has no mean / std here)."""
    gen = torch.Generator().manual_seed(mix_seed(base, rank, step))
    x = pre.to_unit(raw)
    out = []
    for _ in range(pre.num_views):
        plan = pre.augment.sample_plan(gen, x.shape[0], tuple(x.shape[1:]))
        out.append(apply_plan(x, plan, pre.apply_mode))
    return torch.stack(out)


# ------------------------------------------------------------------ units
def test_views_of_step_k_follow_the_seed_formula():
    a, b = build(seed=1), build(seed=1)
    for step in range(3):
        raw = raw_batch(step)
        va = views(a, raw)
        assert torch.equal(va, views(b, raw))
        assert torch.equal(va, formula_views(a, raw, 1, 0, step)), step
        assert a.step == step + 1
    # the stream moves on: the same batch at another step, other views
    assert not torch.equal(views(a, raw_batch(0)),
                           formula_views(a, raw_batch(0), 1, 0, 0))


def test_restored_state_continues_independent_of_history():
    batches = [raw_batch(s) for s in range(3)]
    straight = build(seed=1)
    views(straight, batches[0])
    views(straight, batches[1])
    state = straight.state_dict()
    assert state[KEY].tolist() == [1, 1, 2]
    expected = views(straight, batches[2])

    # A fresh preprocessor with another history: other batches, a different
    # number of steps, an evaluation batch.
    other = build(seed=1)
    for s in (7, 8, 9, 10):
        views(other, raw_batch(s))
    other(dict(inputs=raw_batch(11)), training=False)
    other.load_state_dict(state)
    assert other.step == 2
    assert torch.equal(views(other, batches[2]), expected)
    # Negative control: without the state the fifth step's views differ.
    unrestored = build(seed=1)
    for s in (7, 8, 9, 10):
        views(unrestored, raw_batch(s))
    assert not torch.equal(views(unrestored, batches[2]), expected)


def test_eval_forward_leaves_the_step_alone():
    pre, ref = build(seed=4), build(seed=4)
    views(pre, raw_batch(0))
    views(ref, raw_batch(0))
    out = pre(dict(inputs=raw_batch(1)), training=False)
    assert isinstance(out['inputs'], torch.Tensor) and pre.step == 1
    assert torch.equal(views(pre, raw_batch(2)), views(ref, raw_batch(2)))


def test_ranks_draw_different_views(monkeypatch):
    raw = raw_batch(0)
    rank0 = views(build(seed=1), raw)
    monkeypatch.setattr(module, 'get_rank', lambda: 1)
    pre = build(seed=1)
    rank1 = views(pre, raw)
    assert not torch.equal(rank0, rank1)
    assert torch.equal(rank1, formula_views(pre, raw, 1, 1, 0))


def test_seed_none_base_is_persisted_and_restored():
    raw = raw_batch(0)
    torch.manual_seed(5)
    drawn = build(seed=None)
    assert drawn.state_dict()[KEY].tolist() == [1, -1, 0]  # not drawn yet
    views(drawn, raw)
    base = drawn.base_seed()
    assert drawn.state_dict()[KEY].tolist() == [1, base, 1]
    state = drawn.state_dict()
    expected = views(drawn, raw)

    torch.manual_seed(99)  # another global RNG: another base if drawn
    restored = build(seed=None)
    restored.load_state_dict(state)
    assert torch.equal(views(restored, raw), expected)
    assert restored.base_seed() == base
    torch.manual_seed(99)
    fresh = build(seed=None)
    views(fresh, raw)
    assert fresh.base_seed() != base  # the control draws another base

    # A state saved before the draw leaves the draw to the new run.
    undrawn = build(seed=None)
    undrawn.load_state_dict(build(seed=None).state_dict())
    torch.manual_seed(5)
    views(undrawn, raw)
    assert undrawn.base_seed() == base  # drawn from the global RNG as usual


def test_explicit_seed_wins_over_checkpoint_base(monkeypatch):
    logs = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kw: logs.append((msg, kw)))
    source = build(seed=3)
    views(source, raw_batch(0))
    target = build(seed=8)
    target.load_state_dict(source.state_dict())
    assert target.step == 1 and target.base_seed() == 8
    assert len(logs) == 1 and 'base seed 3' in logs[0][0]
    assert 'seed=8' in logs[0][0]


def test_state_dict_loads_weights_only(tmp_path):
    pre = build(seed=None)
    views(pre, raw_batch(0))
    model = torch.nn.Module()
    model.data_preprocessor = pre
    model.backbone = torch.nn.Linear(2, 2)
    path = tmp_path / 'ckpt.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        str(path)) == []
    loaded = torch.load(path, weights_only=True)['state_dict']
    entry = loaded[f'data_preprocessor.{KEY}']
    assert entry.dtype == torch.int64
    assert entry.tolist() == [1, pre.base_seed(), 1]
    # Readers that demand a state dict of tensors accept it.
    assert set(read_state_dict(str(path))) == set(loaded)
    restored = build(seed=None)
    restored.load_state_dict({KEY: entry}, strict=True)
    assert restored.step == 1 and restored.base_seed() == pre.base_seed()


def test_legacy_state_without_key_loads_strictly(monkeypatch):
    logs = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kw: logs.append((msg, kw)))
    pre = build(seed=2)
    result = pre.load_state_dict({}, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert pre.step == 0
    # Inside a model, through torch's and mmengine's strict loaders.
    model = torch.nn.Module()
    model.data_preprocessor = pre
    model.backbone = torch.nn.Linear(2, 2)
    legacy = {k: v for k, v in model.state_dict().items()
              if not k.endswith(KEY)}
    model.load_state_dict(legacy, strict=True)
    mm_load_state_dict(model, legacy, strict=True)
    assert pre.step == 0
    assert len(logs) == 1  # warned once per preprocessor
    assert "'_extra_state'" in logs[0][0]
    assert 'goes on from step 0' in logs[0][0]
    # Other missing keys are still reported.
    with pytest.raises(RuntimeError, match='backbone.weight'):
        model.load_state_dict({}, strict=True)


@pytest.mark.parametrize('bad, match', [
    ({'step': 3}, 'int64 tensor'),
    (torch.tensor([1, 2, 3], dtype=torch.int32), 'int64 tensor'),
    (torch.tensor([2, 5, 3]), 'another version'),
    (torch.tensor([1, 5, -3]), 'another version'),
])
def test_bad_extra_state_says_how_to_fix(bad, match):
    with pytest.raises(ValueError, match=f'{match}.*[Dd]elete'):
        build().load_state_dict({KEY: bad})


# ------------------------------------------------------- Runner: resume
NUM_SAMPLES, BATCH_SIZE = 8, 4  # 2 iterations per epoch, 2 epochs


class RawPatches(Dataset):
    """Fixed raw uint16 ``(2, 40, 40)`` patches."""

    def __init__(self):
        self.raw = raw_batch(123, b=NUM_SAMPLES, size=40)
        self.metainfo = {}

    def __len__(self):
        return NUM_SAMPLES

    def __getitem__(self, index):
        return dict(inputs=self.raw[index], data_samples=DataSample())


class RecordViewsHook(Hook):
    """Keeps the training views of every iteration, by ``runner.iter``."""

    def __init__(self):
        self.views = {}
        self._handle = None

    def before_train(self, runner):
        def record(module, args, kwargs, output):
            training = args[1] if len(args) > 1 else kwargs.get('training')
            if training:
                self.views[runner.iter] = torch.stack(
                    output['inputs']).clone()

        self._handle = runner.model.data_preprocessor.register_forward_hook(
            record, with_kwargs=True)

    def after_train(self, runner):
        self._handle.remove()


class Interrupted(Exception):
    """Stands for the job being killed."""


class InterruptHook(Hook):
    priority = 'LOWEST'  # after CheckpointHook wrote epoch_1.pth

    def after_train_epoch(self, runner):
        raise Interrupted


def make_runner(work_dir, name, interrupt=False, resume_from=None):
    record = RecordViewsHook()
    hooks = [dict(type='PlainCheckpointHook'), record]
    if interrupt:
        hooks.append(InterruptHook())
    runner = Runner(
        model=dict(
            type='SimCLR',
            data_preprocessor=dict(
                type='SRHBatchAugmentPreprocessor',
                augment=dict(rand_prob=0.5, crop_size=32),
                mean=[0.5] * 3, std=[0.25] * 3, seed=None),
            backbone=dict(type='ResNet', depth=18, stem_channels=8,
                          base_channels=8),
            neck=dict(type='NonLinearNeck', in_channels=64, hid_channels=16,
                      out_channels=8, num_layers=2, with_avg_pool=True),
            head=dict(type='ContrastiveHead',
                      loss=dict(type='CrossEntropyLoss'), temperature=0.1)),
        work_dir=str(work_dir),
        experiment_name=name,  # unique: MessageHub instances are global
        train_dataloader=dict(
            dataset=RawPatches(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=BATCH_SIZE, num_workers=0,
            collate_fn=dict(type='default_collate')),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        custom_hooks=hooks,
        randomness=dict(seed=0),
        default_scope='mmpretrain',
        load_from=resume_from,
        resume=resume_from is not None,
        log_level='WARNING')
    return runner, record


def test_resumed_runner_continues_the_augmentation_stream(tmp_path):
    tag = tmp_path.name
    straight, straight_views = make_runner(tmp_path / 's', f'{tag}_s')
    straight.train()
    first, _ = make_runner(tmp_path / 'f', f'{tag}_f', interrupt=True)
    with pytest.raises(Interrupted):
        first.train()
    ckpt = tmp_path / 'f' / 'epoch_1.pth'
    state = torch.load(ckpt, weights_only=True)['state_dict']
    entry = state[f'data_preprocessor.{KEY}'].tolist()
    assert entry[0] == 1 and entry[2] == 2 and entry[1] >= 0

    resumed, resumed_views = make_runner(tmp_path / 'r', f'{tag}_r',
                                         resume_from=str(ckpt))
    resumed.train()
    assert sorted(straight_views.views) == [0, 1, 2, 3]
    assert sorted(resumed_views.views) == [2, 3]  # iterations 3 and 4
    for it in (2, 3):
        assert torch.equal(resumed_views.views[it], straight_views.views[it])
    # Epoch 2 repeats epoch 1's batches (no shuffling): a restarted stream
    # would repeat iteration 1's views at iteration 3.
    assert not torch.equal(straight_views.views[2], straight_views.views[0])
    assert resumed.model.data_preprocessor.step == 4
    final = straight.model.state_dict()
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, final[key]), key
