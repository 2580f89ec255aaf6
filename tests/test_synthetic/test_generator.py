"""Tests of the synthetic OpenSRH-layout generator.

Image statistics here are computed from the written TIFFs with plain numpy,
independently of the renderer's internals.
"""
import hashlib
import importlib.util
import itertools
import json
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from hlss_plugin.synthetic import (ATTRIBUTE_NAMES, OPENSRH_CLASSES, as_dict,
                                   class_profile, make_synthetic_srh,
                                   render_srh_patch)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = dict(patients_per_class=2, slides=2, patches=4, size=96, seed=0)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('syn') / 'out')
    summary = make_synthetic_srh(out, **CONFIG)
    return out, summary


def _json(root, name):
    with open(osp.join(root, 'meta', name), encoding='utf-8') as f:
        return json.load(f)


def _listed(meta):
    """Yield ``(patient, class, slide, rel_path)`` for every listed patch."""
    for pid, entry in meta.items():
        for slide, lists in entry['slides'].items():
            for rel in lists['tumor_patches'] + lists['normal_patches']:
                yield pid, entry['class'], slide, rel


def _images(root):
    """``[(class, 'patient/slide', float64 (2, H, W) image)]``."""
    meta = _json(root, 'opensrh.json')
    return [(cls, f'{pid}/{slide}',
             tifffile.imread(osp.join(root, rel)).astype(np.float64))
            for pid, cls, slide, rel in _listed(meta)]


def _hashes(root):
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                out[osp.relpath(path,
                                root)] = hashlib.sha256(f.read()).hexdigest()
    return out


# ------------------------------------------------------------- layout
def test_layout_and_opensrh_schema(dataset):
    root, summary = dataset
    meta = _json(root, 'opensrh.json')
    n_classes = len(OPENSRH_CLASSES)
    assert len(meta) == summary['patients'] == 2 * n_classes
    assert summary['slides'] == 4 * n_classes
    assert summary['patches'] == 16 * n_classes
    classes = [entry['class'] for entry in meta.values()]
    assert sorted(classes) == sorted(list(OPENSRH_CLASSES) * 2)
    for pid, entry in meta.items():
        assert re.fullmatch(r'SYN\d{4}', pid)
        assert set(entry) == {'class', 'slides'}
        assert list(entry['slides']) == ['1', '2']
        for slide, lists in entry['slides'].items():
            assert set(lists) == {'tumor_patches', 'normal_patches'}
            if entry['class'] == 'normal':
                assert lists['tumor_patches'] == []
                paths = lists['normal_patches']
            else:
                assert lists['normal_patches'] == []
                paths = lists['tumor_patches']
            assert len(paths) == 4
            for k, rel in enumerate(paths, start=1):
                assert rel == (f'studies/{pid}/{slide}/patches/'
                               f'{pid}-{slide}-{k:04d}.tif')


def test_every_listed_patch_is_a_two_channel_uint16_tiff(dataset):
    root, _ = dataset
    listed = {rel for *_, rel in _listed(_json(root, 'opensrh.json'))}
    on_disk = {
        osp.relpath(osp.join(folder, name), root).replace(os.sep, '/')
        for folder, _, files in os.walk(osp.join(root, 'studies'))
        for name in files
    }
    assert on_disk == listed
    for rel in sorted(listed)[::7]:
        image = tifffile.imread(osp.join(root, rel))
        assert image.shape == (2, 96, 96) and image.dtype == np.uint16
        # Realistic SRH counts: no clipping at 0 or 65535, tissue in the
        # thousands to tens of thousands.
        assert 500 < np.percentile(image, 0.1)
        assert np.percentile(image, 99.9) < 60000
        assert 3000 < image.mean() < 30000


