"""PlainCheckpointHook and its conversion: weights-only, resumable checkpoints.

The integration tests train a tiny linear model with mmengine's Runner and
check that a run interrupted after one epoch and resumed from its checkpoint
ends exactly where an uninterrupted run ends.
"""
import copy
import glob
import io
import os.path as osp
import pickle
from collections import Counter, OrderedDict, defaultdict

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint
from torch.utils.data import Dataset

from hlss_plugin.engine.hooks.plain_checkpoint_hook import PlainCheckpointHook
from hlss_plugin.engine.plain_state import PLAIN_TAG, from_plain, to_plain

ARRAY_DTYPES = ['?', 'u1', 'i1', 'u2', 'i2', 'u4', 'i4', 'u8', 'i8', 'f2',
                'f4', 'f8', 'c8', 'c16', '>f8', '>i4', '<U4', 'S3']


def weights_only_round_trip(obj):
    """What a checkpoint holding ``obj`` gives back under torch >= 2.6."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def assert_same(actual, expected, path='obj'):
    """Recursive equality that also demands equal types and dtypes."""
    assert type(actual) is type(expected), (
        f'{path}: {type(actual)} != {type(expected)}')
    if isinstance(expected, HistoryBuffer):
        assert actual.max_length == expected.max_length, path
        assert_same(actual._log_history, expected._log_history, path + '.log')
        assert_same(actual._count_history, expected._count_history,
                    path + '.count')
    elif isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype, f'{path}: dtype'
        assert actual.shape == expected.shape, f'{path}: shape'
        assert np.array_equal(actual, expected, equal_nan=expected.dtype.kind
                              in 'fc'), path
    elif isinstance(expected, np.generic):
        assert actual.dtype == expected.dtype, f'{path}: dtype'
        assert actual == expected, path
    elif isinstance(expected, torch.Tensor):
        assert actual.dtype == expected.dtype and torch.equal(
            actual, expected), path
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f'{path}: keys'
        for key in expected:
            assert_same(actual[key], expected[key], f'{path}[{key!r}]')
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), f'{path}: length'
        for index, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f'{path}[{index}]')
    else:
        assert actual == expected, path


def sample_arrays():
    rng = np.random.default_rng(0)
    arrays = {}
    for dtype in ARRAY_DTYPES:
        kind = np.dtype(dtype).kind
        if kind in 'US':
            values = np.array([['ab', 'c', ''], ['xyz', 'q', 'r']])
        elif kind == 'b':
            values = rng.integers(0, 2, size=(2, 3))
        else:
            values = rng.integers(0, 100, size=(2, 3))
        arrays[dtype] = values.astype(dtype)
    arrays['f8_0d'] = np.array(3.25)
    arrays['f4_empty'] = np.zeros((0, 3), dtype=np.float32)
    arrays['U_empty'] = np.zeros((0, 2), dtype='<U3')
    arrays['f8_nan'] = np.array([np.nan, np.inf, -1.5])
    arrays['f4_view'] = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]
    return arrays


def sample_state():
    loss = HistoryBuffer(max_length=5)
    for value in [0.5, 0.25, 0.125]:
        loss.update(value)
    time = HistoryBuffer([1, 2], [1, 3])  # int logs: an int64 history
    return {
        'message_hub': {
            'log_scalars': OrderedDict([('train/loss', loss),
                                        ('train/time', time),
                                        ('empty', HistoryBuffer())]),
            'runtime_info': OrderedDict(
                dataset_meta={'classes': ('a', 'b'),
                              'palette': np.array([[0, 0, 0], [255, 0, 0]],
                                                  dtype=np.uint8)},
                best=np.float64(0.75), step=np.int64(7), half=np.float32(0.1),
                flag=np.bool_(True), name=np.str_('abc'), iter=7),
            'resumed_keys': OrderedDict([('train/loss', True),
                                         ('iter', False)]),
        },
        'arrays': sample_arrays(),
        'mixed': [np.int64(1), (np.float64(2.5), 'x', None), {1, 2},
                  torch.arange(3), torch.Size([2, 3]), b'raw', b'', 2 + 1j,
                  bytearray(b''), np.bytes_(b'ab'), np.bytes_(b''),
                  Counter({2: 1, 5: 1}), Counter({4: np.int64(2)})],
    }


def test_round_trip_keeps_values_types_and_dtypes():
    state = sample_state()
    original = copy.deepcopy(state)

    plain = to_plain(state, 'checkpoint')
    loaded = weights_only_round_trip(plain)
    restored = from_plain(loaded, 'checkpoint')

    assert_same(restored, original)
    assert_same(state, original)  # the input was not modified
    hub = plain['message_hub']
    assert hub['log_scalars']['train/loss'][PLAIN_TAG] == \
        'mmengine.HistoryBuffer'
    assert hub['runtime_info']['best'] == {
        PLAIN_TAG: 'numpy.generic', 'dtype': '<f8', 'value': 0.75}
    # Restored buffers keep working and keep their capacity.
    loss = restored['message_hub']['log_scalars']['train/loss']
    loss.update(1.0)
    loss.update(2.0)
    loss.update(3.0)
    assert loss.data[0].tolist() == [0.25, 0.125, 1.0, 2.0, 3.0]


def test_mmengine_values_fail_weights_only_without_conversion():
    # Negative control for the round trip above: the same values unconverted
    # are rejected, so the conversion is what makes them loadable.
    for name, value in [('HistoryBuffer', HistoryBuffer([1.0], [1])),
                        ('ndarray', np.arange(3)),
                        ('numpy scalar', np.float64(1.0))]:
        with pytest.raises(pickle.UnpicklingError):
            weights_only_round_trip({name: value})


def test_plain_input_is_returned_as_is():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2),
                                torch.nn.BatchNorm1d(2))
    state_dict = model.state_dict()
    checkpoint = {'state_dict': state_dict, 'meta': {'epoch': 1},
                  'optimizer': {'state': {}, 'param_groups': [{'lr': 0.1}]}}

    assert to_plain(checkpoint) is checkpoint
    assert from_plain(checkpoint) is checkpoint
    # When a sibling changes, the unchanged state_dict is still shared and
    # an OrderedDict that must be copied keeps its `_metadata`.
    state_dict_with_array = copy.copy(state_dict)
    state_dict_with_array['extra'] = np.ones(2)
    plain = to_plain({'state_dict': state_dict,
                      'other': state_dict_with_array})
    assert plain['state_dict'] is state_dict
    assert plain['other']._metadata == state_dict._metadata
    back = from_plain(weights_only_round_trip(plain))
    assert back['other']._metadata == state_dict._metadata


@pytest.mark.parametrize('bad, problem, fix', [
    (object(), 'is a builtins.object', 'Store plain values there instead'),
    (np.array([1, 'a'], dtype=object), 'is a numpy array of dtype object',
     'Store plain values there instead'),
    (defaultdict(list), 'is a collections.defaultdict',
     'Store plain values there instead'),
    (np.datetime64('2024-01-01'), 'is a numpy.datetime64',
     'Store plain values there instead'),
    (np.ones(2, dtype=np.longdouble),
     'is a numpy array of dtype float128, which torch cannot hold',
     r'Cast it, e.g. `.astype\(np.float64\)`'),
    ({np.int64(1): 'x'}, r'has the key np.int64\(1\) of type numpy.int64',
     r'`int\(key\)` for a numpy integer'),
    ({PLAIN_TAG: 'mine'}, "uses the key '__hlss_type__'", 'Rename that key'),
    ({HistoryBuffer()},
     'is a set holding a mmengine.logging.history_buffer.HistoryBuffer',
     'Store plain values there instead'),
])
def test_unconvertible_value_names_its_path_and_fix(bad, problem, fix):
    checkpoint = {'message_hub': {'runtime_info': {'ok': 1, 'foo': bad}}}
    where = r"^checkpoint\['message_hub'\]\['runtime_info'\]\['foo'\] "
    with pytest.raises(ValueError, match=f'{where}{problem}.*{fix}'):
        to_plain(checkpoint, 'checkpoint')


def test_from_plain_refuses_unknown_or_broken_tags():
    with pytest.raises(ValueError, match=r"obj\['x'\] is tagged .*'future'"
                       r'.*Upgrade hlss_plugin'):
        from_plain({'x': {PLAIN_TAG: 'future'}})
    with pytest.raises(ValueError, match=r"without the field 'dtype'"):
        from_plain({'x': {PLAIN_TAG: 'numpy.ndarray', 'data': [1]}})


def test_hook_converts_in_place_and_accepts_untagged_checkpoints():
    hook = PlainCheckpointHook()
    assert hook.priority == 'LOWEST'
    checkpoint = sample_state()
    expected = copy.deepcopy(checkpoint)
    hook.before_save_checkpoint(None, checkpoint)
    loaded = weights_only_round_trip(checkpoint)
    hook.after_load_checkpoint(None, loaded)
    assert_same(loaded, expected)

    # Weight-only files and plain checkpoints from before the hook existed.
    weights = {'state_dict': OrderedDict(w=torch.ones(2))}
    old_plain = {'meta': {'epoch': 3, 'iter': 30}, 'state_dict': OrderedDict(),
                 'message_hub': {'log_scalars': OrderedDict(),
                                 'runtime_info': OrderedDict(iter=30),
                                 'resumed_keys': OrderedDict(iter=True)}}
    for untagged in (weights, old_plain):
        loaded = weights_only_round_trip(untagged)
        before = {key: loaded[key] for key in loaded}
        hook.after_load_checkpoint(None, loaded)
        assert all(loaded[key] is before[key] for key in before)


# ----------------------------------------------------------------------------
# Integration with mmengine's Runner.

NUM_SAMPLES, BATCH_SIZE = 16, 4  # 4 iterations per epoch


class ToyDataset(Dataset):
    """Fixed random regression pairs; metainfo with numpy values."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.inputs = torch.randn(NUM_SAMPLES, 3, generator=generator)
        self.targets = torch.randn(NUM_SAMPLES, 1, generator=generator)
        self.metainfo = {
            'classes': ('tumor', 'normal'),
            'palette': np.array([[0, 0, 0], [255, 0, 0]], dtype=np.uint8),
            'pixel_mean': np.float64(0.5),
        }

    def __len__(self):
        return NUM_SAMPLES

    def __getitem__(self, index):
        return dict(inputs=self.inputs[index], targets=self.targets[index])


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        outputs = self.linear(inputs)
        if mode == 'loss':
            return dict(loss=((outputs - targets)**2).mean())
        return outputs


