"""Run a function in several gloo processes on localhost (test helper)."""
import socket
from datetime import timedelta

import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _entry(rank, world_size, port, worker, args):
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        'gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
        world_size=world_size, timeout=timedelta(seconds=60))
    try:
        worker(rank, world_size, *args)
    finally:
        if torch_dist.is_initialized():  # the worker may have closed it
            torch_dist.destroy_process_group()


def run_distributed(worker, world_size: int = 2, *args) -> None:
    """Run ``worker(rank, world_size, *args)`` in ``world_size`` gloo
    processes on localhost; an assertion failing in any process fails the
    calling test. ``worker`` must be a module-level function."""
    mp.spawn(_entry, args=(world_size, _free_port(), worker, args),
             nprocs=world_size, join=True)