def test_split_is_patient_disjoint_covering_and_stratified(tmp_path):
    summary = make_synthetic_srh(
        str(tmp_path / 'a'),
        patients_per_class=6,
        slides=1,
        patches=1,
        size=32,
        seed=3)
    root = summary['out_dir']
    split = _json(root, 'train_val_split.json')
    meta = _json(root, 'opensrh.json')
    assert set(split) == {'train', 'val'}
    train, val = set(split['train']), set(split['val'])
    assert len(train) == len(split['train']) and len(val) == len(split['val'])
    assert not train & val
    assert train | val == set(meta)
    for cls in OPENSRH_CLASSES:
        members = {p for p, e in meta.items() if e['class'] == cls}
        assert (len(members & train), len(members & val)) == (4, 2)
    assert (summary['train_patients'], summary['val_patients']) == (28, 14)


@pytest.mark.parametrize('per_class, expected', [(1, (1, 0)), (2, (1, 1)),
                                                 (3, (2, 1)), (4, (3, 1))])
def test_split_sizes_per_class(tmp_path, per_class, expected):
    root = make_synthetic_srh(
        str(tmp_path),
        patients_per_class=per_class,
        slides=1,
        patches=1,
        size=32,
        classes=('lgg', ))['out_dir']
    split = _json(root, 'train_val_split.json')
    assert (len(split['train']), len(split['val'])) == expected


def test_ground_truth_covers_every_level(dataset):
    root, _ = dataset
    meta = _json(root, 'opensrh.json')
    truth = _json(root, 'synthetic_attributes.json')
    assert set(truth) == {'attributes', 'classes', 'generator', 'patients'}
    assert truth['generator'] == {'seed': 0, 'size': 96, 'version': 1}
    assert truth['classes'] == list(OPENSRH_CLASSES)
    assert list(truth['attributes']) == list(ATTRIBUTE_NAMES)
    assert 8 <= len(ATTRIBUTE_NAMES) <= 12
    assert all(
        isinstance(d, str) and d and '\n' not in d
        for d in truth['attributes'].values())

    def check(values):
        assert list(values) == list(ATTRIBUTE_NAMES)
        for x in values.values():
            assert 0.0 <= x <= 1.0 and round(x, 4) == x

    assert set(truth['patients']) == set(meta)
    for pid, entry in truth['patients'].items():
        assert set(entry) == {'class', 'attributes', 'slides'}
        assert entry['class'] == meta[pid]['class']
        check(entry['attributes'])
        assert set(entry['slides']) == set(meta[pid]['slides'])
        for slide, s_entry in entry['slides'].items():
            assert set(s_entry) == {'attributes', 'patches'}
            check(s_entry['attributes'])
            lists = meta[pid]['slides'][slide]
            assert list(s_entry['patches']) == (
                lists['tumor_patches'] + lists['normal_patches'])
            for values in s_entry['patches'].values():
                check(values)


def test_ground_truth_follows_class_profiles(dataset):
    """Patient attributes scatter around their class profile."""
    truth = _json(dataset[0], 'synthetic_attributes.json')
    for cls in OPENSRH_CLASSES:
        rows = [[e['attributes'][n] for n in ATTRIBUTE_NAMES]
                for e in truth['patients'].values() if e['class'] == cls]
        assert np.abs(np.mean(rows, 0) - class_profile(cls)).max() < 0.25


# -------------------------------------------------------- determinism
def test_same_seed_gives_identical_files(dataset, tmp_path):
    root, _ = dataset
    again = make_synthetic_srh(str(tmp_path / 'again'), **CONFIG)['out_dir']
    first, second = _hashes(root), _hashes(again)
    assert len(first) == 3 + 16 * len(OPENSRH_CLASSES)
    assert first == second


def test_other_seed_gives_other_images(dataset, tmp_path):
    root, _ = dataset
    other = make_synthetic_srh(
        str(tmp_path / 'other'), **dict(CONFIG, seed=1))['out_dir']
    tifs = lambda h: {v for k, v in h.items() if k.endswith('.tif')}  # noqa
    first, second = tifs(_hashes(root)), tifs(_hashes(other))
    assert len(first) == len(second) == 16 * len(OPENSRH_CLASSES)
    assert not first & second


