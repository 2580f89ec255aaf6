"""The kornia comparison of tools/benchmarks/benchmark_kornia_augment.py
runs on a tiny batch and finds the equivalences docs/augmentation.md
records (skipped without kornia)."""
import importlib.util
import os.path as osp

import pytest
import torch

pytest.importorskip('kornia')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

#: Ops whose kornia call gives bit-identical outputs for our params.
EXACT = ('resize', 'hflip', 'vflip', 'gaussian_noise',
         'color_jitter.brightness', 'solarize', 'affine', 'erasing')
#: Float-rounding agreement (different summation order or formula).
CLOSE = ('color_jitter.contrast', 'color_jitter.hue', 'autocontrast',
         'sharpness', 'gaussian_blur', 'random_resized_crop')


def _load_tool():
    path = osp.join(REPO, 'tools', 'benchmarks',
                    'benchmark_kornia_augment.py')
    spec = importlib.util.spec_from_file_location('bench_kornia', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_equivalence_check_on_a_tiny_batch():
    rows = _load_tool().run(batch=3, sizes=(20, ), time_it=False)
    diff = {r['op']: r['max_abs'] for r in rows}
    assert set(diff) == set(EXACT) | set(CLOSE) | {'color_jitter.saturation'}
    for name in EXACT:
        assert diff[name] == 0.0, name
    for name in CLOSE:
        assert diff[name] < 2e-5, (name, diff[name])
    # kornia's grey is 0.299 R (torchvision's, ours: 0.2989 R): a real but
    # small difference
    assert 1e-6 < diff['color_jitter.saturation'] < 1e-4


def test_affine_matrix_maps_the_centre_to_itself_plus_translation():
    tool = _load_tool()
    params = {'angle': torch.tensor([30.0]),
              'translate': torch.tensor([[2.0, -3.0]])}
    m = tool._affine_matrix(params, h=9, w=5)
    centre = torch.tensor([2.0, 4.0, 1.0])  # ((w - 1) / 2, (h - 1) / 2)
    assert torch.allclose(m[0] @ centre, torch.tensor([4.0, 1.0]))


def test_corners_are_inclusive_xy():
    box = torch.tensor([[1, 2, 3, 4]])  # top, left, h, w
    corners = _load_tool()._corners(box)
    assert corners.tolist() == [[[2, 1], [5, 1], [5, 3], [2, 3]]]
