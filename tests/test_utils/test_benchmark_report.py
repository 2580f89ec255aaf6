"""Benchmark report: seed statistics, the spread rule against `random`,
chance levels of the kNN data, and the markdown table and figures rendered
from a fake report."""
import os.path as osp
import statistics

import pytest

from hlss_plugin.benchmark.report import (compare_to_random,
                                                curve_series, finalize,
                                                format_pm, knn_split_stats,
                                                mean_std, plot_accuracy,
                                                plot_curves, render_markdown)

LEVELS = ('patch', 'slide', 'patient')


def test_mean_std_is_sample_statistics():
    values = [0.61, 0.70, 0.74]
    stat = mean_std(values)
    assert stat['mean'] == pytest.approx(sum(values) / 3)
    assert stat['std'] == pytest.approx(statistics.stdev(values))  # ddof=1
    assert stat['n'] == 3
    assert mean_std([0.5, None]) == dict(mean=0.5, std=None, n=1)
    assert mean_std([]) == dict(mean=None, std=None, n=0)


@pytest.mark.parametrize('method, random, state', [
    ([0.60, 0.70], [0.30, 0.32], 'above'),   # diff 0.34 > 0.07
    ([0.30, 0.40], [0.30, 0.32], 'within'),  # diff 0.04 <= std 0.0707
    ([0.40, 0.42], [0.30, 0.50], 'within'),  # random's std 0.1414 wins
    ([0.10, 0.12], [0.30, 0.32], 'below'),
    ([0.60], [0.30, 0.32], None),            # one seed: no spread
    ([0.60, 0.70], [0.30], None),
])
def test_spread_rule(method, random, state):
    assert compare_to_random(mean_std(method), mean_std(random)) == state


def test_format_pm():
    assert format_pm(mean_std([0.70, 0.72])) == '71.0 ± 1.4'
    assert format_pm(mean_std([0.714])) == '71.4'
    assert format_pm(mean_std([0.70, 0.72]), mark='≈') == '71.0 ± 1.4 ≈'
    assert format_pm(mean_std([11.0, 13.0]), scale=1.0) == '12.0 ± 1.4'
    assert format_pm(None) == format_pm(mean_std([])) == '—'


def test_knn_split_stats():
    # bank: 2 patients; queries: patient 10 (class 0, 2 slides x 2
    # patches), patient 11 (class 1, 1 slide x 1 patch), patient 12
    # (class 0, 1 slide x 1 patch)
    items = [dict(knn_role='bank', gt_label=0, slide_idx=0, patient_idx=0),
             dict(knn_role='bank', gt_label=1, slide_idx=1, patient_idx=1)]
    for slide, patient, label, patches in ((20, 10, 0, 2), (21, 10, 0, 2),
                                           (22, 11, 1, 1), (23, 12, 0, 1)):
        items += [dict(knn_role='query', gt_label=label, slide_idx=slide,
                       patient_idx=patient)] * patches
    stats = knn_split_stats(items, classes=4)
    assert stats['bank'] == dict(patches=2, slides=2, patients=2)
    assert stats['query'] == dict(patches=6, slides=4, patients=3)
    assert stats['classes'] == 4
    chance = stats['chance']
    assert all(chance[lv]['uniform'] == 0.25 for lv in LEVELS)
    assert chance['patch']['majority'] == pytest.approx(5 / 6)
    assert chance['slide']['majority'] == pytest.approx(3 / 4)
    assert chance['patient']['majority'] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match='no query item'):
        knn_split_stats(items[:2], classes=4)
    with pytest.raises(ValueError, match='classes must be an int >= 1'):
        knn_split_stats(items, classes=0)


def run(seed, acc, mca=None, rank=10.0, error=None, curve=None):
    if error:
        return dict(seed=seed, error=error, metrics=None)
    metrics = {lv: dict(acc=a, mca=a if mca is None else mca, top2=a)
               for lv, a in zip(LEVELS, acc)}
    return dict(seed=seed, error=None, metrics=metrics, images_seen=48,
                train_time_s=5.0 + seed, diagnostics=dict(
                    effective_rank=rank + seed, std=0.01,
                    std_reference=0.04), curve=curve)


