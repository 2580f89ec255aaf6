"""--help of the benchmark tools: every option explained, descriptions in
whole sentences, no start-up warnings; int options checked by argparse."""
import os.path as osp
import re
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
BENCH = osp.join(REPO, 'tools', 'benchmarks')


def run(name, *args):
    return subprocess.run([sys.executable, osp.join(BENCH, name), *args],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def option_help(text):
    """``{option: help text}`` of an argparse --help output."""
    out, current = {}, None
    for line in text.split('options:', 1)[1].splitlines():
        match = re.match(r'^  (-[-\w]+(?:, --[-\w]+)?)(?: [A-Z_{},.\w]+)?'
                         r'(?:\s{2,}(.*))?$', line)
        if match:
            current = match.group(1).split(', ')[-1]
            out[current] = match.group(2) or ''
        elif current and line.startswith(' ' * 10):
            out[current] += ' ' + line.strip()
    return out


def test_benchmark_data_help_explains_every_option():
    proc = run('benchmark_data.py', '--help')
    assert proc.returncode == 0 and proc.stderr == ''
    helps = option_help(proc.stdout)
    assert set(helps) >= {'--patches', '--repeats', '--views', '--recipe',
                          '--rand-prob', '--patch-size', '--size', '--seed',
                          '--quick'}
    assert all(text.strip() for text in helps.values()), helps


def test_benchmark_knn_help_ends_with_a_whole_sentence():
    proc = run('benchmark_knn.py', '--help')
    assert proc.returncode == 0 and proc.stderr == ''
    description = proc.stdout.split('\n\n')[1]
    assert ' '.join(description.split()) == (
        'Time the chunked kNN search of ``HierarchicalKNNMetric`` and '
        'measure its peak extra memory.')
    assert all(text.strip() for option, text in
               option_help(proc.stdout).items()), proc.stdout


@pytest.mark.parametrize('name,argv', [
    ('benchmark_knn.py', ['--k', '0']),
    ('benchmark_data.py', ['--views', '-1']),
    ('benchmark.py', ['--methods', 'random', '--work-dir', 'w', '--budget',
                      '0'])])
def test_int_options_are_refused_by_argparse(name, argv):
    proc = run(name, *argv)
    assert proc.returncode == 2
    assert 'expected an integer >= 1' in proc.stderr