class RecordHook(Hook):
    """Records the lr of every iteration and the hub right after resuming."""

    priority = 'LOW'

    def __init__(self):
        self.lrs = {}
        self.loss_at_start = None

    def before_train(self, runner):
        self.loss_at_start = copy.deepcopy(
            runner.message_hub.log_scalars.get('train/loss'))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.lrs[runner.iter] = runner.optim_wrapper.get_lr()['lr'][0]


class NumpyEntryHook(Hook):
    """Adds a numpy entry to checkpoints, like a third-party hook might.

    It is registered after PlainCheckpointHook with the next-lowest priority:
    only PlainCheckpointHook's 'LOWEST' makes it convert this entry.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint['probe'] = np.arange(4, dtype=np.int16)


class Interrupted(Exception):
    """Stands for the job being killed."""


class InterruptHook(Hook):
    """Kills training once the checkpoint of the first epoch is written."""

    priority = 'LOWEST'  # after CheckpointHook ('VERY_LOW')

    def after_train_epoch(self, runner):
        raise Interrupted


def make_runner(work_dir, name, plain_hook, interrupt=False, load_from=None):
    """A 2-epoch run; resumed from ``load_from`` when it is given."""
    torch.manual_seed(0)
    record = RecordHook()
    custom_hooks = [record]
    if plain_hook:
        custom_hooks += [dict(type='PlainCheckpointHook'), NumpyEntryHook()]
    if interrupt:
        custom_hooks.append(InterruptHook())
    runner = Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        experiment_name=name,  # unique: MessageHub instances are global
        train_dataloader=dict(
            dataset=ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=BATCH_SIZE,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        # The interrupted and the resumed run share this config: mmengine
        # fixes a scheduler's default `end` to max_epochs and saves it.
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=[
            # Spans into epoch 2, so the resumed run needs its state.
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                 end=6),
            dict(type='MultiStepLR', milestones=[1], gamma=0.5,
                 by_epoch=True),
        ],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook',
                                           interval=1)),
        custom_hooks=custom_hooks,
        randomness=dict(seed=0),
        default_scope='mmpretrain',
        load_from=load_from,
        resume=load_from is not None,
        log_level='INFO',  # the resume test reads the log
    )
    return runner, record


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp('plain_ckpt')
    tag = root.name
    straight, straight_record = make_runner(
        root / 'straight', f'{tag}_straight', plain_hook=False)
    straight.train()
    first, _ = make_runner(
        root / 'first', f'{tag}_first', plain_hook=True, interrupt=True)
    with pytest.raises(Interrupted):
        first.train()
    checkpoint = str(root / 'first' / 'epoch_1.pth')
    resumed, resumed_record = make_runner(
        root / 'resumed', f'{tag}_resumed', plain_hook=True,
        load_from=checkpoint)
    resumed.train()
    return dict(straight=straight, straight_record=straight_record,
                first=first, resumed=resumed, resumed_record=resumed_record,
                checkpoint=checkpoint,
                straight_checkpoint=str(root / 'straight' / 'epoch_1.pth'))


def test_checkpoint_without_hook_is_refused_by_weights_only_load(runs):
    # Negative control: a stock mmengine checkpoint needs the message hub's
    # globals (listed without unpickling anything) and fails to load.
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
        runs['straight_checkpoint'])
    assert {'builtins.getattr', 'numpy.ndarray',
            'mmengine.logging.history_buffer.HistoryBuffer'} <= set(unsafe)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load'):
        torch.load(runs['straight_checkpoint'], weights_only=True)
    # mmengine's own loader (used by resume and load_from) fails the same way.
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(runs['straight_checkpoint'], map_location='cpu')


def test_checkpoint_with_hook_loads_weights_only(runs):
    assert torch.serialization.get_unsafe_globals_in_checkpoint(
        runs['checkpoint']) == []
    checkpoint = torch.load(runs['checkpoint'], weights_only=True)
    hub = checkpoint['message_hub']
    assert hub['log_scalars']['train/loss'][PLAIN_TAG] == \
        'mmengine.HistoryBuffer'
    assert checkpoint['meta']['dataset_meta']['palette'][PLAIN_TAG] == \
        'numpy.ndarray'
    # The entry of a hook registered later was converted too: ours runs last.
    assert checkpoint['probe'][PLAIN_TAG] == 'numpy.ndarray'


def test_resumed_run_matches_uninterrupted_run(runs):
    straight, resumed = runs['straight'], runs['resumed']
    assert (resumed.epoch, resumed.iter) == (straight.epoch, straight.iter) \
        == (2, 2 * NUM_SAMPLES // BATCH_SIZE)

    # Training restarted at iteration 4 with the straight run's schedule.
    resumed_lrs = runs['resumed_record'].lrs
    assert sorted(resumed_lrs) == [4, 5, 6, 7]
    assert resumed_lrs == {
        i: runs['straight_record'].lrs[i] for i in resumed_lrs}
    assert len(set(resumed_lrs.values())) > 1  # the lr really changes

    # The message hub came back as HistoryBuffers with the first run's data.
    loss_at_start = runs['resumed_record'].loss_at_start
    assert isinstance(loss_at_start, HistoryBuffer)
    assert_same(loss_at_start,
                runs['first'].message_hub.log_scalars['train/loss'])
    assert_same(resumed.message_hub.log_scalars['train/loss'],
                straight.message_hub.log_scalars['train/loss'])

    # Weights (and hence the momentum buffers they depend on) agree.
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_resume_sees_the_same_dataset_meta(runs):
    # Runner.resume compares pickle.dumps of the saved and the current
    # dataset metainfo; a lossy conversion (np.float64 -> float) would make
    # it log this warning.
    log_files = glob.glob(osp.join(runs['resumed'].log_dir, '*.log'))
    assert len(log_files) == 1
    with open(log_files[0]) as log:
        text = log.read()
    assert 'resumed epoch: 1, iter: 4' in text
    assert 'dataset metainfo from the resumed checkpoint is different' \
        not in text


def test_load_checkpoint_restores_numpy_and_history(runs):
    # `load_from` without resume goes through Runner.load_checkpoint.
    checkpoint = runs['resumed'].load_checkpoint(runs['checkpoint'])
    meta = checkpoint['meta']
    assert_same(meta['dataset_meta'], ToyDataset().metainfo)
    assert isinstance(
        checkpoint['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert_same(checkpoint['probe'], np.arange(4, dtype=np.int16))
