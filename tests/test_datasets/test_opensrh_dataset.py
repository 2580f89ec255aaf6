"""OpenSRHDataset: layout parsing, splits, hierarchy, bad input."""
import json
import os
import os.path as osp
import time

import numpy as np
import pytest

from hlss_plugin.datasets.opensrh_dataset import OpenSRHDataset


def write_meta(root, meta, split=None):
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'opensrh.json'), 'w') as f:
        json.dump(meta, f)
    if split is not None:
        with open(osp.join(root, 'meta', 'train_val_split.json'), 'w') as f:
            json.dump(split, f)


def small_meta():
    """3 patients: two tumour (2 slides) and one normal (1 slide)."""
    def tumour(pid, slides, k):
        return {'class': 'hgg' if pid != 'P2' else 'mening', 'slides': {
            str(s): {'tumor_patches': [
                f'studies/{pid}/{s}/patches/{pid}-{s}-{i}.tif'
                for i in range(k)], 'normal_patches': [f'n{i}.tif'
                                                       for i in range(2)]}
            for s in slides}}
    return {
        'P1': tumour('P1', [1, 2], 3),
        'P2': tumour('P2', [1, 2], 2),
        'N1': {'class': 'normal', 'slides': {'7': {
            'tumor_patches': [], 'normal_patches': ['a.tif', 'b.tif']}}},
    }


def test_items_hierarchy_and_classes(tmp_path):
    write_meta(str(tmp_path), small_meta(),
               {'train': ['P1', 'N1'], 'val': ['P2']})
    ds = OpenSRHDataset(str(tmp_path), split='train')
    assert ds.metainfo['classes'] == ('hgg', 'mening', 'normal')
    assert len(ds) == 2 * 3 + 2
    items = [ds.get_data_info(i) for i in range(len(ds))]
    normal = [d for d in items if d['patient'] == 'N1']
    # the normal patient uses normal_patches, resolved under studies/
    assert [d['img_path'] for d in normal] == [
        osp.join(str(tmp_path), 'studies', 'N1', '7', 'patches', n)
        for n in ('a.tif', 'b.tif')]
    assert {d['gt_label'] for d in normal} == {2}
    assert {d['slide'] for d in items} == {'P1/1', 'P1/2', 'N1/7'}
    h = ds.get_hierarchy()
    assert h.num_patients == 2 and h.num_slides == 3
    for p in range(h.num_patients):
        for s in h.slides_of(p):
            for i in h.patches_of(s):
                assert items[i]['patient'] == h.patient_names[p]
                assert items[i]['slide'] == h.slide_names[s]
                assert items[i]['gt_label'] == h.patient_labels[p]
    # class indices agree between splits even though val lacks 'normal'
    val = OpenSRHDataset(str(tmp_path), split='val')
    assert val.metainfo['classes'] == ds.metainfo['classes']
    assert {val.get_data_info(i)['gt_label'] for i in range(len(val))} == {1}


def test_split_list_none_and_lazy(tmp_path):
    write_meta(str(tmp_path), small_meta())
    ds = OpenSRHDataset(str(tmp_path), split=['P2'], lazy_init=True)
    assert not ds._fully_initialized
    assert len(ds) == 4
    assert len(OpenSRHDataset(str(tmp_path), split=None)) == 6 + 4 + 2


def test_custom_meta_names_and_classes(tmp_path):
    write_meta(str(tmp_path), small_meta())
    os.rename(osp.join(str(tmp_path), 'meta', 'opensrh.json'),
              osp.join(str(tmp_path), 'meta', 'release2.json'))
    ds = OpenSRHDataset(str(tmp_path), split=None,
                        meta_file='meta/release2.json',
                        metainfo=dict(classes=['normal', 'mening', 'hgg']))
    assert ds.metainfo['classes'] == ('normal', 'mening', 'hgg')
    labels = {ds.get_data_info(i)['patient']: ds.get_data_info(i)['gt_label']
              for i in range(len(ds))}
    assert labels == {'P1': 2, 'P2': 1, 'N1': 0}


@pytest.mark.parametrize('split, match', [
    ('test', r"unknown split 'test'.*\['train', 'val'\]"),
    (['P1', 'ghost'], r"missing from the metadata: \['ghost'\]"),
])
def test_bad_splits(tmp_path, split, match):
    write_meta(str(tmp_path), small_meta(), {'train': ['P1'], 'val': ['P2']})
    with pytest.raises(ValueError, match=match):
        OpenSRHDataset(str(tmp_path), split=split)


