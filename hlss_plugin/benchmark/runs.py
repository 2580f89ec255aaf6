"""Benchmark runs: training in a subprocess, kNN evaluation in this one."""
import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.config import Config

from ..apis.runner import build_runner
from ..apis.test_args import find_metric
from .configs import RUNNER_KEYS
from .methods import REPO_ROOT

__all__ = ['evaluate', 'read_curve_file', 'run_one', 'run_training']

#: The child process of :func:`run_training`.
RUN_ONE_CODE = ('import sys; from hlss_plugin.benchmark.runs import run_one; '
                'run_one(sys.argv[1], sys.argv[2])')


def _error_line(log_path: str) -> str:
    """The most telling line of a failed run's log."""
    try:
        with open(log_path, errors='replace') as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return 'no log written'
    for line in reversed(lines):
        if re.match(r'^([\w.]+(Error|Exception|Interrupt)\b|'
                    r'tools/\S+: error:)', line):
            return line
    return lines[-1] if lines else 'no output'


def _runner_part(cfg: Config) -> dict:
    """What a training run depends on: the Runner's keys, less the work
    dir (helper variables of the config file are left out)."""
    return {key: cfg.get(key) for key in RUNNER_KEYS if key != 'work_dir'}


def _reusable(config_path: str, cfg: Config, result_path: str,
              out_dir: str) -> Optional[dict]:
    """The result of a finished run in ``out_dir`` that trained exactly what
    ``cfg`` trains (same Runner keys but the work dir), else None."""
    if not (osp.isfile(config_path) and osp.isfile(result_path)):
        return None
    try:
        old = Config.fromfile(config_path)
    except Exception:
        return None
    if _runner_part(old) != _runner_part(cfg):
        return None
    with open(result_path) as f:
        result = json.load(f)
    # the run's files live in its own folder (which may have moved since
    # the result was written): never follow a path out of it
    for key in ('checkpoint', 'curve'):
        path = result.get(key)
        here = path and osp.join(out_dir, 'train', osp.basename(path))
        result[key] = here if here and osp.isfile(here) else None
    return result if result.get('checkpoint') else None


def run_training(out_dir: str, name: str, cfg: Config, seed: int,
                 reuse: bool = False) -> dict:
    """Train ``cfg`` in a subprocess; returns its result (or the error).

    With ``reuse`` a finished run in ``out_dir`` whose dumped config has the
    same Runner keys (model, data, schedule, hooks, seed; not the work dir)
    is returned as it is (``reused=True``).
    """
    os.makedirs(out_dir, exist_ok=True)
    config_path = osp.join(out_dir, f'{name}_benchmark_config.py')
    result_path = osp.join(out_dir, 'train_result.json')
    log_path = osp.join(out_dir, 'train.log')
    if reuse:
        result = _reusable(config_path, cfg, result_path, out_dir)
        if result is not None:
            result.update(wall_s=result.get('wall_s', 0.0), log=log_path,
                          reused=True)
            return result
    cfg.dump(config_path)
    if osp.exists(result_path):
        os.remove(result_path)
    env = dict(os.environ)
    env.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    env['PYTHONHASHSEED'] = str(seed)
    start = time.perf_counter()
    with open(log_path, 'w') as log:
        proc = subprocess.run(
            [sys.executable, '-c', RUN_ONE_CODE, config_path,
             result_path], cwd=REPO_ROOT, env=env, stdout=log,
            stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode != 0 or not osp.isfile(result_path):
        return dict(error=f'training failed (exit {proc.returncode}): '
                    f'{_error_line(log_path)} (log: {log_path})',
                    wall_s=wall, log=log_path)
    with open(result_path) as f:
        result = json.load(f)
    result['wall_s'] = wall
    with open(result_path, 'w') as f:
        json.dump(result, f)
    result.update(log=log_path)
    return result


def _last_checkpoint(work_dir: str) -> Optional[str]:
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            path = f.read().strip()
        if osp.isfile(path):
            return path
    ckpts = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')),
                   key=lambda p: int(re.findall(r'\d+', osp.basename(p))[0]))
    return ckpts[-1] if ckpts else None


def run_one(config_path: str, result_path: str) -> None:
    """Child process: train one dumped config and write its result json.

    ``train_time_s`` excludes the time a ``KNNCurveHook`` spent evaluating
    (``curve_eval_s``).
    """
    import hlss_plugin  # noqa: F401
    from hlss_plugin.engine.hooks import KNNCurveHook
    # Deterministic where an implementation exists; ops without one warn
    # instead of stopping (e.g. CUDA adaptive pooling backward).
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    cfg = Config.fromfile(config_path)
    runner = build_runner(cfg)
    start = time.perf_counter()
    runner.train()
    seconds = time.perf_counter() - start
    checkpoint = _last_checkpoint(runner.work_dir)
    if checkpoint is None:
        raise RuntimeError(f'training wrote no checkpoint in '
                           f'{runner.work_dir}.')
    curves = [h for h in runner.hooks if isinstance(h, KNNCurveHook)]
    eval_s = sum(h.eval_seconds for h in curves)
    device = str(next(runner.model.parameters()).device)
    with open(result_path, 'w') as f:
        json.dump(dict(train_time_s=seconds - eval_s, curve_eval_s=eval_s,
                       curve=curves[0].path if curves else None,
                       iterations=int(runner.iter), epochs=int(runner.epoch),
                       checkpoint=checkpoint, device=device), f, indent=2)


def evaluate(cfg: Config, init: bool) -> Tuple[dict, dict]:
    """Run the kNN test loop of ``cfg``.

    Args:
        cfg (Config): From :func:`build_eval_config`.
        init (bool): Initialise the weights first (the untrained backbone,
            as every method starts).

    Returns:
        tuple[dict, dict]: ``{level: {metric key: fraction in [0, 1]}}`` and
        the :func:`~hlss_plugin.evaluation.functional.embedding_diagnostics`
        of the evaluated (bank + query) embeddings.
    """
    from hlss_plugin.evaluation.functional import embedding_diagnostics
    runner = build_runner(cfg)
    if init:
        runner.model.init_weights()
    metrics = runner.test()
    nested: Dict[str, Dict[str, float]] = {}
    for key, value in metrics.items():
        level, name = key.split('/', 1)
        nested.setdefault(level, {})[name] = float(value) / 100.0
    results = find_metric(runner.test_loop.evaluator).last_results
    if results.get('missing_classes'):
        warnings.warn(f'kNN: query classes without bank patches: '
                      f'{results["missing_classes"]}')
    return nested, embedding_diagnostics(results['feats'])


def read_curve_file(path: Optional[str]) -> Optional[List[dict]]:
    """The records of a run's ``curve.jsonl`` (None without one)."""
    from hlss_plugin.engine.hooks import read_curve
    if not path or not osp.isfile(path):
        return None
    return read_curve(path)
