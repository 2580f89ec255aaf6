"""tools/benchmarks/gpu_throughput_check.sh and tools/benchmarks/throughput_table.py.

The shell script's logic (modes -> flags, one JSON per run, a failing or
hanging run reported while the others still run, exit status) is checked
with a fake interpreter standing in for the benchmark; one real ``--quick``
run on the CPU checks that the script and the benchmark fit together.
"""
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
SCRIPT = osp.join(REPO, 'tools', 'benchmarks', 'gpu_throughput_check.sh')


def load_table_tool():
    path = osp.join(REPO, 'tools', 'benchmarks', 'throughput_table.py')
    spec = importlib.util.spec_from_file_location('throughput_table', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(**kw):
    res = dict(device='cuda:0', device_name='NVIDIA H100', precision='bf16',
               augment_mode='gather', compile=False,
               step_img_per_s_backbone=4000.0, step_img_per_s_hlss=3000.0,
               hlss_vs_backbone=0.75, train_img_per_s_end_to_end=5000.0,
               peak_mem_ratio_hlss_vs_backbone=None,
               augment_views_per_s_device=1e5,
               cpu_speedup_ours_vs_reference=40.0,
               targets=dict(hlss_ge_85pct_backbone=False,
                            end_to_end_ge_4500=True,
                            peak_mem_le_1_1x_backbone=None,
                            cpu_speedup_ge_3=True))
    res.update(kw)
    return res


def test_table_rows_and_verdicts(tmp_path):
    tool = load_table_tool()
    paths = []
    for name, kw in (('gather', {}), ('dense_compile', dict(
            augment_mode='dense', compile=True, device='cpu',
            device_name=''))):
        path = tmp_path / f'{name}.json'
        path.write_text(json.dumps(result(**kw)))
        paths.append(str(path))
    rows = [tool.load_result(p) for p in paths]
    lines = tool.markdown_table(rows).splitlines()
    assert len(lines) == 4
    head = [c.strip() for c in lines[0].strip('|').split('|')]
    first = [c.strip() for c in lines[2].strip('|').split('|')]
    second = [c.strip() for c in lines[3].strip('|').split('|')]
    assert len(head) == len(first) == len(second) == 12
    cell = dict(zip(head, first))
    assert cell['run'] == 'gather'
    assert cell['device'] == 'cuda:0 (NVIDIA H100)'
    assert cell['HLSS / backbone (≥ 0.85)'] == '0.75 (no)'
    assert cell['end to end img/s (≥ 4,500)'] == '5000.0 (yes)'
    assert cell['peak mem HLSS / backbone (≤ 1.1)'] == '- (-)'
    assert cell['compile'] == 'no'
    cell = dict(zip(head, second))
    assert cell['run'] == 'dense_compile' and cell['device'] == 'cpu'
    assert cell['augment'] == 'dense' and cell['compile'] == 'yes'


def test_table_refuses_other_files(tmp_path, capsys):
    tool = load_table_tool()
    bad = tmp_path / 'other.json'
    bad.write_text(json.dumps({'device': 'cpu'}))
    with pytest.raises(ValueError, match='other.json.*missing keys'):
        tool.load_result(str(bad))
    broken = tmp_path / 'broken.json'
    broken.write_text('{not json')
    assert tool.main([str(broken)]) == 2
    assert 'broken.json' in capsys.readouterr().err


FAKE = '''#!{python}
"""Stands in for python: runs -c and the table tool for real, fakes the
benchmark (records its arguments, writes a result, fails or hangs on
request)."""
import json, os, subprocess, sys, time
args = sys.argv[1:]
if not args or not args[0].endswith('benchmark_throughput.py'):
    sys.exit(subprocess.call([{python!r}] + args))
with open(os.environ['FAKE_LOG'], 'a') as f:
    f.write(json.dumps(args) + '\\n')
mode = args[args.index('--augment-mode') + 1]
compiled = '--compile' in args
if os.environ.get('FAKE_FAIL') == mode and not compiled:
    print('boom: fake failure', file=sys.stderr)
    sys.exit(3)
if os.environ.get('FAKE_HANG') == mode and compiled:
    time.sleep(60)
res = json.loads(os.environ['FAKE_RESULT'])
res.update(augment_mode=mode, compile=compiled)
with open(args[args.index('--json-out') + 1], 'w') as f:
    json.dump(res, f)
print('table line')
print(json.dumps(res))
'''


def run_script(tmp_path, **env):
    fake = tmp_path / 'fakepython'
    fake.write_text(FAKE.format(python=sys.executable))
    fake.chmod(0o755)
    log = tmp_path / 'calls.jsonl'
    full = dict(os.environ, PYTHON=str(fake), FAKE_LOG=str(log),
                FAKE_RESULT=json.dumps(result()), DEVICE='cuda')
    full.update(env)
    out = tmp_path / 'out'
    proc = subprocess.run(['bash', SCRIPT, str(out)], cwd=tmp_path,
                          env=full, capture_output=True, text=True,
                          timeout=120)
    calls = [json.loads(line) for line in log.read_text().splitlines()] \
        if log.exists() else []
    return proc, out, calls


def test_script_runs_each_mode_with_its_flags(tmp_path):
    proc, out, calls = run_script(tmp_path, WORKERS='7')
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 3  # default MODES: gather dense dense+compile
    for args, (mode, compiled) in zip(calls, [('gather', False),
                                              ('dense', False),
                                              ('dense', True)]):
        assert args[args.index('--augment-mode') + 1] == mode
        assert ('--compile' in args) == compiled
        assert args[args.index('--device') + 1] == 'cuda'
        assert args[args.index('--precision') + 1] == 'bf16'
        assert args[args.index('--workers') + 1] == '7'
        assert '--channels-last' in args
    names = sorted(os.listdir(out))
    assert names == ['dense.json', 'dense.log', 'dense_compile.json',
                     'dense_compile.log', 'gather.json', 'gather.log',
                     'summary.md']
    summary = (out / 'summary.md').read_text().splitlines()
    assert [line.split('|')[1].strip() for line in summary[2:]] == \
        ['gather', 'dense', 'dense_compile']
    assert summary[2:] == proc.stdout.strip().splitlines()[-3:]


def test_script_reports_failed_and_hung_runs_and_keeps_going(tmp_path):
    proc, out, calls = run_script(tmp_path, FAKE_FAIL='gather',
                                  FAKE_HANG='dense', LIMIT_S='2')
    assert proc.returncode == 1
    assert len(calls) == 3  # the failure did not stop the later runs
    assert 'FAILED (exit 3)' in proc.stdout and 'boom' in proc.stdout
    assert 'FAILED (timed out after 2s)' in proc.stdout
    assert 'failed runs: gather dense+compile' in proc.stderr
    summary = (out / 'summary.md').read_text().splitlines()
    assert len(summary) == 3 and summary[2].split('|')[1].strip() == 'dense'


def test_script_refuses_unknown_modes(tmp_path):
    proc, _, calls = run_script(tmp_path, MODES='gather fast')
    assert proc.returncode == 2 and "unknown mode 'fast'" in proc.stderr


def test_script_with_the_real_benchmark_on_cpu(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, DEVICE='cpu', WORKERS='1',
               MODES='gather',
               EXTRA='--quick --patches 4 --e2e-steps 2 --steps 1')
    out = tmp_path / 'out'
    proc = subprocess.run(['bash', SCRIPT, str(out)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    res = json.loads((out / 'gather.json').read_text())
    assert res['device'] == 'cpu' and res['quick'] is True
    assert res['augment_mode'] == 'gather' and res['precision'] == 'bf16'
    row = (out / 'summary.md').read_text().splitlines()[2]
    assert row.startswith('| gather | cpu')
    assert str(res['step_img_per_s_hlss']) in row


def test_script_help_prints_its_usage_and_runs_nothing(tmp_path):
    for flag in ('--help', '-h'):
        proc = subprocess.run(['bash', SCRIPT, flag], cwd=tmp_path,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith('The GPU throughput check')
        assert 'gpu_throughput_check.sh [OUT_DIR]' in proc.stdout
        assert 'PYTHON   interpreter' in proc.stdout
        assert not any(tmp_path.iterdir())  # no --help folder
    proc = subprocess.run(['bash', SCRIPT, '--out'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "unknown option '--out'" in proc.stderr


def test_script_defaults_to_the_environments_python(tmp_path):
    """Without PYTHON the script runs ``python`` from PATH (the active
    environment's), not the system python3."""
    shim = tmp_path / 'bin'
    shim.mkdir()
    record = tmp_path / 'which.txt'
    (shim / 'python').write_text(
        f'#!/usr/bin/env bash\necho python >> {record}\nexit 7\n')
    (shim / 'python3').write_text(
        f'#!/usr/bin/env bash\necho python3 >> {record}\nexit 7\n')
    for name in ('python', 'python3'):
        (shim / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != 'PYTHON'}
    env['PATH'] = f'{shim}:{env["PATH"]}'
    proc = subprocess.run(['bash', SCRIPT, str(tmp_path / 'out')],
                          capture_output=True, text=True, timeout=30,
                          env=env)
    assert proc.returncode == 2  # the import check failed: stopped
    assert record.read_text().split() == ['python']
