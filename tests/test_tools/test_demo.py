"""The README's demo, end to end on a tiny synthetic set (1 epoch)."""
import os.path as osp
import subprocess
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_demo_writes_report_and_grid(tmp_path):
    work = tmp_path / 'demo'
    out = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'misc', 'demo.py'), '--work-dir',
         str(work), '--patients-per-class', '3', '--patches', '4',
         '--num-workers', '0', '--max-epochs', '1', '--k', '5'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = (work / 'report.md').read_text()
    # 4 patients x 2 slides x 2 patches, two 224 px views each
    assert '16 patches = 4 patients × 2 slides × 2 patches; 2 views' in report
    assert '(16, 3, 64, 64)' in report  # the demo's 64 px views
    batch_part = report.split('![batch]')[0]
    rows = [line for line in batch_part.splitlines()
            if line.startswith('| SYN')]
    assert len(rows) == 8  # one row per (patient, slide)
    assert len({r.split('|')[1] for r in rows}) == 4
    assert (work / 'batch.png').stat().st_size > 10_000
    # HLSS trained with the embedded MiniLM tower and saved a checkpoint
    assert '## HLSS training' in report
    assert (work / 'train' / 'epoch_1.pth').is_file()
    # kNN metrics of trained and untrained models (k clipped to the bank)
    assert '## kNN evaluation' in report
    for level in ('patch', 'slide', 'patient'):
        assert f'| {level} | acc |' in report
    assert '## Attribute explanations' in report
    for png in ('confusion_patch.png', 'confusion_patient.png', 'tsne.png'):
        assert (work / png).stat().st_size > 5_000
        assert f'({png})' in report
    # per-level losses also go to TensorBoard
    assert list((work / 'train').glob('*/vis_data/events.out.tfevents.*'))
    for level in ('patch', 'slide', 'patient'):
        for term in ('hvc', 'ha'):
            assert f'| loss_{level}_{term} |' in report
    # a second run reuses the data instead of regenerating it
    again = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'misc', 'demo.py'), '--work-dir',
         str(work), '--num-workers', '0', '--skip-train'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'data reused' in again.stdout or 'reused at' in again.stdout
