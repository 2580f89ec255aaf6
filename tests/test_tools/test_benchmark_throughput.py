"""tools/benchmarks/benchmark_throughput.py --quick: one JSON line with every figure,
all positive, in well under a minute; argument and config checks."""
import json
import os.path as osp
import subprocess
import sys
import time

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'benchmarks', 'benchmark_throughput.py')

RATES = ['cpu_views_per_s_reference', 'cpu_views_per_s_per_sample',
         'cpu_views_per_s_ours', 'augment_views_per_s_device',
         'step_img_per_s_backbone', 'step_img_per_s_hlss',
         'train_img_per_s_end_to_end']
PEAKS = ['peak_mem_mib_backbone', 'peak_mem_mib_hlss',
         'peak_mem_mib_end_to_end']


def run(*args, timeout=120):
    return subprocess.run([sys.executable, TOOL, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def test_quick_prints_one_json_line_with_every_figure(tmp_path):
    start = time.perf_counter()
    out = tmp_path / 'sub' / 'quick.json'
    proc = run('--quick', '--patches', '4', '--e2e-steps', '2', '--steps',
               '1', '--device', 'cpu', '--json-out', str(out))
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    res = json.loads(lines[-1])
    assert json.loads(out.read_text()) == res  # --json-out: same object
    assert elapsed < 60, elapsed
    assert res['device'] == 'cpu' and res['quick'] is True
    assert res['precision'] == 'bf16'
    assert res['optim_wrapper'] == 'CPUAutocastOptimWrapper'
    for key in RATES:
        assert isinstance(res[key], float) and res[key] > 0, key
    assert res['cpu_patches'] == 4 and res['cpu_view_size'] == 224
    assert res['img_per_step'] == 8 * 2 and res['crop_size'] == 32
    assert res['cpu_speedup_ours_vs_reference'] == pytest.approx(
        res['cpu_views_per_s_ours'] / res['cpu_views_per_s_reference'],
        rel=0.02)
    assert res['hlss_vs_backbone'] == pytest.approx(
        res['step_img_per_s_hlss'] / res['step_img_per_s_backbone'],
        rel=0.02)
    if res['peak_mem_kind'] is None:  # no /proc: the reason is given
        assert res['peak_mem_null_reason']
    else:
        assert res['peak_mem_kind'] == 'cpu_process_peak_rss'
        for key in PEAKS:
            assert res[key] > 50, key  # MiB: at least the interpreter
    # GPU targets are not judged on a CPU
    assert res['targets']['end_to_end_ge_4500'] is None
    assert isinstance(res['targets']['cpu_speedup_ge_3'], bool)
    # the human-readable table comes first
    assert any('HLSS train_step img/s' in line for line in lines[:-1])


def test_bad_arguments_and_config(tmp_path):
    for flag, value, bound in (('--steps', '0', 1), ('--warmup', '-1', 0),
                               ('--threads', '0', 1)):
        proc = run('--quick', flag, value)
        assert proc.returncode == 2
        assert (f'argument {flag}: expected an integer >= {bound}, got '
                f'{value}') in proc.stderr
    cfg = tmp_path / 'plain.py'
    cfg.write_text(f"_base_ = ['{REPO}/configs/mmpretrain/hlss_srh.py']\n")
    proc = run('--quick', '--config', str(cfg))
    assert proc.returncode != 0
    assert 'SRHBatchAugmentPreprocessor' in proc.stderr
