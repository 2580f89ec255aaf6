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

Usage (from the repository root)::

    python tools/benchmarks/benchmark_throughput.py --quick          # < 1 min, 2 cores
    python tools/benchmarks/benchmark_throughput.py --device cuda --precision bf16 \\
        --channels-last --workers 12                      # paper setting
"""
import argparse
import copy
import json
import math
import os
import os.path as osp
import platform
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

import torch  # noqa: E402

from hlss_plugin.benchmark import data_pipeline as bd  # noqa: E402
from hlss_plugin.utils.arg_checks import (non_negative_int,  # noqa: E402
                                          positive_int)
from hlss_plugin.utils.quiet_logs import quiet_logs  # noqa: E402

DEFAULT_CONFIG = osp.join(REPO_ROOT, 'configs', 'mmpretrain',
                          'hlss_srh_fast.py')
#: Settings of ``--quick`` (each can still be overridden on the command line).
QUICK = dict(batch_size=8, steps=2, warmup=1, rounds=1, workers=1,
             crop_size=32, depth=18, base_channels=16, patches=8, repeats=1,
             patch_size=64, e2e_steps=3)
FULL = dict(batch_size=None, steps=10, warmup=5, rounds=3, workers=None,
            crop_size=None, depth=None, base_channels=None, patches=96,
            repeats=3, patch_size=300, e2e_steps=48)
#: Issue targets (GPU, bf16): HLSS step vs backbone, end-to-end img/s,
#: peak memory vs backbone; CPU: per-worker views/s vs reference.
TARGETS = dict(cpu_speedup=3.0, hlss_vs_backbone=0.85,
               train_img_per_s_end_to_end=4500.0, peak_mem_ratio=1.1)


# ------------------------------------------------------------------ helpers
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


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


class PeakMemory:
    """Peak memory of a phase in MiB (CUDA allocator or CPU VmHWM)."""

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
        if self.kind == 'cuda_max_memory_allocated':
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind == 'cpu_process_peak_rss':
            with open('/proc/self/clear_refs', 'w') as f:
                f.write('5')

    def peak_mib(self):
        if self.kind == 'cuda_max_memory_allocated':
            sync(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind == 'cpu_process_peak_rss':
            return self._hwm_kib() / 1024
        return None


@contextmanager
def threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def rounded(value, digits=1):
    return None if value is None else round(float(value), digits)


# ------------------------------------------------------ 1. CPU per worker
def time_decode_only(paths, keys) -> float:
    """Seconds for the batched path's worker pipeline over ``paths``."""
    from mmengine.dataset import Compose
    pipe = Compose([dict(type='LoadSRHPatchRaw'),
                    dict(type='PackInputs', algorithm_keys=keys)])
    start = time.perf_counter()
    for i, path in enumerate(paths):
        out = pipe(dict(img_path=path, patient='P0', slide='P0/S0',
                        patient_idx=0, slide_idx=0, gt_label=0,
                        sample_idx=i))
        if out['inputs'].dtype != torch.uint16:
            raise RuntimeError('LoadSRHPatchRaw did not keep uint16')
    return time.perf_counter() - start


def bench_cpu_pipelines(args, folder, views, crop) -> dict:
    paths, source = bd.write_patches(folder, args.patches, 300, args.seed)
    keys = bd.ALGORITHM_KEYS
    with threads(1):
        bd.time_reference(paths[:2], views, None, crop)  # warm-up
        bd.time_ours(paths[:2], views, None, crop)
        time_decode_only(paths[:2], keys)
        ref_t, per_t, our_t = [], [], []
        for _ in range(args.repeats):  # interleaved: share machine noise
            ref_t.append(bd.time_reference(paths, views, None, crop))
            per_t.append(bd.time_ours(paths, views, None, crop))
            our_t.append(time_decode_only(paths, keys))
    n_views = len(paths) * views
    ref, per, ours = (n_views / min(t) for t in (ref_t, per_t, our_t))
    return dict(cpu_views_per_s_reference=rounded(ref),
                cpu_views_per_s_per_sample=rounded(per),
                cpu_views_per_s_ours=rounded(ours),
                cpu_speedup_ours_vs_reference=rounded(ours / ref, 2),
                cpu_speedup_per_sample_vs_reference=rounded(per / ref, 2),
                cpu_patches=len(paths), cpu_patch_source=source)


