"""Throughput of HLSS training: input pipeline, training step, end to end.

One run on one machine measures

1. **CPU input pipeline, views/s per DataLoader worker** (one thread,
   ``torch.set_num_threads(1)``), on (2, 300, 300) uint16 SRH TIFFs:

   - ``reference``: the reference-style per-sample torchvision pipeline
     (:mod:`hlss_plugin.augmentation.reference_pipeline`);
   - ``per_sample``: our per-sample pipeline (``LoadSRHPatch`` +
     ``SRHThirdChannel`` + ``MultiView(SRHAugment)`` + ``PackInputs``);
   - ``ours``: what a worker does for the batched path (``LoadSRHPatchRaw``
     + ``PackInputs``: decode only); each decoded patch becomes V views on
     the device, so views/s = patches/s x V.

2. **Training step on the device present** (CUDA if available, else CPU),
   same precision, batch and memory format:

   - ``backbone``: backbone + pooling forward, backward and optimizer step
     on ready, normalised views (B x V images);
   - ``hlss``: ``model.train_step`` of HLSS on a uint16 batch in (pinned)
     host memory: copy to the device, batched augmentation
     (``SRHBatchAugmentPreprocessor``), backbone, the three text-aligned
     heads and their losses, backward, optimizer step;
   - the batched augmentation alone (``augment_views_per_s_device``).

3. **End to end**: the real DataLoader (``OpenSRHDataset`` +
   ``HierarchicalSampler`` + the config's uint16 worker pipeline, N
   workers, pinned memory) feeding the HLSS step, on synthetic TIFFs.

and the peak memory of each step: ``torch.cuda.max_memory_allocated`` on
CUDA; on the CPU the peak resident set size of this process (VmHWM, reset
before each phase through ``/proc/self/clear_refs``), which includes the
interpreter and libraries. Images/s count views (images through the
backbone). Mixed precision comes from the optimizer wrapper, as in
training: ``AmpOptimWrapper(dtype='bfloat16')`` on a GPU,
``CPUAutocastOptimWrapper`` on a CPU (both built by
``AmpFallbackOptimWrapperConstructor``).

The text tower only initialises the heads; by default the benchmark uses
random 384-d attribute embeddings (the size of the default MiniLM tower),
so it needs no text model (``--text-tower config`` uses the config's).

The last line printed is one JSON object with every figure.

The measurement lives in :mod:`hlss_plugin.benchmark.throughput`
(:func:`run_throughput`), :mod:`hlss_plugin.benchmark.throughput_setup`
(config, model, optimizer, data) and :mod:`hlss_plugin.benchmark.measure`
(timing, peak memory).

Usage (from the repository root)::

    python tools/benchmarks/benchmark_throughput.py --quick          # < 1 min, 2 cores
    python tools/benchmarks/benchmark_throughput.py --device cuda --precision bf16 \\
        --channels-last --workers 12                      # paper setting
"""
import argparse
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

from hlss_plugin.benchmark.throughput import run_throughput  # noqa: E402
from hlss_plugin.benchmark.throughput_setup import load_config  # noqa: E402
from hlss_plugin.utils.arg_checks import (non_negative_int,  # noqa: E402
                                          positive_int)

DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'mmpretrain',
                          'hlss_srh_fast.py')
#: Settings of ``--quick`` (each can still be overridden on the command line).
QUICK = dict(batch_size=8, steps=2, warmup=1, rounds=1, workers=1,
             crop_size=32, depth=18, base_channels=16, patches=8, repeats=1,
             patch_size=64, e2e_steps=3)
