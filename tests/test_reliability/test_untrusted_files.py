"""Untrusted and damaged files keep failing safely (issue 13, what already
works and must keep working).

* A checkpoint whose unpickling would run code is refused by every loader
  of the project, and its payload never runs.
* A truncated patch (TIFF or HDF5) gives ``BadPatchError`` naming the file,
  whichever loading transform reads it (test_datasets/test_loading.py
  covers the other error paths of each loader).
* A killed and resumed run continuing with the exact iteration, learning
  rate, weights and optimizer state is
  tests/test_tools/test_train.py::test_resume_auto_continues_exactly (and
  ``test_resume_from_checkpoint_path``); not repeated here.
"""
import importlib.util
import os.path as osp
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import tifffile
import torch
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from torch import nn

import hlss_plugin  # noqa: F401
from hlss_plugin.datasets.transforms.load_srh_patch_raw import \
    LoadSRHPatchRaw
from hlss_plugin.datasets.transforms.loading import (LoadH5Patch,
                                                     LoadPatchImage,
                                                     LoadSRHPatch)
from hlss_plugin.errors import BadPatchError
from hlss_plugin.interpret.explain_error import ExplainError
from hlss_plugin.interpret.load_checkpoint import load_state_dict_strict
from hlss_plugin.models.initializers import HLSSPretrainedInit
from hlss_plugin.utils.resume import ResumeError, guard_resume

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
#: torch's advice for a refused file, which must never reach the user.
TORCH_ADVICE = 'weights_only` set to `False'


def _test_tool():
    spec = importlib.util.spec_from_file_location(
        'hlss_tools_test', osp.join(REPO, 'tools', 'test.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------- malicious checkpoints
class _CreatesFile:
    """Unpickling this calls ``open(marker, 'w')``: creates a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, 'w')


def _backbone():
    return dict(type='ResNet', depth=18, stem_channels=8, base_channels=8)


@pytest.fixture
def evil(tmp_path):
    """A training checkpoint of a tiny ResNet-18 (state dict, meta,
    message hub, optimizer) with a code-running object inside."""
    init_default_scope('mmpretrain')
    backbone = MODELS.build(_backbone())
    marker = str(tmp_path / 'payload_ran')
    path = str(tmp_path / 'epoch_1.pth')
    torch.save({'meta': {'epoch': 1, 'iter': 7}, 'message_hub': {},
                'state_dict': {f'backbone.{k}': v for k, v in
                               backbone.state_dict().items()},
                'optimizer': {}, 'payload': _CreatesFile(marker)}, path)
    return SimpleNamespace(path=path, marker=marker, backbone=backbone)


def test_code_running_checkpoint_is_refused_by_every_loader(evil):
    model = nn.Module()
    model.backbone = evil.backbone
    refusals = []
    # tools/test.py checks the checkpoint before anything loads it
    test_tool = _test_tool()
    with pytest.raises(test_tool.ToolError) as err:
        test_tool.check_checkpoint(model, evil.path)
    refusals.append(str(err.value))
    # --resume (tools/train.py wraps the runner's load_or_resume)
    resumed = []
    runner = SimpleNamespace(_resume=True, _load_from=evil.path,
                             work_dir=osp.dirname(evil.path), model=model,
                             load_or_resume=lambda: resumed.append(1))
    guard_resume(runner)
    with pytest.raises(ResumeError) as err:
        runner.load_or_resume()
    assert not resumed  # mmengine's own loading never started
    refusals.append(str(err.value))
    # backbone initialisation and the evaluation-only model
    with pytest.raises(ValueError) as err:
        HLSSPretrainedInit(checkpoint=evil.path)(MODELS.build(_backbone()))
    refusals.append(str(err.value))
    with pytest.raises(ValueError) as err:
        MODELS.build(dict(type='BackboneEmbedder', backbone=_backbone(),
                          checkpoint=evil.path))
    refusals.append(str(err.value))
    # tools/analysis_tools/explain.py
    with pytest.raises(ExplainError) as err:
        load_state_dict_strict(model, evil.path)
    refusals.append(str(err.value))
    for msg in refusals:
        assert evil.path in msg, msg
        assert TORCH_ADVICE not in msg, msg  # never "turn weights_only off"
    assert not osp.exists(evil.marker)
    # the payload is live: an unsafe load would have run it
    torch.load(evil.path, weights_only=False)
    assert osp.exists(evil.marker)


# ------------------------------------------------------ truncated patches
def _srh_tiff(path):
    arr = np.random.default_rng(0).integers(0, 65535, (2, 64, 64),
                                            dtype=np.uint16)
    tifffile.imwrite(path, arr)


def _bag(path):
    arr = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3),
                                            dtype=np.uint8)
    with h5py.File(path, 'w') as f:
        f.create_dataset('imgs', data=arr)


@pytest.mark.parametrize('loader, suffix, write', [
    (LoadSRHPatch, '.tif', _srh_tiff),
    (LoadSRHPatchRaw, '.tif', _srh_tiff),
    (LoadPatchImage, '.tif', _srh_tiff),
    (LoadH5Patch, '.h5', _bag),
], ids=['LoadSRHPatch', 'LoadSRHPatchRaw', 'LoadPatchImage', 'LoadH5Patch'])
def test_truncated_patch_is_a_bad_patch_naming_the_file(tmp_path, loader,
                                                        suffix, write):
    path = str(tmp_path / f'patch{suffix}')
    write(path)
    results = dict(img_path=path, patch_idx=3)
    loader()(dict(results))  # the intact file loads
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(BadPatchError) as err:
        loader()(dict(results))
    assert err.value.path == path
    assert str(err.value).startswith(f'{path}: ')
