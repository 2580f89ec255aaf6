"""The whole benchmark, from resolved command-line arguments."""
import argparse
import os
import os.path as osp
import shlex
import sys
import warnings
from typing import List, Optional

from ..apis.test_args import register_evaluation
from .configs import (build_eval_config, curve_hook, knn_data,
                      prepare_train_config, run_dir, shared_parts)
from .methods import (BACKBONES, REPO_ROOT, BenchmarkError,
                      resolve_methods)
from .outputs import machine_info, print_plan, print_settings, write_outputs
from .presets import data_spec
from .report import LEVELS, render_markdown
from .runs import evaluate, read_curve_file, run_training

__all__ = ['make_data', 'plan_methods', 'run_benchmark', 'run_seed']

#: How the report names the tool in its command line.
TOOL = 'tools/benchmarks/benchmark.py'


def make_data(args: argparse.Namespace) -> Optional[dict]:
    """``--make-data``: write the synthetic set when the root is missing."""
    if not args.make_data or osp.isdir(args.data_root):
        return None
    from hlss_plugin.synthetic import make_synthetic_srh
    spec = data_spec(vars(args))
    print(f'[benchmark] writing synthetic data {spec} to {args.data_root}',
          flush=True)
    make_synthetic_srh(args.data_root, **spec)
    return spec


def plan_methods(methods, args, depth: int, hook: Optional[dict],
                 shared_preprocessor: dict) -> List[dict]:
    """Resolve every method's config (first seed) and budget."""
    plans = []
    for spec, path in methods:
        plan = dict(method=spec.name, spec=spec, options=list(spec.options),
                    config=path and osp.relpath(path, REPO_ROOT),
                    error=None, notes=[])
        if path is not None:
            try:
                cfg, changes, budget = prepare_train_config(
                    spec, path, args, depth, args.seeds[0], hook=hook)
                plan.update(path=path, changes=changes, budget=budget,
                            images_seen=args.budget
                            * budget['iters_per_epoch']
                            * budget['batch_size'] * budget['views'])
                own = cfg.model.get('data_preprocessor', None)
                if own is not None and own.to_dict() != shared_preprocessor:
                    plan['notes'].append(
                        f'{spec.name} trains with data_preprocessor '
                        f'{own.to_dict()} but is evaluated with the shared '
                        f'one {shared_preprocessor}.')
            except Exception as err:  # recorded; the others still run
                plan['error'] = f'config: {type(err).__name__}: {err}'
        plans.append(plan)
    return plans


def run_seed(plan: dict, seed: int, args, depth: int, k: int,
             hook: Optional[dict]) -> dict:
    """Train (unless random) and evaluate one method with one seed."""
    spec = plan['spec']
    out_dir = run_dir(args, spec, seed)
    run = dict(seed=seed, error=None, images_seen=0, iterations=0,
               train_time_s=0.0, checkpoint=None, metrics=None,
               diagnostics=None)
    if plan['config'] is not None:
        print(f'[benchmark] {spec.name} seed {seed}: training {args.budget} '
              f'epochs, {plan["images_seen"]} images seen '
              f'({plan["config"]})', flush=True)
        try:
            cfg, _, _ = prepare_train_config(spec, plan['path'], args, depth,
                                             seed, budget=plan['budget'],
                                             hook=hook)
        except Exception as err:
            run['error'] = f'config: {type(err).__name__}: {err}'
            return run
        result = run_training(out_dir, spec.dir_name, cfg, seed,
                              reuse=args.reuse)
        if result.get('reused'):
            print(f'[benchmark] {spec.name} seed {seed}: reused the finished '
                  f'training in {out_dir}', flush=True)
        run.update(train_wall_s=result['wall_s'], log=result['log'])
        if 'error' in result:
            run['error'] = result['error']
            return run
        b = plan['budget']
        run.update(iterations=result['iterations'],
                   images_seen=result['iterations'] * b['batch_size']
                   * b['views'],
                   train_time_s=result['train_time_s'],
                   curve_eval_s=result.get('curve_eval_s', 0.0),
                   checkpoint=result['checkpoint'],
                   device=result['device'], curve_path=result.get('curve'),
                   curve=read_curve_file(result.get('curve')))
    print(f'[benchmark] {spec.name} seed {seed}: kNN evaluation', flush=True)
    try:
        cfg = build_eval_config(args, depth, out_dir, run['checkpoint'], k,
                                seed)
        run['metrics'], run['diagnostics'] = evaluate(
            cfg, init=run['checkpoint'] is None)
    except Exception as err:  # keep the other runs' results
        run['error'] = (f'kNN evaluation failed: {type(err).__name__}: '
                        f'{err}')
    return run