def test_rerun_replaces_an_earlier_output(tmp_path):
    out = str(tmp_path / 'out')
    make_synthetic_srh(
        out,
        patients_per_class=2,
        slides=2,
        patches=2,
        size=32,
        classes=('hgg', ))
    make_synthetic_srh(
        out,
        patients_per_class=1,
        slides=1,
        patches=1,
        size=32,
        classes=('hgg', ))
    tifs = [
        f for _, _, files in os.walk(out) for f in files if f.endswith('.tif')
    ]
    assert len(tifs) == 1  # no stale patches of the first run


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(ValueError, match='empty.*overwrite=True'):
        make_synthetic_srh(
            str(tmp_path),
            patients_per_class=1,
            slides=1,
            patches=1,
            size=32,
            classes=('hgg', ))
    make_synthetic_srh(
        str(tmp_path),
        patients_per_class=1,
        slides=1,
        patches=1,
        size=32,
        classes=('hgg', ),
        overwrite=True)
    assert (tmp_path / 'notes.txt').read_text() == 'mine'
    assert (tmp_path / 'meta' / 'opensrh.json').is_file()


# ------------------------------------------------------ image content
def _box(x, k):
    """Mean over k x k windows ('valid' part), via a summed-area table."""
    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def _nuclear_fraction(image):
    """Area fraction of protein-rich, lipid-poor blobs (nuclei)."""
    ch2, ch3 = image
    return float((_box((ch3 - ch2) / (ch3 + ch2), 3) > 0.3).mean())


def _lipid_protein_ratio(image):
    return float(image[0].mean() / image[1].mean())


def _coherence(channel):
    """Structure-tensor orientation coherence in [0, 1] (1: all parallel)."""
    gy, gx = np.gradient(_box(channel, 2))
    jxx, jyy, jxy = (gx * gx).mean(), (gy * gy).mean(), (gx * gy).mean()
    return float(np.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy))


def _per_class(images, stat):
    out = {}
    for cls, _, image in images:
        out.setdefault(cls, []).append(stat(image))
    return {cls: np.asarray(v) for cls, v in out.items()}


def test_classes_differ_as_a_pathologist_expects(dataset):
    images = _images(dataset[0])
    nuclei = _per_class(images, _nuclear_fraction)
    lipid = _per_class(images, _lipid_protein_ratio)
    fibres = _per_class(images, lambda im: _coherence(im[0]))
    spindles = _per_class(images, lambda im: _coherence(im[1]))
    # Hypercellular tumours vs sparse normal brain: every patch.
    assert nuclei['hgg'].min() > nuclei['normal'].max()
    assert nuclei['pitui'].min() > nuclei['normal'].max()
    assert nuclei['hgg'].mean() > 1.5 * nuclei['lgg'].mean()
    # Lipid-rich myelinated brain is brighter in CH2 than any tumour.
    assert lipid['normal'].min() > lipid['hgg'].max()
    for cls in OPENSRH_CLASSES:
        if cls != 'normal':
            assert lipid['normal'].mean() > lipid[cls].mean()
    # Oriented myelinated fibres in CH2 only in (white-matter) brain.
    for cls in OPENSRH_CLASSES:
        if cls not in ('normal', 'lgg'):
            assert fibres['normal'].mean() > 2 * fibres[cls].mean()
    # Spindle-cell fascicles (schwannoma) vs monotonous round cells
    # (pituitary adenoma) and epithelioid nests (metastasis) in CH3.
    assert spindles['schwan'].mean() > 1.5 * spindles['pitui'].mean()
    assert spindles['schwan'].mean() > 1.5 * spindles['metast'].mean()


def test_patches_of_a_slide_resemble_each_other(dataset):
    """Within-slide feature distance < between-slide distance per class."""
    images = _images(dataset[0])
    feats = [(cls, slide,
              np.log([im[0].mean(), im[1].mean(), im[0].std(), im[1].std()]))
             for cls, slide, im in images]
    within, between = {}, {}
    for (c1, s1, f1), (c2, s2, f2) in itertools.combinations(feats, 2):
        if c1 == c2:
            (within if s1 == s2 else between).setdefault(c1, []).append(
                np.linalg.norm(f1 - f2))
    w = {c: np.mean(v) for c, v in within.items()}
    b = {c: np.mean(v) for c, v in between.items()}
    assert np.mean(list(w.values())) < 0.8 * np.mean(list(b.values()))
    assert sum(w[c] < b[c] for c in OPENSRH_CLASSES) >= 6


