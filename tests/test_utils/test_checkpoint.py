"""hlss_plugin.utils.checkpoint: the one state-dict reader and key checker."""
import pytest
import torch

from hlss_plugin.utils.checkpoint import (CheckpointReadError,
                                          read_checkpoint, read_state_dict,
                                          state_dict_diff,
                                          state_dict_mismatch,
                                          strip_ddp_prefix, strip_prefix)


def test_read_checkpoint_returns_state_and_meta(tmp_path):
    path = tmp_path / 'c.pth'
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'epoch': 3}},
               path)
    state, meta = read_checkpoint(str(path))
    assert list(state) == ['w'] and torch.equal(state['w'], torch.ones(2))
    assert meta == {'epoch': 3}
    torch.save({'w': torch.zeros(1)}, path)  # a plain state dict: no meta
    assert read_checkpoint(str(path))[1] == {}
    assert set(read_state_dict(str(path))) == {'w'}


def test_read_errors_name_the_file_and_reason(tmp_path):
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a torch file')
    with pytest.raises(CheckpointReadError) as info:
        read_checkpoint(str(junk), owner='X')
    assert isinstance(info.value, ValueError)
    assert info.value.path == str(junk)
    assert info.value.reason.startswith('it is not a file written by')
    assert str(info.value).startswith(f'X: {junk} is not a readable')
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        read_checkpoint(str(tmp_path / 'missing.pth'))
    torch.save({'state_dict': {}}, junk)
    with pytest.raises(ValueError, match='holds no state dict'):
        read_checkpoint(str(junk))


def test_prefix_stripping():
    state = {'module.a.w': torch.ones(1), 'module.b': torch.ones(1)}
    assert set(strip_ddp_prefix(state)) == {'a.w', 'b'}
    mixed = {'module.a': torch.ones(1), 'b': torch.ones(1)}
    assert set(strip_ddp_prefix(mixed)) == {'module.a', 'b'}  # not all
    assert set(strip_prefix(state, 'module.a.')) == {'w'}


def test_state_dict_diff_and_message():
    model = {'w': torch.ones(2), 'b': torch.ones(1),
             'pre._extra_state': torch.ones(1)}
    ckpt = {'w': torch.ones(3), 'x': torch.ones(1)}
    diff = state_dict_diff(model, ckpt)
    assert diff.missing == ['b'] and diff.unexpected == ['x']
    assert diff.shapes == [('w', (3,), (2,))]
    strict = state_dict_diff(model, ckpt, optional_extra_state=False)
    assert strict.missing == ['b', 'pre._extra_state']
    assert not state_dict_diff(model, dict(model))
    assert state_dict_mismatch(model, ckpt) == (
        'missing keys: b; unexpected keys: x; shape mismatch: w '
        '(checkpoint (3,), model (2,))')
