"""Measuring a phase of ``tools/benchmarks/benchmark_throughput.py``: peak
memory, best-of-rounds timing, thread count and the device's name."""
import math
import platform
import time
from contextlib import contextmanager
from typing import Callable, Optional, Tuple

import torch

__all__ = ['PeakMemory', 'device_name', 'rounded', 'sync', 'threads',
           'timed']


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only; no-op elsewhere)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of a phase in MiB (CUDA allocator or CPU VmHWM).

    On CUDA it reads ``torch.cuda.max_memory_allocated``; on a Linux CPU
    the peak resident set size of this process (VmHWM, reset through
    ``/proc/self/clear_refs``). Elsewhere :attr:`kind` is None and
    :attr:`reason` says why.

    Args:
        device (torch.device): The device the phase runs on.

    Example:
        >>> memory = PeakMemory(torch.device('cpu'))
        >>> memory.reset()
        >>> mib = memory.peak_mib()  # None when kind is None
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.kind, self.reason = None, None
        if device.type == 'cuda':
            self.kind = 'cuda_max_memory_allocated'
        elif device.type == 'cpu' and self._hwm_kib() is not None:
            try:
                with open('/proc/self/clear_refs', 'w') as f:
                    f.write('5')
                self.kind = 'cpu_process_peak_rss'
            except OSError as err:
                self.reason = f'cannot reset VmHWM ({err})'
        else:
            self.reason = (f'no peak-memory counter for {device.type} '
                           f'(Linux /proc or CUDA needed)')

    @staticmethod
    def _hwm_kib():
        try:
            with open('/proc/self/status') as f:
                for line in f:
                    if line.startswith('VmHWM:'):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def reset(self) -> None:
        """Start a new phase: reset the peak counter."""
        if self.kind == 'cuda_max_memory_allocated':
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind == 'cpu_process_peak_rss':
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')

    def peak_mib(self) -> Optional[float]:
        """The peak since the last :meth:`reset` in MiB (None unmeasured)."""
        if self.kind == 'cuda_max_memory_allocated':
            sync(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind == 'cpu_process_peak_rss':
            return self._hwm_kib() / 1024
        return None


@contextmanager
def threads(n: int):
    """Run the block with ``n`` torch threads, then restore the count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def rounded(value, digits: int = 1) -> Optional[float]:
    """``value`` rounded to ``digits`` as a float; None stays None."""
    return None if value is None else round(float(value), digits)


def timed(fn: Callable[[], None], steps: int, warmup: int, rounds: int,
          device: torch.device,
          memory: PeakMemory) -> Tuple[float, Optional[float]]:
    """Best time of ``rounds`` rounds of ``steps`` calls (after
    ``warmup`` calls) and the peak memory over all rounds.

    Args:
        fn (Callable): One step.
        steps (int): Calls per timed round.
        warmup (int): Untimed calls first.
        rounds (int): Timed rounds; the fastest is kept.
        device (torch.device): Synchronised around each round.
        memory (PeakMemory): Reset before each round.

    Returns:
        tuple[float, float | None]: Seconds of the best round and the peak
        memory in MiB (None when not measured).
    """
    for _ in range(warmup):
        fn()
    best, peak = math.inf, None
    for _ in range(rounds):
        sync(device)
        memory.reset()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
        mib = memory.peak_mib()
        peak = mib if peak is None else max(peak, mib)
    return best, peak


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, else the processor (or machine) name."""
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()