def test_render_is_deterministic_and_checks_attributes():
    values = as_dict(class_profile('schwan'))
    one = render_srh_patch(values, np.random.default_rng(7), size=40)
    two = render_srh_patch(values, np.random.default_rng(7), size=40)
    assert one.shape == (2, 40, 40) and one.dtype == np.uint16
    assert np.array_equal(one, two)
    with pytest.raises(ValueError, match='missing.*whorls'):
        render_srh_patch({
            k: v
            for k, v in values.items() if k != 'whorls'
        },
                         np.random.default_rng(0),
                         size=40)
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        render_srh_patch(
            dict(values, necrosis=1.5), np.random.default_rng(0), size=40)


# ------------------------------------------------------- errors / CLI
@pytest.mark.parametrize('kwargs, match', [
    (dict(patients_per_class=0), 'patients_per_class must be an integer'),
    (dict(slides=0), 'slides must be an integer >= 1'),
    (dict(patches=-2), 'patches must be an integer >= 1'),
    (dict(size=31), 'size must be an integer >= 32'),
    (dict(size=64.0), 'size must be an integer'),
    (dict(slides=True), 'slides must be an integer'),
    (dict(seed=-1), 'seed must be an integer >= 0'),
    (dict(classes=('hgg', 'glioma')), r"unknown classes \['glioma'\]"),
    (dict(classes='hgg'), r"classes=\['hgg'\]"),
    (dict(classes=()), 'classes is empty'),
    (dict(classes=('hgg', 'hgg')), 'more than once'),
])
def test_bad_arguments_raise_helpful_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_srh(str(tmp_path / 'out'), **kwargs)
    assert not (tmp_path / 'out').exists()  # validated before writing


def test_out_dir_that_is_a_file(tmp_path):
    path = tmp_path / 'file'
    path.write_text('x')
    with pytest.raises(ValueError, match='is a file'):
        make_synthetic_srh(str(path), patients_per_class=1, size=32)


def _run_cli(args, cwd):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    return subprocess.run(
        [sys.executable,
         osp.join(REPO, 'tools', 'misc', 'make_synthetic_srh.py')] + args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120)


def test_cli_writes_a_tiny_set(tmp_path):
    out = tmp_path / 'cli'
    # Run from outside the repository: the tool must find hlss_plugin itself.
    done = _run_cli([
        str(out), '--patients-per-class', '1', '--slides', '2', '--patches',
        '3', '--size', '32', '--seed', '5', '--classes', 'hgg,normal'
    ],
                    cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1
    assert re.search(
        r'wrote 12 patches .*2 patients.*4 slides.* in '
        r'\d+\.\d s$', lines[0])
    meta = _json(str(out), 'opensrh.json')
    assert sorted(e['class'] for e in meta.values()) == ['hgg', 'normal']
    assert _json(str(out), 'synthetic_attributes.json')['generator'] == {
        'seed': 5,
        'size': 32,
        'version': 1
    }


def test_cli_reports_bad_arguments(tmp_path, capsys):
    # In-process (a subprocess would re-import torch): load the tool's main.
    spec = importlib.util.spec_from_file_location(
        'make_synthetic_srh_tool',
        osp.join(REPO, 'tools', 'misc', 'make_synthetic_srh.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with pytest.raises(SystemExit) as exit_info:
        tool.main([str(tmp_path / 'x'), '--size', '8'])
    assert exit_info.value.code == 2
    assert 'size must be an integer >= 32' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.main([str(tmp_path / 'x'), '--classes', 'hgg,glioma'])
    assert "unknown classes ['glioma']" in capsys.readouterr().err
    assert not (tmp_path / 'x').exists()
