"""VICRegHead: Lightly's VICRegLoss against a NumPy formula written from the
VICReg paper / released code, argument and input errors, MMPretrain's
BarlowTwins flow with this head, and a 2-process gloo + DDP gradient test."""
import copy

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import hlss_plugin  # noqa: F401
from hlss_plugin.models.heads import VICRegHead
from ...dist_helpers import run_distributed


def vicreg_np(a, b, lam=25.0, mu=25.0, nu=1.0, eps=1e-4):
    """Bardes et al. (2022): invariance = mean squared error; variance =
    hinge on the (unbiased) per-dimension std, averaged over dimensions and
    over the two branches; covariance = squared off-diagonal entries of each
    branch's (unbiased) covariance matrix summed and divided by D."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n, d = a.shape
    invariance = ((a - b) ** 2).mean()

    def variance(x):
        std = np.sqrt(x.var(axis=0, ddof=1) + eps)
        return np.maximum(0.0, 1.0 - std).mean()

    def covariance(x):
        xc = x - x.mean(axis=0)
        cov = xc.T @ xc / (n - 1)
        off = cov - np.diag(np.diag(cov))
        return (off ** 2).sum() / d

    return (lam * invariance + mu * (variance(a) + variance(b)) / 2 +
            nu * (covariance(a) + covariance(b)))


@pytest.mark.parametrize('scale, weights', [
    (0.3, dict(lambda_param=25, mu_param=25, nu_param=1)),   # hinge active
    (3.0, dict(lambda_param=25, mu_param=25, nu_param=1)),   # hinge inactive
    (0.5, dict(lambda_param=1.5, mu_param=0.0, nu_param=4.0, eps=1e-2)),
])
def test_loss_equals_numpy_formula(scale, weights):
    gen = torch.Generator().manual_seed(0)
    a = scale * torch.randn(16, 6, generator=gen, dtype=torch.float64)
    b = a + 0.2 * torch.randn(16, 6, generator=gen, dtype=torch.float64)
    head = VICRegHead(loss=weights)
    kwargs = dict(lam=weights['lambda_param'], mu=weights['mu_param'],
                  nu=weights['nu_param'], eps=weights.get('eps', 1e-4))
    got = head.loss(a, b).item()
    assert got == pytest.approx(vicreg_np(a.numpy(), b.numpy(), **kwargs),
                                rel=1e-10)
    # each term matters: dropping one weight changes the value
    assert got != pytest.approx(vicreg_np(a.numpy(), b.numpy(),
                                          **dict(kwargs, nu=0.0)), rel=1e-6)


def test_defaults_are_the_paper_weights():
    head = VICRegHead()
    loss = head.loss_module
    assert (loss.lambda_param, loss.mu_param, loss.nu_param) == (25, 25, 1)
    assert loss.gather_distributed is False
    a, b = torch.randn(8, 4), torch.randn(8, 4)
    assert head.loss(a, b).item() == pytest.approx(
        vicreg_np(a.numpy(), b.numpy()), rel=1e-5)


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"unknown loss argument\(s\) "
                       r"\['lambd'\].*accepts \['lambda_param'"):
        VICRegHead(loss=dict(lambd=25))
    with pytest.raises(ValueError, match='loss.mu_param must be a finite '
                       'number >= 0'):
        VICRegHead(loss=dict(mu_param=-1))
    with pytest.raises(ValueError, match='loss.nu_param'):
        VICRegHead(loss=dict(nu_param=float('nan')))
    with pytest.raises(ValueError, match='loss.eps must be a finite number '
                       '> 0'):
        VICRegHead(loss=dict(eps=0))
    with pytest.raises(ValueError, match='gather_distributed must be True '
                       'or False'):
        VICRegHead(loss=dict(gather_distributed='yes'))
    with pytest.raises(ValueError, match='loss must be a dict'):
        VICRegHead(loss=25)


def test_input_errors():
    head = VICRegHead()
    with pytest.raises(ValueError, match='same shape'):
        head.loss(torch.randn(4, 8), torch.randn(4, 6))
    with pytest.raises(ValueError, match='N >= 2'):
        head.loss(torch.randn(1, 8), torch.randn(1, 8))
    with pytest.raises(ValueError, match=r'z2 must be a floating point '
                       r'tensor \(N, D\)'):
        head.loss(torch.randn(4, 8), torch.ones(4, 8, dtype=torch.long))
    with pytest.raises(ValueError, match='z1 must be'):
        head.loss(torch.randn(8), torch.randn(8))


def test_barlowtwins_with_vicreg_head_trains():
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='BarlowTwins',
        data_preprocessor=dict(type='SelfSupDataPreprocessor',
                               mean=[0.5] * 3, std=[0.25] * 3),
        backbone=dict(type='ResNet', depth=18, base_channels=8,
                      stem_channels=8),
        neck=dict(type='NonLinearNeck', in_channels=64, hid_channels=32,
                  out_channels=32, num_layers=3, with_last_bn=False,
                  with_avg_pool=True, norm_cfg=dict(type='BN1d')),
        head=dict(type='VICRegHead', loss=dict(lambda_param=25,
                                               mu_param=25, nu_param=1))))
    model.init_weights()
    gen = torch.Generator().manual_seed(1)
    views = [torch.rand(6, 3, 32, 32, generator=gen) for _ in range(2)]
    data = model.data_preprocessor(
        dict(inputs=views, data_samples=[DataSample() for _ in range(6)]),
        True)
    losses = model(**data, mode='loss')
    assert list(losses) == ['loss']
    with torch.no_grad():  # same flow by hand (train-mode BN, per view)
        z = [model.neck(model.backbone(v))[0] for v in data['inputs']]
    ref = vicreg_np(z[0].numpy(), z[1].numpy())
    assert losses['loss'].item() == pytest.approx(ref, rel=1e-4)
    losses['loss'].backward()
    assert model.backbone.conv1.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------
# Distributed: 2 gloo processes, DDP gradient == single-process gradient
# ----------------------------------------------------------------------------


def _dist_data():
    gen = torch.Generator().manual_seed(3)
    x1 = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    x2 = x1 + 0.3 * torch.randn(8, 5, generator=gen, dtype=torch.float64)
    torch.manual_seed(4)
    net = nn.Linear(5, 4).double()
    return x1, x2, net


def _vicreg_worker(rank, world_size):
    x1, x2, net = _dist_data()
    single = copy.deepcopy(net)
    VICRegHead(loss=dict(gather_distributed=False)).loss(
        single(x1), single(x2)).backward()

    per_rank = x1.shape[0] // world_size
    part = slice(rank * per_rank, (rank + 1) * per_rank)
    ddp = nn.parallel.DistributedDataParallel(net, device_ids=None)
    VICRegHead(loss=dict(gather_distributed=True)).loss(
        ddp(x1[part]), ddp(x2[part])).backward()
    for name, param in net.named_parameters():
        ref = dict(single.named_parameters())[name].grad
        assert torch.allclose(param.grad, ref, atol=1e-10), (rank, name)

    # without gathering the variance/covariance terms are local: different
    local = copy.deepcopy(_dist_data()[2])
    ddp_local = nn.parallel.DistributedDataParallel(local, device_ids=None)
    VICRegHead(loss=dict(gather_distributed=False)).loss(
        ddp_local(x1[part]), ddp_local(x2[part])).backward()
    assert not torch.allclose(local.weight.grad,
                              single.weight.grad, atol=1e-6)


def test_gather_distributed_gives_single_process_gradients():
    run_distributed(_vicreg_worker, 2)
