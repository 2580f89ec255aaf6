"""hlss_plugin.utils.dist: single-process behaviour and a 2-process gloo check
of gather's forward and backward."""
import pytest
import torch
import torch.distributed as torch_dist

from hlss_plugin.utils import dist

from ..dist_helpers import run_distributed


def test_single_process_defaults():
    assert not torch_dist.is_initialized()
    assert dist.rank() == 0
    assert dist.world_size() == 1
    assert not dist.is_distributed()
    x = torch.randn(3, 2, requires_grad=True)
    assert dist.gather(x) is x  # identity, gradient flows unchanged
    ids = torch.arange(3)
    out = dist.gather_no_grad(ids)
    assert torch.equal(out, ids)
    assert not dist.gather_no_grad(x).requires_grad


@pytest.mark.parametrize('fn', [dist.gather, dist.gather_no_grad])
def test_gather_errors(fn):
    with pytest.raises(ValueError, match='0-d tensor'):
        fn(torch.tensor(1.0))
    with pytest.raises(ValueError, match='torch.Tensor'):
        fn([1.0, 2.0])


_SIZES = (2, 3)  # uneven on purpose


def _local_rows(r):
    start = sum(_SIZES[:r])
    x = torch.arange(start * 4, (start + _SIZES[r]) * 4, dtype=torch.float64)
    return x.reshape(-1, 4)


def _gather_worker(rank, world_size):
    assert dist.rank() == rank and dist.world_size() == world_size == 2
    assert dist.is_distributed()
    total = sum(_SIZES)
    full = torch.cat([_local_rows(r) for r in range(world_size)])

    # forward: concatenation in rank order, uneven sizes
    x = _local_rows(rank).requires_grad_(True)
    gathered = dist.gather(x)
    assert gathered.shape == (total, 4)
    assert torch.equal(gathered.detach(), full)

    # backward: the gradient arriving at the gathered tensor is summed over
    # ranks and each rank gets its own rows
    def weights(r):
        return (r + 1.0) * torch.arange(
            total * 4, dtype=torch.float64).reshape(total, 4) + r

    (gathered * weights(rank)).sum().backward()
    start = sum(_SIZES[:rank])
    expected = (weights(0) + weights(1))[start:start + _SIZES[rank]]
    assert torch.equal(x.grad, expected)

    # a non-linear use: d/dx of sum_r (r + 1) * sum(g ** 2) = 2 * 3 * x
    y = _local_rows(rank).requires_grad_(True)
    ((rank + 1.0) * (dist.gather(y)**2).sum()).backward()
    assert torch.allclose(y.grad, 6.0 * _local_rows(rank))

    # integer ids without gradient
    ids = torch.arange(_SIZES[rank], dtype=torch.long) + 10 * rank
    all_ids = dist.gather_no_grad(ids)
    assert all_ids.dtype == torch.long and not all_ids.requires_grad
    assert all_ids.tolist() == [0, 1, 10, 11, 12]


def test_gather_two_processes():
    run_distributed(_gather_worker, 2)


def _broadcast_worker(rank, world_size):
    got = dist.broadcast_object({'from': rank} if rank == 0 else None)
    assert got == {'from': 0}, (rank, got)


def test_broadcast_object_two_processes():
    assert dist.broadcast_object([1, 2]) == [1, 2]  # no group: unchanged
    run_distributed(_broadcast_worker, 2)


def _close_after_ddp(rank, world_size, clean):
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
    model(torch.randn(4, 3)).sum().backward()
    del model  # the reducer holds the backend until collected
    dist.close_process_group(clean=clean)
    assert not torch_dist.is_initialized()
    dist.close_process_group(clean=clean)  # no group: a no-op


@pytest.mark.parametrize('clean', [True, False])
def test_close_process_group_two_processes(clean):
    run_distributed(_close_after_ddp, 2, clean)


def test_close_process_group_without_a_group():
    dist.close_process_group()
    assert not torch_dist.is_initialized()