def run_benchmark(args: argparse.Namespace, argv: List[str]) -> int:
    """Train and evaluate every method and seed; write the report.

    Each method and seed trains in its own subprocess
    (:func:`~hlss_plugin.benchmark.runs.run_training`), then its checkpoint
    is evaluated here with the shared kNN setting; ``benchmark.md``,
    ``benchmark.json`` and ``benchmark.png`` (and ``curves.png``) are
    rewritten after every run. With ``args.dry_run`` the resolved settings
    and overrides are printed and nothing trains.

    Args:
        args (argparse.Namespace): The tool's resolved arguments
            (:func:`hlss_plugin.benchmark.arguments.resolve_args`).
        argv (list[str]): The command line, recorded in the report.

    Returns:
        int: The exit status: 1 if a method or run failed, else 0.

    Example:
        >>> run_benchmark(args, sys.argv[1:])  # doctest: +SKIP
    """
    try:
        methods = resolve_methods(args.methods)
        if not osp.isdir(args.data_root) and not args.make_data:
            raise BenchmarkError(
                f'--data-root {args.data_root}: no such folder (add '
                f'--make-data to write a synthetic one there, or make it '
                f'with `python tools/misc/make_synthetic_srh.py '
                f'{args.data_root}`).')
    except BenchmarkError as err:
        sys.exit(f'{TOOL}: error: {err}')
    if args.dry_run:
        print_settings(args)
        if not osp.isdir(args.data_root):
            print(f'[data] {args.data_root} does not exist yet; run without '
                  f'--dry-run to write it, then the per-method budgets can '
                  f'be shown.')
            return 0
    else:
        make_data(args)
    register_evaluation()
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    depth = BACKBONES[args.backbone]
    _, shared_preprocessor = shared_parts(depth)
    try:
        data = knn_data(build_eval_config(args, depth, args.work_dir, None,
                                          args.k, args.seeds[0]))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f'{TOOL}: error: the kNN evaluation data '
                 f'(bank = train split, queries = val split of '
                 f'{args.data_root}) cannot be loaded: {err}')
    k = min(args.k, data['bank']['patches'])
    hook = curve_hook(args, depth, k) if args.eval_every else None
    plans = plan_methods(methods, args, depth, hook, shared_preprocessor)

    trained = [p for p in plans if p.get('budget')]
    first = trained[0]['budget'] if trained else dict(
        iters_per_epoch=0, batch_size=0, views=0, train_patches=0)
    settings = dict(
        data_root=args.data_root, preset=args.preset,
        sources=args.sources, budget_epochs=args.budget,
        backbone=args.backbone, depth=depth, crop_size=args.crop_size,
        patients_per_batch=args.patients_per_batch, seeds=args.seeds,
        workers=args.workers, k_requested=args.k, k=k,
        eval_every=args.eval_every,
        bank_patches=data['bank']['patches'],
        query_patches=data['query']['patches'], classes=data['classes'],
        knn_data=data, iters_per_epoch=first['iters_per_epoch'],
        batch_size=first['batch_size'], views=first['views'],
        train_patches=first['train_patches'],
        images_seen=args.budget * first['iters_per_epoch']
        * first['batch_size'] * first['views'])
    notes = []
    if k < args.k:
        message = (f'k = {args.k} is larger than the kNN bank '
                   f'({data["bank"]["patches"]} patches); using k = {k}.')
        warnings.warn(message)
        notes.append(message)
    unequal = sorted({p['images_seen'] for p in trained})
    if len(unequal) > 1:
        notes.append(f'the trained methods do not see the same number of '
                     f'images ({unequal}); compare with care.')
    if args.dry_run:
        print_plan(plans, settings)
        for note in notes:
            print(f'note: {note}')
        return 1 if any(p['error'] for p in plans) else 0

    os.makedirs(args.work_dir, exist_ok=True)
    report = dict(command=' '.join(shlex.quote(a) for a in
                                   ['python', TOOL, *argv]),
                  machine=machine_info(), settings=settings, notes=notes,
                  methods=[])
    for plan in plans:
        entry = dict(method=plan['method'], base=plan['spec'].base,
                     options=plan['options'], config=plan['config'],
                     error=plan['error'], notes=plan['notes'], runs=[])
        report['methods'].append(entry)
        if plan['error'] is not None:
            print(f'[benchmark] {plan["method"]}: FAILED: {plan["error"]}',
                  flush=True)
            write_outputs(report, args.work_dir)
            continue
        for seed in args.seeds:
            run = run_seed(plan, seed, args, depth, k, hook)
            entry['runs'].append(run)
            if run['error'] is not None:
                print(f'[benchmark] {plan["method"]} seed {seed}: FAILED: '
                      f'{run["error"]}', flush=True)
            else:
                acc = ', '.join(f'{lv} acc {run["metrics"][lv]["acc"]:.3f}'
                                for lv in LEVELS)
                print(f'[benchmark] {plan["method"]} seed {seed}: {acc}',
                      flush=True)
            write_outputs(report, args.work_dir)
    paths = write_outputs(report, args.work_dir)
    print(render_markdown(report))
    print('[benchmark] wrote ' + ', '.join(paths))
    failed = [e['method'] for e in report['methods'] if e['error']]
    if failed:
        print(f'[benchmark] failed: {", ".join(failed)}', file=sys.stderr)
        return 1
    return 0