FULL = dict(batch_size=None, steps=10, warmup=5, rounds=3, workers=None,
            crop_size=None, depth=None, base_channels=None, patches=96,
            repeats=3, patch_size=300, e2e_steps=48)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='training config (default hlss_srh_fast.py)')
    parser.add_argument('--quick', action='store_true',
                        help='tiny sizes: a narrow ResNet-18 (16 base '
                        'channels), 32 px views of 64 px patches, 8 patches '
                        'per step; runs in under a minute on 2 CPU cores')
    parser.add_argument('--device', default=None,
                        help='cuda, cuda:1, cpu ... (default: cuda if '
                        'available, else cpu)')
    parser.add_argument('--batch-size', type=positive_int, default=None,
                        help='patches per step, a multiple of slides x '
                        'patches per patient (default: the config\'s; '
                        '8 --quick). Images per step = batch x views')
    parser.add_argument('--steps', type=positive_int, default=None,
                        help='timed training steps per round (default 10; '
                        '2 --quick)')
    parser.add_argument('--rounds', type=positive_int, default=None,
                        help='timed rounds per step kind, best kept '
                        '(default 3; 1 --quick)')
    parser.add_argument('--warmup', type=non_negative_int, default=None,
                        help='untimed steps first (default 5; 1 --quick)')
    parser.add_argument('--e2e-steps', type=positive_int, default=None,
                        help='timed end-to-end steps (default 48; 3 '
                        '--quick)')
    parser.add_argument('--precision', choices=('fp32', 'bf16'),
                        default='bf16')
    parser.add_argument('--channels-last', dest='channels_last',
                        action='store_true', default=None,
                        help='channels-last inputs and weights (default: '
                        'the config\'s)')
    parser.add_argument('--no-channels-last', dest='channels_last',
                        action='store_false')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the backbone (both steps)')
    parser.add_argument('--data-root', default=None,
                        help='OpenSRH-layout folder for the end-to-end run; '
                        'a synthetic one is written to a temp dir if it is '
                        'not given or does not exist')
    parser.add_argument('--workers', type=non_negative_int, default=None,
                        help='DataLoader workers end to end (default: the '
                        'config\'s; 1 --quick)')
    parser.add_argument('--crop-size', type=positive_int, default=None,
                        help='view size in the steps and end to end '
                        '(default: the config\'s; 32 --quick); the CPU '
                        'pipeline section always uses the config\'s')
    parser.add_argument('--depth', type=positive_int, default=None,
                        help='ResNet depth (default: the config\'s; 18 '
                        '--quick)')
    parser.add_argument('--base-channels', type=positive_int, default=None,
                        help='ResNet width (default: the config\'s, 64; 16 '
                        '--quick)')
    parser.add_argument('--patch-size', type=positive_int, default=None,
                        help='synthetic patch size for the steps and end to '
                        'end (default 300; 64 --quick); the CPU pipeline '
                        'section always uses 300')
    parser.add_argument('--patches', type=positive_int, default=None,
                        help='patches per CPU pipeline timing (default 96; '
                        '8 --quick)')
    parser.add_argument('--repeats', type=positive_int, default=None,
                        help='CPU pipeline passes, best kept (default 3)')
    parser.add_argument('--threads', type=positive_int, default=None,
                        help='torch threads of this process for the steps '
                        'and end to end (default: torch\'s; 1 with --quick '
                        'on a CPU, where OpenMP threads that share 2 cores '
                        'with a DataLoader worker or other jobs stall)')
    parser.add_argument('--text-tower', choices=('random', 'config'),
                        default='random')
    parser.add_argument('--augment-mode', choices=('gather', 'dense'),
                        default='gather',
                        help='apply_mode of SRHBatchAugmentPreprocessor: '
                        'gather (boolean masking, host-device syncs) or '
                        'dense (every op on the whole batch + torch.where, '
                        'no syncs, more op work); default gather')
    parser.add_argument('--seed', type=non_negative_int, default=0,
                        help='seed of the synthetic data and the model '
                        '(default 0)')
    parser.add_argument('--json-out', default=None,
                        help='also write the final JSON object to this file '
                        '(tools/benchmarks/gpu_throughput_check.sh collects '
                        'them)')
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    wall = time.perf_counter()
    cfg = load_config(args)
    return run_throughput(args, cfg, wall)


if __name__ == '__main__':
    main()
