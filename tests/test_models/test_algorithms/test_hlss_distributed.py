"""HLSS under DDP (2 gloo processes) equals one process on the whole batch.

Each rank holds two of the four patients (as HierarchicalSampler gives
them). BN runs in eval mode so batch statistics do not differ between the
split and the whole batch; everything is float64.
"""
import torch

from ...dist_helpers import run_distributed
from .hierarchy_batch import grid_batch
from .test_hlss import build, text_files  # noqa: F401


def _model(files):
    model = build(files)
    return model.double().eval()


def _batch():
    views, samples = grid_batch(P=4)
    return [v.double() for v in views], samples


def _losses_and_grads(model, views, samples):
    losses = model(views, samples, mode='loss')
    model.zero_grad()
    sum(losses.values()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    return {k: v.detach() for k, v in losses.items()}, grads


def _worker(rank, world_size, files, out_dir):
    from torch.nn.parallel import DistributedDataParallel as DDP
    model = _model(files)
    ddp = DDP(model, device_ids=None, broadcast_buffers=False)
    views, samples = _batch()
    half = slice(8 * rank, 8 * (rank + 1))  # patients 2r, 2r + 1
    losses = ddp([v[half] for v in views], samples[half], mode='loss')
    ddp.zero_grad()
    sum(losses.values()).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()
             if p.grad is not None}
    torch.save({'losses': {k: v.detach() for k, v in losses.items()},
                'grads': grads}, f'{out_dir}/rank{rank}.pt')


def test_two_gloo_processes_equal_single_process(text_files, tmp_path):  # noqa: F811,E501
    run_distributed(_worker, 2, text_files, str(tmp_path))
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True)
             for r in range(2)]
    ref_losses, ref_grads = _losses_and_grads(_model(text_files), *_batch())
    for key, ref in ref_losses.items():  # HVC and HA: global on every rank
        for r in ranks:
            assert torch.allclose(r['losses'][key], ref, rtol=1e-5), key
    assert ref_grads.keys() == ranks[0]['grads'].keys()
    for name, ref in ref_grads.items():
        for r in ranks:  # DDP leaves the averaged gradient on every rank
            got = r['grads'][name]
            assert torch.allclose(got, ref, rtol=1e-5,
                                  atol=1e-9 * ref.abs().max()), name
