"""ChannelsLastHook converts the (unwrapped) model's 4-D weights."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MMLogger
from torch import nn

import hlss_plugin  # noqa: F401
from hlss_plugin.engine.hooks import ChannelsLastHook


def runner(model):
    return SimpleNamespace(model=model,
                           logger=MMLogger.get_instance('test_cl_hook'))


def test_converts_conv_weights_and_keeps_values():
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8),
                        nn.Conv2d(8, 4, 1), nn.Flatten(), nn.Linear(4, 2))
    conv = net[0]
    before = conv.weight.detach().clone()
    param = conv.weight
    ChannelsLastHook().before_run(runner(net))
    assert conv.weight is param  # optimizer references stay valid
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert not conv.weight.is_contiguous()
    assert net[2].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(conv.weight, before)
    x = torch.rand(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    assert net[0](x).is_contiguous(memory_format=torch.channels_last)


def test_disabled_leaves_model_and_checks_argument():
    net = nn.Conv2d(3, 8, 3)
    ChannelsLastHook(enabled=False).before_run(runner(net))
    assert net.weight.is_contiguous()
    with pytest.raises(ValueError, match='enabled'):
        ChannelsLastHook(enabled='yes')
