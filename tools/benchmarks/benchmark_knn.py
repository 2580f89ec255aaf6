#!/usr/bin/env python
"""Time the chunked kNN search of ``HierarchicalKNNMetric`` and measure its
peak extra memory.

Random unit vectors stand in for embeddings (the cost does not depend on
their values): ``--queries`` × ``--bank`` × ``--dim`` (default 10k × 50k ×
2048, a ResNet-50 embedding), ``k=200``, 7 classes::

    python tools/benchmarks/benchmark_knn.py                      # CPU, 10k x 50k x 2048
    python tools/benchmarks/benchmark_knn.py --quick              # < 30 s smoke run
    python tools/benchmarks/benchmark_knn.py --device cuda --queries 100000 --bank 300000

Peak extra memory is what the search allocates beyond its inputs: on CUDA
``torch.cuda.max_memory_allocated`` minus the memory held before the call;
on the CPU the growth of the process's peak resident set (``VmHWM`` in
``/proc/self/status``, reset through ``/proc/self/clear_refs`` before the
call), since torch's CPU allocations bypass ``tracemalloc``. The budget
(``--max-mib``, default 512) is what ``knn_scores`` plans its chunks for.

The last line of the output is one JSON object with every number.
"""
import argparse
import json
import os.path as osp
import sys
import time
import warnings

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

import torch  # noqa: E402

from hlss_plugin.evaluation.functional.knn import (  # noqa: E402
    knn_chunk_sizes, knn_scores)
from hlss_plugin.utils.arg_checks import positive_int  # noqa: E402

QUICK = dict(queries=2000, bank=10000, dim=2048)
GPU_SCALE = ('python tools/benchmarks/benchmark_knn.py --device cuda '
             '--queries 100000 --bank 300000 --dim 2048')


def parse_args(argv=None):
    """Parse the command line (``sys.argv[1:]`` when ``argv`` is None)."""
    parser = argparse.ArgumentParser(
        description=' '.join(__doc__.split('\n\n')[0].split()))
    parser.add_argument('--queries', type=positive_int, default=10000,
                        help='query embeddings (default 10000)')
    parser.add_argument('--bank', type=positive_int, default=50000,
                        help='bank embeddings (default 50000)')
    parser.add_argument('--dim', type=positive_int, default=2048,
                        help='embedding size (default 2048, ResNet-50)')
    parser.add_argument('--k', type=positive_int, default=200,
                        help='neighbours (default 200)')
    parser.add_argument('--classes', type=positive_int, default=7,
                        help='classes of the random labels (default 7)')
    parser.add_argument('--max-mib', type=positive_int, default=512,
                        help='memory budget of the search in MiB')
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu',
                        help='where the search runs (default cpu)')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='torch CPU threads (default: torch\'s choice)')
    parser.add_argument('--quick', action='store_true',
                        help=f'{QUICK["queries"]} x {QUICK["bank"]} x '
                        f'{QUICK["dim"]} (under 30 s on 2 cores)')
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: torch.cuda.is_available() is False on '
                     'this machine; use --device cpu.')
    return args


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def random_unit(n: int, dim: int, generator: torch.Generator,
                device: str) -> torch.Tensor:
    x = torch.randn(n, dim, generator=generator)
    return torch.nn.functional.normalize(x, dim=1).to(device)


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    query = random_unit(args.queries, args.dim, gen, args.device)
    bank = random_unit(args.bank, args.dim, gen, args.device)
    labels = torch.randint(0, args.classes, (args.bank, ),
                           generator=gen).to(args.device)
    max_bytes = args.max_mib * 2**20
    chunks = knn_chunk_sizes(args.queries, args.bank, args.dim, args.k,
                             max_bytes, 4, args.device)
    # Warm-up (BLAS / CUDA initialisation) on a slice.
    knn_scores(query[:64], bank[:max(args.k, 1024)],
               labels[:max(args.k, 1024)], args.classes, k=args.k)
    if args.device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        peak_ok = True
    else:
        peak_ok = _reset_peak_rss()
        before = _status_kib('VmRSS') * 1024
    start = time.perf_counter()
    scores = knn_scores(query, bank, labels, args.classes, k=args.k,
                        max_bytes=max_bytes)
    if args.device == 'cuda':
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if args.device == 'cuda':
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _status_kib('VmHWM') * 1024 - before
    return dict(
        device=(torch.cuda.get_device_name() if args.device == 'cuda'
                else f'cpu ({torch.get_num_threads()} threads)'),
        queries=args.queries, bank=args.bank, dim=args.dim, k=args.k,
        classes=args.classes, query_chunk=chunks[0], bank_chunk=chunks[1],
        seconds=round(seconds, 3),
        queries_per_s=round(args.queries / seconds, 1),
        peak_extra_mib=(round(peak / 2**20, 1) if peak_ok else None),
        budget_mib=args.max_mib,
        scores_finite=bool(torch.isfinite(scores).all()))


def main(argv=None) -> dict:
    args = parse_args(argv)
    result = run(args)
    print(f'kNN search, {result["device"]}: {args.queries} queries x '
          f'{args.bank} bank x {args.dim}-d, k={args.k}')
    print(f'  chunks: {result["query_chunk"]} queries x '
          f'{result["bank_chunk"]} bank rows (budget {args.max_mib} MiB)')
    print(f'  time: {result["seconds"]:.2f} s '
          f'({result["queries_per_s"]:.0f} queries/s)')
    peak = result['peak_extra_mib']
    print(f'  peak extra memory: '
          f'{"n/a" if peak is None else f"{peak:.1f} MiB"}')
    print(f'  GPU scale (100k x 300k x 2048): {GPU_SCALE}')
    print(json.dumps(result))
    return result


if __name__ == '__main__':
    main()
