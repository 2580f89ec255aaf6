"""HierarchicalManifestDataset: CSV manifests."""
import os.path as osp

import pytest

from hlss_plugin.datasets.hierarchical_manifest_dataset import \
    HierarchicalManifestDataset

ROWS = """path,patient,slide,label,split
a/1.png,pA,s1,tumour,train
a/2.png,pA,s1,tumour,train
a/3.png,pA,s2,tumour,train
b/1.png,pB,s1,normal,val
c/1.tif,pC,s1,tumour,val
"""


def write(tmp_path, text, name='patches.csv'):
    path = osp.join(str(tmp_path), name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def test_rows_splits_and_root(tmp_path):
    csv = write(tmp_path, ROWS)
    ds = HierarchicalManifestDataset(csv, split='train')
    assert ds.metainfo['classes'] == ('normal', 'tumour')
    assert [ds.get_data_info(i)['slide'] for i in range(len(ds))] == [
        'pA/s1', 'pA/s1', 'pA/s2']
    assert ds.get_data_info(0)['img_path'] == osp.join(str(tmp_path), 'a',
                                                       '1.png')
    val = HierarchicalManifestDataset(csv, split='val')
    assert [val.get_data_info(i)['gt_label'] for i in range(2)] == [0, 1]
    both = HierarchicalManifestDataset(csv, split=['pA', 'pC'])
    assert len(both) == 4 and both.get_hierarchy().num_patients == 2
    assert len(HierarchicalManifestDataset(csv)) == 5
    rel = HierarchicalManifestDataset('patches.csv', data_root=str(tmp_path),
                                      split='val')
    assert len(rel) == 2


@pytest.mark.parametrize('text, kwargs, match', [
    ('path,patient,label\nx.png,p,c\n', {}, r"lacks column\(s\) \['slide'\]"),
    ('path,patient,slide,label\nx.png,p,,c\n', {},
     r"line 2: empty \['slide'\]"),
    ('path,patient,slide,label\nx.png,p,s,c\n', dict(split='train'),
     'no "split" column'),
    (ROWS, dict(split='test'), r"unknown split 'test'.*\['train', 'val'\]"),
    (ROWS, dict(split=['pZ']), r"missing from the metadata: \['pZ'\]"),
    (ROWS.replace('c/1.tif', '../../c.tif'), {}, 'line 6 "path".*leaves '
     'data_root'),
])
def test_bad_manifests(tmp_path, text, kwargs, match):
    with pytest.raises(ValueError, match=match):
        HierarchicalManifestDataset(write(tmp_path, text), **kwargs)


def test_missing_manifest(tmp_path):
    with pytest.raises(ValueError, match='manifest .*nope.csv does not exist'):
        HierarchicalManifestDataset(osp.join(str(tmp_path), 'nope.csv'))