def test_split_file_names_missing_patient(tmp_path):
    write_meta(str(tmp_path), small_meta(), {'train': ['P1', 'P9']})
    with pytest.raises(ValueError, match=r'train_val_split.json\["train"\]'
                       r'.*P9'):
        OpenSRHDataset(str(tmp_path), split='train')


def test_missing_and_corrupt_meta(tmp_path):
    with pytest.raises(ValueError, match='meta_file .*opensrh.json does not '
                       'exist.*make_synthetic_srh'):
        OpenSRHDataset(str(tmp_path), split=None)
    os.makedirs(osp.join(str(tmp_path), 'meta'))
    with open(osp.join(str(tmp_path), 'meta', 'opensrh.json'), 'w') as f:
        f.write('{"P1": ')
    with pytest.raises(ValueError, match='not valid JSON'):
        OpenSRHDataset(str(tmp_path), split=None)
    write_meta(str(tmp_path), {'P1': {'class': 'hgg'}})
    with pytest.raises(ValueError, match=r"'P1' needs keys \"class\" and "
                       r"\"slides\""):
        OpenSRHDataset(str(tmp_path), split=None)


def test_slide_without_patches_is_an_error(tmp_path):
    """An empty slide is refused, never left out silently."""
    meta = small_meta()
    meta['P1']['slides']['2']['tumor_patches'] = []
    write_meta(str(tmp_path), meta)
    with pytest.raises(ValueError, match=r'opensrh.json \["P1"\]\["slides"\]'
                       r'\["2"\] has no patches \(no "tumor_patches"\).*'
                       r'remove the slide'):
        OpenSRHDataset(str(tmp_path), split=['P1'])


def test_all_empty_raises(tmp_path):
    meta = small_meta()
    write_meta(str(tmp_path), {'N1': meta['N1']})
    with pytest.raises(ValueError, match=r'\["N1"\]\["slides"\]\["7"\] has '
                       r'no patches'):
        OpenSRHDataset(str(tmp_path), split=None,
                       patch_keys=dict(normal='tumor_patches'))


def test_patch_path_leaving_root(tmp_path):
    meta = small_meta()
    meta['P1']['slides']['1']['tumor_patches'] = ['../../etc/passwd']
    write_meta(str(tmp_path), meta)
    with pytest.raises(ValueError, match=r'\["P1"\]\["slides"\]\["1"\]'
                       r'\["tumor_patches"\].*leaves data_root'):
        OpenSRHDataset(str(tmp_path), split=None)


def test_check_files(tmp_path):
    write_meta(str(tmp_path), small_meta())
    with pytest.raises(ValueError, match='does not exist.*on_bad_patch'):
        OpenSRHDataset(str(tmp_path), split=['N1'], check_files=True)
    folder = osp.join(str(tmp_path), 'studies', 'N1', '7', 'patches')
    os.makedirs(folder)
    for name in ('a.tif', 'b.tif'):
        open(osp.join(folder, name), 'wb').close()
    assert len(OpenSRHDataset(str(tmp_path), split=['N1'],
                              check_files=True)) == 2


def test_no_data_root():
    with pytest.raises(ValueError, match='needs data_root'):
        OpenSRHDataset('', split=None)


def test_index_300_patients_280k_patches_fast(tmp_path):
    """Index building reads metadata only (no image exists here)."""
    meta = {f'P{p:03d}': {'class': f'c{p % 7}', 'slides': {str(s): {
        'tumor_patches': [f'studies/P{p:03d}/{s}/patches/{i}.tif'
                          for i in range(311)], 'normal_patches': []}
        for s in range(3)}} for p in range(300)}
    write_meta(str(tmp_path), meta)
    start = time.perf_counter()
    ds = OpenSRHDataset(str(tmp_path), split=None)
    elapsed = time.perf_counter() - start
    assert len(ds) == 300 * 3 * 311 == 279900
    h = ds.get_hierarchy()
    assert (h.num_patients, h.num_slides) == (300, 900)
    assert np.bincount(h.item_slide).tolist() == [311] * 900
    # Generous bound for a loaded 2-core CI box; the target is 10 s.
    assert elapsed < 10, f'indexing took {elapsed:.1f} s'
