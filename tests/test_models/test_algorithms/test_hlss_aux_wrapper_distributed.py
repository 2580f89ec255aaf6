"""HLSSAuxWrapper under DDP (2 gloo processes): the HLSS terms and their
gradients equal one process on the whole batch.

The inner algorithm is SimCLR (one sample-major backbone call). Each rank
holds two of the four patients; BN runs in eval mode and everything is
float64. Only the HLSS terms are compared: MMPretrain's SimCLR gathers
without summing gradients across ranks, which is its own business.
"""
import torch

from ...dist_helpers import run_distributed
from .hierarchy_batch import grid_batch
from .test_hlss_aux_wrapper import LEVELS, algorithm_cfg, build, \
    head_cfg, text_files  # noqa: F401


def _model(files):
    cfg = algorithm_cfg('SimCLR')
    cfg['neck']['norm_cfg'] = dict(type='BN1d')  # SyncBN needs a GPU
    heads = {lv: dict(head_cfg(files[0]), hvc_loss=dict(
        type='HierarchicalSupConLoss', temperature=0.07,
        gather_distributed=True), ha_loss=dict(
            type='HierarchicalAlignmentLoss', temperature=0.5,
            gather_distributed=True)) for lv in LEVELS}
    return build(files, cfg, heads=heads).double().eval()


def _batch():
    views, samples = grid_batch(P=4)
    return [v.double() for v in views], samples


def _hlss_terms(losses):
    prefixes = tuple(f'loss_{lv}_' for lv in LEVELS)
    return {k: v for k, v in losses.items() if k.startswith(prefixes)}


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters()
            if p.grad is not None}


def _worker(rank, world_size, files, out_dir):
    from torch.nn.parallel import DistributedDataParallel as DDP
    model = _model(files)
    ddp = DDP(model, device_ids=None, broadcast_buffers=False,
              find_unused_parameters=True)
    views, samples = _batch()
    half = slice(8 * rank, 8 * (rank + 1))  # patients 2r, 2r + 1
    terms = _hlss_terms(ddp([v[half] for v in views], samples[half],
                            mode='loss'))
    ddp.zero_grad()
    sum(terms.values()).backward()
    torch.save({'losses': {k: v.detach() for k, v in terms.items()},
                'grads': _grads(model)}, f'{out_dir}/rank{rank}.pt')


def test_hlss_terms_under_ddp_equal_single_process(text_files,  # noqa: F811
                                                   tmp_path):
    run_distributed(_worker, 2, text_files, str(tmp_path))
    ranks = [torch.load(tmp_path / f'rank{r}.pt', weights_only=True)
             for r in range(2)]
    model = _model(text_files)
    terms = _hlss_terms(model(*_batch(), mode='loss'))
    assert len(terms) == 2 * len(LEVELS)
    model.zero_grad()
    sum(terms.values()).backward()
    ref_grads = _grads(model)
    for key, ref in terms.items():  # computed globally on every rank
        for r in ranks:
            assert torch.allclose(r['losses'][key], ref.detach(),
                                  rtol=1e-5), key
    assert any(n.startswith('algorithm.backbone.') for n in ref_grads)
    assert set(ref_grads) <= set(ranks[0]['grads'])
    for name in set(ranks[0]['grads']) - set(ref_grads):
        # DDP reduces zeros for parameters unused by the HLSS terms (neck)
        assert name.startswith('algorithm.neck.'), name
        assert not ranks[0]['grads'][name].any(), name
    for name, ref in ref_grads.items():
        for r in ranks:  # DDP leaves the averaged gradient on every rank
            assert torch.allclose(r['grads'][name], ref, rtol=1e-5,
                                  atol=1e-9 * ref.abs().max()), name
