"""The three sections of ``tools/benchmarks/benchmark_throughput.py`` (CPU
input pipeline per worker, training step, end to end), the target checks,
the table and :func:`run_throughput`, the whole run from parsed arguments.

The model, data and config it measures on come from
:mod:`.throughput_setup`; timing and peak memory from :mod:`.measure`.
"""
import copy
import json
import os
import os.path as osp
import tempfile
import time
from argparse import Namespace
from typing import List, Optional

import torch

from . import data_pipeline as bd
from .measure import PeakMemory, device_name, rounded, sync, threads, timed
from .methods import REPO_ROOT
from .throughput_setup import (build_model, build_optim, fake_batch,
                               view_size, write_srh_layout)

__all__ = ['TARGETS', 'bench_cpu_pipelines', 'bench_end_to_end',
           'bench_steps', 'check_targets', 'print_table', 'run_throughput',
           'time_decode_only']

#: Issue targets (GPU, bf16): HLSS step vs backbone, end-to-end img/s,
#: peak memory vs backbone; CPU: per-worker views/s vs reference.
TARGETS = dict(cpu_speedup=3.0, hlss_vs_backbone=0.85,
               train_img_per_s_end_to_end=4500.0, peak_mem_ratio=1.1)


# ------------------------------------------------------ 1. CPU per worker
def time_decode_only(paths: List[str], keys: List[str]) -> float:
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


def bench_cpu_pipelines(args: Namespace, folder: str, views: int,
                        crop: int) -> dict:
    """Views/s of one worker thread: reference, per-sample and ours.

    Args:
        args (Namespace): ``patches``, ``seed``, ``repeats``.
        folder (str): Where the 300 px TIFFs are written.
        views (int): Views per patch.
        crop (int): View size of the per-sample pipelines.

    Returns:
        dict: The ``cpu_*`` figures of the result.
    """
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


# ------------------------------------------------------------ 2. the steps
def bench_steps(cfg, args: Namespace, device: torch.device, folder: str,
                memory: PeakMemory):
    """Backbone step, HLSS ``train_step`` and the batched augmentation.

    Args:
        cfg (Config): The benchmark's config.
        args (Namespace): The tool's resolved arguments.
        device (torch.device): Where the steps run.
        folder (str): Scratch folder.
        memory (PeakMemory): The peak-memory counter.

    Returns:
        tuple: The HLSS model, its optimizer wrapper and a dict of the
        step figures.
    """
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
def bench_end_to_end(cfg, args: Namespace, model, optim,
                     device: torch.device, folder: str,
                     memory: PeakMemory) -> dict:
    """The config's DataLoader feeding the HLSS step.

    Args:
        cfg (Config): The benchmark's config (``train_dataloader``).
        args (Namespace): The tool's resolved arguments.
        model (nn.Module): The HLSS model of :func:`bench_steps`.
        optim (OptimWrapper): Its optimizer wrapper.
        device (torch.device): Where the steps run.
        folder (str): Scratch folder (the synthetic data set).
        memory (PeakMemory): The peak-memory counter.

    Returns:
        dict: The end-to-end figures.

    Raises:
        ValueError: ``--batch-size`` is not a multiple of slides x patches
            per patient.
    """
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


# --------------------------------------------------------- the whole run
def check_targets(res: dict, device: torch.device) -> dict:
    """Which of :data:`TARGETS` the result meets (None: not judged, the
    GPU targets off a GPU at bf16)."""
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


def run_throughput(args: Namespace, cfg,
                   wall: Optional[float] = None) -> dict:
    """Measure every section, print the table and the JSON line.

    Args:
        args (Namespace): The tool's parsed arguments, after
            :func:`~.throughput_setup.load_config`.
        cfg (Config): The config of :func:`~.throughput_setup.load_config`.
        wall (float, optional): ``time.perf_counter()`` at the tool's
            start, for ``wall_s`` (default: now).

    Returns:
        dict: Every figure (also printed as the last line and written to
        ``--json-out``).
    """
    from mmengine.registry import init_default_scope
    wall = time.perf_counter() if wall is None else wall
    init_default_scope('mmpretrain')
    device = torch.device(args.device or (
        'cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
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
    """Print the settings line and one row per figure of ``res``."""
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
