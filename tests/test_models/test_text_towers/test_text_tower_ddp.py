"""Two gloo processes: rank 0 embeds the attributes (or reads the cache) and
broadcasts; rank 1 never loads the text model and gets identical values."""
import os
import socket
from datetime import timedelta

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp

from hlss_plugin.models.text_towers.base_text_tower import BaseTextTower
from hlss_plugin.models.text_towers.hf_sentence_text_tower import \
    HFSentenceTextTower
from hlss_plugin.text import load_attributes


class FailingTower(BaseTextTower):

    def cache_identity(self):
        return {}

    def _load_backend(self):
        raise ValueError('broken on purpose')

    def encode(self, texts):
        return self.backend(texts)


def _forbid_loading(self):
    raise AssertionError(f'rank {torch_dist.get_rank()} loaded the model')


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _worker(rank, port, out_dir):
    os.environ.update(HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo',
                                  init_method=f'tcp://127.0.0.1:{port}',
                                  rank=rank,
                                  world_size=2,
                                  timeout=timedelta(seconds=60))
    try:
        if rank == 1:
            HFSentenceTextTower._load_backend = _forbid_loading
        patch = load_attributes('srh')['patch']
        attrs = {k: patch[k] for k in list(patch)[:8]}
        cache = os.path.join(out_dir, 'cache')

        tower = HFSentenceTextTower(cache_dir=cache)
        computed = tower.embed_attributes(attrs)
        computed_loaded = tower.backend_loaded

        # Second start: rank 0 reads the cache, nobody loads the model.
        HFSentenceTextTower._load_backend = _forbid_loading
        again = HFSentenceTextTower(cache_dir=cache)
        cached = again.embed_attributes(attrs)

        # An error on rank 0 reaches rank 1 instead of a hang.
        try:
            FailingTower().embed_attributes({'a': ['b c']})
        except (ValueError, RuntimeError) as exc:
            error = f'{type(exc).__name__}: {exc}'
        else:
            error = ''
        torch.save(
            {
                'computed': computed,
                'computed_loaded': computed_loaded,
                'cached': cached,
                'cached_loaded': again.backend_loaded,
                'error': error,
                'cache_files': sorted(os.listdir(cache)),
            }, os.path.join(out_dir, f'rank{rank}.pt'))
    finally:
        torch_dist.destroy_process_group()


def test_rank0_embeds_and_broadcasts(tmp_path):
    # fork: the children reuse this process's imports (spawn would re-import
    # torch, mmpretrain and transformers in each, tripling the run time).
    # Each child sets torch to one thread first, as DataLoader workers do.
    # CUDA cannot survive a fork: spawn if this process has initialised it.
    method = 'spawn' if torch.cuda.is_initialized() else 'fork'
    mp.start_processes(_worker,
                       args=(_free_port(), str(tmp_path)),
                       nprocs=2,
                       join=True,
                       start_method=method)
    r0, r1 = (torch.load(tmp_path / f'rank{r}.pt', weights_only=True)
              for r in range(2))
    assert r0['computed'].shape == (8, 384)
    torch.testing.assert_close(r0['computed'].norm(dim=1), torch.ones(8))
    assert torch.equal(r0['computed'], r1['computed'])
    assert torch.equal(r0['cached'], r0['computed'])
    assert torch.equal(r1['cached'], r0['computed'])
    assert r0['computed_loaded'] and not r1['computed_loaded']
    assert not r0['cached_loaded'] and not r1['cached_loaded']
    assert len(r0['cache_files']) == 1  # written once, by rank 0
    assert r0['error'] == 'ValueError: broken on purpose'
    assert r1['error'] == ('RuntimeError: FailingTower.embed_attributes '
                           'failed on rank 0: ValueError: broken on purpose')
