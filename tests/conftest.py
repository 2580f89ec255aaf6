"""Fixtures shared by several test modules."""
import importlib.util
import os.path as osp

import pytest
import torch

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture(scope='session')
def clip_dir(tmp_path_factory):
    """A random-weight open_clip RN50 (QuickGELU) converted by
    tools/model_converters/convert_clip_rn50.py: stands in for the CC12M / OpenAI weights."""
    import open_clip
    root = tmp_path_factory.mktemp('clip')
    torch.manual_seed(0)
    model = open_clip.create_model('RN50-quickgelu', pretrained=None)
    torch.save(model.state_dict(), str(root / 'rn50.pt'))
    spec = importlib.util.spec_from_file_location(
        'convert_clip_rn50', osp.join(REPO, 'tools', 'model_converters', 'convert_clip_rn50.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.convert(str(root / 'rn50.pt'), str(root / 'converted'))
    return str(root / 'converted')