# --------------------------------------------------------- model and data
def load_config(args):
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    pre = cfg.model.data_preprocessor
    if pre.get('type') != 'SRHBatchAugmentPreprocessor':
        raise ValueError(
            f'{args.config}: model.data_preprocessor.type is '
            f'{pre.get("type")!r}; the benchmark needs '
            f'SRHBatchAugmentPreprocessor (e.g. hlss_srh_fast.py).')
    if args.channels_last is None:
        args.channels_last = bool(pre.get('channels_last', False))
    pre.channels_last = args.channels_last
    pre.apply_mode = args.augment_mode
    # the production view size, for the CPU pipeline section
    args.config_crop_size = int((pre.get('augment') or {}).get('crop_size')
                                or 224)
    if args.crop_size is not None:
        pre.augment = dict(pre.get('augment') or {}, crop_size=args.crop_size)
    backbone = cfg.model.backbone
    if args.depth is not None or args.base_channels is not None:
        if backbone.get('type') != 'ResNet':
            raise ValueError(f'--depth / --base-channels need an MMPretrain '
                             f'ResNet backbone, the config has '
                             f'{backbone.get("type")!r}.')
        if args.depth is not None:
            backbone.depth = args.depth
        if args.base_channels is not None:
            backbone.base_channels = args.base_channels
            backbone.stem_channels = args.base_channels
        width = backbone.get('base_channels', 64)
        # channels of the last stage: 8 x width (BasicBlock, depth < 50)
        # or 32 x width (Bottleneck)
        out = width * (8 if backbone.depth < 50 else 32)
        cfg.model.in_channels = out
        for head in cfg.model.heads.values():
            head.bridge_hidden = out
            if backbone.depth < 50:
                head.num_outputs = None
    return cfg


def view_size(pre, patch: int) -> int:
    """Side of the views the preprocessor makes from ``patch`` px patches.
    """
    shape = (3, patch, patch)
    for op, _ in pre.augment.steps:
        shape = op.output_shape(shape)
    return int(shape[-1])


def random_text_tower(cfg, folder: str) -> dict:
    """A PrecomputedTextTower config with random 384-d attribute vectors."""
    from hlss_plugin.text import load_attributes
    names = []
    for head in cfg.model.heads.values():
        for level in load_attributes(head.attributes).values():
            names += [n for n in level if n not in names]
    gen = torch.Generator().manual_seed(0)
    path = osp.join(folder, 'random_text.pt')
    torch.save({'texts': names,
                'embeddings': torch.randn(len(names), 384, generator=gen)},
               path)
    return dict(type='PrecomputedTextTower', path=path)


def build_model(cfg, args, device, folder):
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if args.text_tower == 'random':
        model_cfg.text_tower = random_text_tower(cfg, folder)
    torch.manual_seed(args.seed)
    with quiet_logs():
        model = MODELS.build(model_cfg)
        model.init_weights()
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.compile:
        model.backbone = torch.compile(model.backbone)
    return model


def build_optim(cfg, module, precision):
    from mmengine.optim import build_optim_wrapper
    optim_cfg = dict(optimizer=copy.deepcopy(cfg.optim_wrapper.optimizer),
                     constructor='AmpFallbackOptimWrapperConstructor')
    if precision == 'bf16':
        optim_cfg.update(type='AmpOptimWrapper', dtype='bfloat16')
    else:
        optim_cfg.update(type='OptimWrapper')
    return build_optim_wrapper(module, optim_cfg)


