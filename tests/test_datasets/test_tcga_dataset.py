"""TCGADataset: HDF5 patch bags."""
import json
import os
import os.path as osp

import h5py
import numpy as np
import pytest
from mmengine.registry import init_default_scope

import hlss_plugin  # noqa: F401  registers the transforms
from hlss_plugin.datasets.tcga_dataset import TCGADataset


def make_bag(path, n, dtype=np.uint8, key='imgs'):
    os.makedirs(osp.dirname(path), exist_ok=True)
    with h5py.File(path, 'w') as f:
        f.create_dataset(key, data=np.zeros((n, 8, 8, 3), dtype=dtype))


def make_root(root, meta, split=None):
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'tcga.json'), 'w') as f:
        json.dump(meta, f)
    if split:
        with open(osp.join(root, 'meta', 'train_val_split.json'), 'w') as f:
            json.dump(split, f)


def test_items_from_counts_and_headers(tmp_path):
    root = str(tmp_path)
    make_bag(osp.join(root, 'bags', 'b.h5'), 4)
    make_root(root, {
        'T1': {'class': 'LUAD', 'slides': {
            'DX1': {'h5': 'bags/a.h5', 'num_patches': 3},  # no file opened
            'DX2': 'bags/b.h5'}},                          # header read
        'T2': {'class': 'LUSC', 'slides': {'DX1': {'h5': 'bags/c.h5',
                                                   'num_patches': 2}}},
    }, {'train': ['T1'], 'val': ['T2']})
    ds = TCGADataset(root, split='train')
    assert ds.metainfo['classes'] == ('LUAD', 'LUSC')
    items = [ds.get_data_info(i) for i in range(len(ds))]
    assert [(d['slide'], d['patch_idx']) for d in items] == [
        ('T1/DX1', 0), ('T1/DX1', 1), ('T1/DX1', 2),
        ('T1/DX2', 0), ('T1/DX2', 1), ('T1/DX2', 2), ('T1/DX2', 3)]
    assert items[3]['img_path'] == osp.join(root, 'bags', 'b.h5')
    val = TCGADataset(root, split='val')
    assert [val.get_data_info(i)['gt_label'] for i in range(2)] == [1, 1]
    assert val.get_hierarchy().num_slides == 1


def test_bad_bags(tmp_path):
    root = str(tmp_path)
    make_root(root, {'T1': {'class': 'LUAD', 'slides': {'DX1': 'x.h5'}}})
    with pytest.raises(ValueError, match=r'\["T1"\]\["slides"\]\["DX1"\]: '
                       r'cannot open HDF5 bag .*x.h5.*num_patches'):
        TCGADataset(root, split=None)
    make_bag(osp.join(root, 'x.h5'), 2, key='patches')
    with pytest.raises(ValueError, match="has no dataset 'imgs'.*h5_key"):
        TCGADataset(root, split=None)
    init_default_scope('mmpretrain')
    ds = TCGADataset(root, split=None, h5_key='patches',
                     pipeline=[dict(type='LoadH5Patch')])
    assert len(ds) == 2
    # the dataset's h5_key reaches the loader through the item
    assert ds[1]['img'].shape == (3, 8, 8)
    make_root(root, {'T1': {'class': 'LUAD', 'slides': {'DX1': {
        'h5': '../x.h5', 'num_patches': 2}}}})
    with pytest.raises(ValueError, match='leaves data_root'):
        TCGADataset(root, split=None)
    make_root(root, {'T1': {'class': 'LUAD', 'slides': {'DX1': {
        'h5': 'x.h5', 'num_patches': -1}}}})
    with pytest.raises(ValueError, match='"num_patches" must be a whole'):
        TCGADataset(root, split=None)
    make_root(root, {'T1': {'class': 'LUAD', 'slides': {'DX1': 5}}})
    with pytest.raises(ValueError, match=r'expected "path.h5"'):
        TCGADataset(root, split=None)
