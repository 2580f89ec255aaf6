"""AmpFallbackOptimWrapperConstructor / CPUAutocastOptimWrapper: an
``AmpOptimWrapper`` config builds and trains on a machine without a GPU."""
import pytest
import torch
from mmengine.optim import OptimWrapper, build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import nn

import hlss_plugin  # noqa: F401
from hlss_plugin.engine.optim_wrappers import (
    AmpFallbackOptimWrapperConstructor, CPUAutocastOptimWrapper,
    amp_device_available)
from hlss_plugin.engine.optim_wrappers import \
    amp_fallback_optim_wrapper_constructor as module

needs_cpu_only = pytest.mark.skipif(amp_device_available(),
                                    reason='tests the CPU-only fallback')


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 36,
                                                                      2))


def amp_cfg(**kwargs):
    cfg = dict(type='AmpOptimWrapper', dtype='bfloat16',
               constructor='AmpFallbackOptimWrapperConstructor',
               optimizer=dict(type='SGD', lr=0.1))
    cfg.update(kwargs)
    return cfg


@needs_cpu_only
def test_bf16_amp_config_becomes_cpu_autocast_and_trains():
    init_default_scope('mmpretrain')
    net = model()
    wrapper = build_optim_wrapper(net, amp_cfg(loss_scale='dynamic'))
    assert type(wrapper) is CPUAutocastOptimWrapper
    before = [p.detach().clone() for p in net.parameters()]
    with wrapper.optim_context(net):
        out = net(torch.rand(2, 3, 8, 8))
        assert out.dtype == torch.bfloat16  # autocast is on
    wrapper.update_params(out.float().pow(2).mean())
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before,
                                                     net.parameters()))
    # outside the context nothing is cast
    assert net(torch.rand(2, 3, 8, 8)).dtype == torch.float32


@needs_cpu_only
@pytest.mark.parametrize('dtype', ['float16', None])
def test_other_dtypes_fall_back_to_fp32(dtype):
    init_default_scope('mmpretrain')
    net = model()
    wrapper = build_optim_wrapper(net, amp_cfg(dtype=dtype))
    assert type(wrapper) is OptimWrapper
    with wrapper.optim_context(net):
        assert net(torch.rand(1, 3, 8, 8)).dtype == torch.float32


def test_paramwise_cfg_and_other_wrappers_pass_through():
    init_default_scope('mmpretrain')
    net = model()
    wrapper = build_optim_wrapper(net, dict(
        type='OptimWrapper',
        constructor='AmpFallbackOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.1, weight_decay=1e-4),
        paramwise_cfg=dict(bias_lr_mult=2.0)))
    assert type(wrapper) is OptimWrapper
    lrs = sorted({g['lr'] for g in wrapper.optimizer.param_groups})
    assert lrs == [0.1, 0.2]


def test_device_present_builds_the_configured_wrapper(monkeypatch):
    monkeypatch.setattr(module, 'amp_device_available', lambda: True)
    cons = AmpFallbackOptimWrapperConstructor(amp_cfg())
    assert cons.fallback_cfg() is None
    monkeypatch.setattr(module, 'amp_device_available', lambda: False)
    cfg = AmpFallbackOptimWrapperConstructor(amp_cfg()).fallback_cfg()
    assert cfg['type'] is CPUAutocastOptimWrapper
    assert 'dtype' not in cfg and 'optimizer' not in cfg


def test_cpu_autocast_wrapper_rejects_fp16():
    net = model()
    with pytest.raises(ValueError, match='bfloat16'):
        CPUAutocastOptimWrapper(
            dtype='float16',
            optimizer=torch.optim.SGD(net.parameters(), lr=0.1))