def fake_batch(b, patch, seed, device):
    """A uint16 ``(b, 2, patch, patch)`` batch in host memory (pinned for
    CUDA) with hierarchical data samples (2 slides x 2 patches/patient)."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 12000, (b, 2, patch, patch), generator=g,
                        dtype=torch.int32).to(torch.uint16)
    if device.type == 'cuda':
        raw = raw.pin_memory()
    samples = [DataSample(metainfo=dict(patient_idx=i // 4, slide_idx=i // 2,
                                        sample_idx=i, patient=f'P{i // 4}',
                                        slide=f'P{i // 4}/{i // 2}'))
               for i in range(b)]
    return dict(inputs=raw, data_samples=samples)


def timed(fn, steps, warmup, rounds, device, memory: PeakMemory):
    """Best time of ``rounds`` rounds of ``steps`` calls (after
    ``warmup`` calls) and the peak memory over all rounds."""
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


# ------------------------------------------------------------ 2. the steps
def bench_steps(cfg, args, device, folder, memory) -> dict:
    model = build_model(cfg, args, device, folder)
    model.train()
    pre = model.data_preprocessor
    b, views = args.batch_size, pre.num_views
    data = fake_batch(b, args.patch_size, args.seed, device)
    crop = view_size(pre, args.patch_size)
    fmt = (torch.channels_last
           if args.channels_last else torch.contiguous_format)
    x = torch.randn(b * views, 3, crop, crop, device=device).contiguous(
        memory_format=fmt)
    results = dict(img_per_step=b * views, crop_size=crop)

    # backbone only: same weights, own optimizer of the same type
    trunk = torch.nn.ModuleDict(dict(backbone=model.backbone,
                                     neck=model.neck))
    optim_bb = build_optim(cfg, trunk, args.precision)
    results['optim_wrapper'] = type(optim_bb).__name__

    def backbone_step():
        with optim_bb.optim_context(trunk):
            feats = model.neck(model.backbone(x))
            feats = feats[-1] if isinstance(feats, (list, tuple)) else feats
            loss = feats.float().square().mean()
        optim_bb.update_params(loss)

    t, peak = timed(backbone_step, args.steps, args.warmup, args.rounds,
                    device, memory)
    results.update(step_img_per_s_backbone=rounded(b * views * args.steps /
                                                   t),
                   peak_mem_mib_backbone=rounded(peak))
    # free the baseline's optimizer state and inputs before the HLSS phase
    del backbone_step, optim_bb, x
    optim = build_optim(cfg, model, args.precision)

    def hlss_step():
        model.train_step(data, optim)

    t, peak = timed(hlss_step, args.steps, args.warmup, args.rounds, device,
                    memory)
    results.update(step_img_per_s_hlss=rounded(b * views * args.steps / t),
                   peak_mem_mib_hlss=rounded(peak))

    def augment_only():
        with torch.no_grad():
            pre(data, training=True)

    t, _ = timed(augment_only, args.steps, 1, args.rounds, device, memory)
    results['augment_views_per_s_device'] = rounded(b * views * args.steps /
                                                    t)
    return model, optim, results


# --------------------------------------------------------- 3. end to end
def write_srh_layout(root, patients, slides, patches, size, seed) -> None:
    """An OpenSRH-layout folder: ``patients`` x ``slides`` x ``patches``
    TIFFs copied from a pool of up to 16 rendered patches (fast to write,
    real decode cost)."""
    import tifffile
    from hlss_plugin.synthetic import OPENSRH_CLASSES
    pool, _ = bd.synthetic_patches(min(16, patients * slides * patches),
                                   size, seed)
    meta, k = {}, 0
    for p in range(patients):
        pid = f'BENCH{p:04d}'
        cls = OPENSRH_CLASSES[p % len(OPENSRH_CLASSES)]
        key = 'normal_patches' if cls == 'normal' else 'tumor_patches'
        slide_meta = {}
        for s in range(slides):
            folder = osp.join(root, 'studies', pid, str(s), 'patches')
            os.makedirs(folder, exist_ok=True)
            names = []
            for j in range(patches):
                rel = f'studies/{pid}/{s}/patches/{pid}-{s}-{j}.tif'
                tifffile.imwrite(osp.join(root, rel), pool[k % len(pool)])
                names.append(rel)
                k += 1
            slide_meta[str(s)] = {key: names}
        meta[pid] = {'class': cls, 'slides': slide_meta}
    ids = sorted(meta)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'opensrh.json'), 'w') as f:
        json.dump(meta, f)
    with open(osp.join(root, 'meta', 'train_val_split.json'), 'w') as f:
        json.dump({'train': ids[:-1], 'val': ids[-1:]}, f)


def bench_end_to_end(cfg, args, model, optim, device, folder,
                     memory) -> dict:
    from mmengine.runner import Runner
    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    sampler = loader_cfg.sampler
    per_patient = sampler.slides_per_patient * sampler.patches_per_slide
    if args.batch_size % per_patient:
        raise ValueError(f'--batch-size {args.batch_size} must be a '
                         f'multiple of slides x patches per patient '
                         f'({per_patient}) for the HierarchicalSampler.')
    sampler.patients_per_batch = args.batch_size // per_patient
    loader_cfg.batch_size = args.batch_size
    workers = loader_cfg.num_workers if args.workers is None else \
        args.workers
    loader_cfg.num_workers = workers
    loader_cfg.persistent_workers = workers > 0
    loader_cfg.pin_memory = device.type == 'cuda'
    root = args.data_root
    made = root is None or not osp.isdir(root)
    if made:
        root = osp.join(folder, 'srh')
        # enough training patients for 16 batches per epoch
        patients = sampler.patients_per_batch * 16 + 1
        write_srh_layout(root, patients, sampler.slides_per_patient,
                         sampler.patches_per_slide, args.patch_size,
                         args.seed)
    loader_cfg.dataset.data_root = root
    loader = Runner.build_dataloader(loader_cfg, seed=args.seed)
    needed, done, epoch = args.warmup + args.e2e_steps, 0, 0
    start, peak = None, None
    while done < needed:
        if hasattr(loader.sampler, 'set_epoch'):
            loader.sampler.set_epoch(epoch)
        for data in loader:
            if done == args.warmup:
                sync(device)
                memory.reset()
                start = time.perf_counter()
            model.train_step(data, optim)
            done += 1
            if done == needed:
                break
        epoch += 1
    sync(device)
    elapsed = time.perf_counter() - start
    peak = memory.peak_mib()
    imgs = args.batch_size * model.data_preprocessor.num_views
    return dict(train_img_per_s_end_to_end=rounded(imgs * args.e2e_steps /
                                                   elapsed),
                peak_mem_mib_end_to_end=rounded(peak), workers=workers,
                epochs_touched=epoch,
                data=('synthetic (written for this run)' if made else root))


# -------------------------------------------------------------------- main
def device_name(device: torch.device) -> str:
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def check_targets(res: dict, device: torch.device) -> dict:
    out = dict(cpu_speedup_ge_3=res['cpu_speedup_ours_vs_reference'] >=
               TARGETS['cpu_speedup'])
    gpu = device.type == 'cuda' and res['precision'] == 'bf16'
    ratio = res['hlss_vs_backbone']
    mem = res['peak_mem_ratio_hlss_vs_backbone']
    out.update(
        hlss_ge_85pct_backbone=(ratio >= TARGETS['hlss_vs_backbone'])
        if gpu else None,
        end_to_end_ge_4500=(res['train_img_per_s_end_to_end'] >=
                            TARGETS['train_img_per_s_end_to_end'])
        if gpu else None,
        peak_mem_le_1_1x_backbone=(mem <= TARGETS['peak_mem_ratio'])
        if gpu and mem is not None else None)
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    wall = time.perf_counter()
    from mmengine.registry import init_default_scope
    import hlss_plugin  # noqa: F401 (registers everything)
    init_default_scope('mmpretrain')
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
    cfg = load_config(args)
    if args.batch_size is None:
        args.batch_size = cfg.train_dataloader.batch_size
    if args.threads is None and args.quick and device.type == 'cpu':
        args.threads = 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)
    memory = PeakMemory(device)
    res = dict(device=str(device), device_name=device_name(device),
               cpu_count=os.cpu_count(), torch=torch.__version__,
               precision=args.precision, channels_last=args.channels_last,
               compile=args.compile, batch_patches=args.batch_size,
               augment_mode=args.augment_mode,
               views=int(cfg.model.data_preprocessor.get('num_views', 2)),
               depth=int(cfg.model.backbone.depth),
               base_channels=int(cfg.model.backbone.get('base_channels', 64)),
               cpu_view_size=args.config_crop_size,
               patch_size=args.patch_size, quick=args.quick,
               steps=args.steps, rounds=args.rounds, warmup=args.warmup,
               e2e_steps=args.e2e_steps, threads=torch.get_num_threads(),
               load_avg_start=rounded(os.getloadavg()[0], 2),
               config=osp.relpath(args.config, REPO_ROOT))
    with tempfile.TemporaryDirectory(prefix='hlss_tput_') as folder:
        res.update(bench_cpu_pipelines(args, folder, res['views'],
                                       args.config_crop_size))
        model, optim, step = bench_steps(cfg, args, device, folder, memory)
        res.update(step)
        res.update(bench_end_to_end(cfg, args, model, optim, device, folder,
                                    memory))
    bb, hl = res['step_img_per_s_backbone'], res['step_img_per_s_hlss']
    res['hlss_vs_backbone'] = rounded(hl / bb, 3)
    mb, mh = res['peak_mem_mib_backbone'], res['peak_mem_mib_hlss']
    res['peak_mem_ratio_hlss_vs_backbone'] = (
        rounded(mh / mb, 3) if mb and mh else None)
    res['peak_mem_kind'] = memory.kind
    if memory.kind is None:
        res['peak_mem_null_reason'] = memory.reason
    res['targets'] = check_targets(res, device)
    res['load_avg_end'] = rounded(os.getloadavg()[0], 2)
    res['wall_s'] = rounded(time.perf_counter() - wall)
    print_table(res)
    print(json.dumps(res))
    if args.json_out:
        os.makedirs(osp.dirname(osp.abspath(args.json_out)), exist_ok=True)
        with open(args.json_out, 'w') as f:
            json.dump(res, f, indent=1)
    return res


def print_table(res: dict) -> None:
    mem_unit = {'cuda_max_memory_allocated': 'MiB (CUDA allocated)',
                'cpu_process_peak_rss': 'MiB (process peak RSS)'}.get(
                    res['peak_mem_kind'], '(not measured)')
    rows = [
        ('CPU views/s per worker, reference per-sample',
         res['cpu_views_per_s_reference']),
        ('CPU views/s per worker, ours per-sample',
         res['cpu_views_per_s_per_sample']),
        ('CPU views/s per worker, ours batched (decode only)',
         res['cpu_views_per_s_ours']),
        ('  speed-up ours / reference', res['cpu_speedup_ours_vs_reference']),
        (f'{res["device"]} batched augmentation views/s',
         res['augment_views_per_s_device']),
        ('backbone fwd+bwd+step img/s', res['step_img_per_s_backbone']),
        ('HLSS train_step img/s', res['step_img_per_s_hlss']),
        ('  HLSS / backbone', res['hlss_vs_backbone']),
        (f'end to end img/s ({res["workers"]} workers)',
         res['train_img_per_s_end_to_end']),
        (f'peak memory backbone, {mem_unit}', res['peak_mem_mib_backbone']),
        (f'peak memory HLSS step, {mem_unit}', res['peak_mem_mib_hlss']),
        (f'peak memory end to end, {mem_unit}',
         res['peak_mem_mib_end_to_end']),
    ]
    print(f'device {res["device"]} ({res["device_name"]}), '
          f'{res["cpu_count"]} CPUs, torch {res["torch"]}, '
          f'{res["precision"]}, channels_last={res["channels_last"]}, '
          f'compile={res["compile"]}, augment {res["augment_mode"]}, '
          f'{res["threads"]} threads, '
          f'load {res["load_avg_start"]}, ResNet-{res["depth"]}, '
          f'{res["batch_patches"]} patches x {res["views"]} views of '
          f'{res["crop_size"]} px per step')
    for name, value in rows:
        print(f'{name:<58}{value!s:>14}')


if __name__ == '__main__':
    main()