def fake_report():
    knn = knn_split_stats(
        [dict(knn_role='bank', gt_label=c, slide_idx=c, patient_idx=c)
         for c in range(7)]
        + [dict(knn_role='query', gt_label=min(c // 2, 5),
                slide_idx=100 + c, patient_idx=200 + c // 2)
           for c in range(14)], classes=7)
    settings = dict(
        data_root='/data', train_patches=28, budget_epochs=1,
        iters_per_epoch=3, batch_size=8, patients_per_batch=2, views=2,
        images_seen=48, depth=18, crop_size=32, workers=0, seeds=[0, 1],
        k=7, k_requested=200, eval_every=1, preset='cpu', knn_data=knn)
    curve = [dict(epoch=0, knn={lv: dict(acc=0.2) for lv in LEVELS},
                  diagnostics=dict(effective_rank=5.0, std=0.01,
                                   std_reference=0.04)),
             dict(epoch=1, losses=dict(loss=3.0, loss_patch_hvc=1.0),
                  knn={lv: dict(acc=0.5) for lv in LEVELS},
                  diagnostics=dict(effective_rank=9.0, std=0.02,
                                   std_reference=0.04))]
    methods = [
        dict(method='random', config=None, options=[], error=None,
             notes=[], runs=[run(0, (0.30, 0.30, 0.20)),
                             run(1, (0.32, 0.34, 0.20))]),
        # far above random at patch and slide, within at patient
        dict(method='hlss', config='configs/mmpretrain/hlss_srh.py',
             options=[], error=None, notes=[],
             runs=[run(0, (0.70, 0.60, 0.20), curve=curve),
                   run(1, (0.72, 0.66, 0.25), curve=curve)]),
        # one seed failed: no spread, no mark
        dict(method='hlss_no_ha', config='configs/mmpretrain/hlss_srh.py',
             options=[['ha', 'off']], error=None, notes=[],
             runs=[run(0, (0.90, 0.90, 0.90)),
                   run(1, None, error='training failed (exit 1): boom')]),
        dict(method='simclr', config='configs/mmpretrain/simclr.py',
             options=[], error='config: ValueError: bad', notes=[],
             runs=[]),
    ]
    return dict(command='python tools/benchmarks/benchmark.py --methods random hlss',
                machine=dict(cpu_count=2, torch='2.x', device='cpu',
                             mmengine='0.10', mmpretrain='1.2',
                             python='3.11', platform='linux'),
                settings=settings, notes=['k clipped'], methods=methods)


def table_rows(markdown):
    lines = markdown.splitlines()
    start = lines.index('## Results')
    rows = [line for line in lines[start:] if line.startswith('| ')]
    header = [c.strip() for c in rows[0].strip('|').split('|')]
    return {r['method']: r for r in (
        dict(zip(header, (c.strip() for c in row.strip('|').split('|'))))
        for row in rows[1:])}


def test_finalize_and_table():
    report = finalize(fake_report())
    hlss = report['methods'][1]
    assert hlss['metrics']['patch']['acc'] == pytest.approx(0.71)
    assert hlss['summary']['metrics']['patch']['acc']['std'] == \
        pytest.approx(statistics.stdev([0.70, 0.72]))
    assert hlss['vs_random']['patch']['acc'] == 'above'
    assert hlss['vs_random']['patient']['acc'] == 'within'
    assert hlss['train_time_s'] == pytest.approx(5.5)
    partial = report['methods'][2]
    assert partial['error'].startswith('seed 1: training failed')
    assert partial['summary']['seeds'] == [0]
    assert report['methods'][3]['metrics'] is None

    markdown = render_markdown(report)
    rows = table_rows(markdown)
    assert list(rows) == ['random', 'hlss', 'hlss_no_ha', 'simclr']
    r, h = rows['random'], rows['hlss']
    assert r['patch acc'] == '31.0 ± 1.4' and r['beats random'] == ''
    assert h['patch acc'] == '71.0 ± 1.4'  # no mark: far above
    assert h['slide acc'] == '63.0 ± 4.2'
    assert h['patient acc'] == '22.5 ± 3.5 ≈'  # within the spread
    assert h['beats random'] == 'acc: patch, slide; mca: patch, slide'
    assert h['eff. rank'] == '10.5 ± 0.7'
    assert h['seeds'] == '2/2' and h['status'] == 'ok'
    n = rows['hlss_no_ha']
    assert n['patch acc'] == '90.0'  # one seed: no std, no mark
    assert n['beats random'] == 'n/a (< 2 seeds)'
    assert n['seeds'] == '1/2'
    assert n['status'].startswith('partial: seed 1: training failed')
    assert n['config'].endswith('+ ha=off')
    s = rows['simclr']
    assert s['patch acc'] == '—' and s['status'].startswith('failed: config')
    # settings, chance levels, verdict and the command line
    assert '- command: `python tools/benchmarks/benchmark.py --methods random hlss`' \
        in markdown
    # queries: patients 0..6 with classes 0..5, 5 twice (4 patches)
    assert '| patch | 14 | 7 | 7 | 14.3 | 28.6 |' in markdown
    assert '| slide | 14 | 7 | 7 | 14.3 | 28.6 |' in markdown
    assert '| patient | 7 | 7 | 7 | 14.3 | 28.6 |' in markdown
    assert ('- acc: beat `random` by more than the seed spread: '
            'hlss (patch, slide)') in markdown
    assert 'preset: `cpu`' in markdown and '- k clipped' in markdown
    assert '![learning curves](curves.png)' in markdown


def test_one_seed_everywhere_has_no_marks():
    report = fake_report()
    for entry in report['methods']:
        entry['runs'] = entry['runs'][:1]
    report['methods'][2]['runs'] = [run(0, (0.90, 0.90, 0.90))]
    markdown = render_markdown(finalize(report))
    rows = table_rows(markdown)
    assert '≈' not in ''.join(r['patch acc'] + r['patient acc']
                              for r in rows.values())
    assert rows['hlss']['patch acc'] == '70.0'
    assert 'not judged (fewer than 2 successful seeds)' in markdown


def test_curve_series_and_figures(tmp_path):
    report = finalize(fake_report())
    series = curve_series(report['methods'][1]['runs'],
                          lambda r: (r.get('losses') or {}).get('loss'))
    assert series == dict(epochs=[1], mean=[3.0], std=[0.0])
    series = curve_series(report['methods'][1]['runs'],
                          lambda r: r['knn']['patch']['acc'])
    assert series['epochs'] == [0, 1] and series['mean'] == [0.2, 0.5]
    acc = plot_accuracy(report, str(tmp_path / 'benchmark.png'))
    curves = plot_curves(report, str(tmp_path / 'curves.png'))
    assert osp.getsize(acc) > 1000 and osp.getsize(curves) > 1000
    for entry in report['methods']:
        for r in entry['runs']:
            r['curve'] = None
    assert plot_curves(report, str(tmp_path / 'none.png')) is None
    assert not osp.exists(tmp_path / 'none.png')
