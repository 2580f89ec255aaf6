"""Fault injection: corrupt inputs must give errors that name the file, the
patient / slide and the fix -- never silently wrong results (issue 13).

Each test builds a tiny data set (synthetic OpenSRH, or hand-written JSON /
CSV), breaks one thing, and checks the error type and message.
"""
import importlib.util
import json
import os
import os.path as osp
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import DATASETS
from torch import nn

import hlss_plugin  # noqa: F401  registers datasets and transforms
from hlss_plugin.datasets import (HierarchicalManifestDataset,
                                  OpenSRHDataset, TCGADataset)
from hlss_plugin.datasets.base_hierarchical_dataset import total_skipped
from hlss_plugin.errors import BadPatchError
from hlss_plugin.models.text_towers import base_text_tower
from hlss_plugin.models.text_towers.base_text_tower import (
    BaseTextTower, file_digest, fingerprint_folder)
from hlss_plugin.utils import resolve_under_root
from hlss_plugin.utils.checkpoint import read_state_dict
from hlss_plugin.utils.resume import ResumeError, check_resume_checkpoint

TORCH_ADVICE = 'weights_only` set to `False'
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


# ----------------------------------------------------------------- helpers
def read_json(root, name):
    with open(osp.join(root, 'meta', name)) as f:
        return json.load(f)


def write_json(root, name, obj):
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', name), 'w') as f:
        json.dump(obj, f)
    return osp.join(root, 'meta', name)


def first_slide(meta, patient):
    slide = next(iter(meta[patient]['slides']))
    return slide, meta[patient]['slides'][slide]


def write_csv(tmp_path, text, name='patches.csv', encoding='utf-8'):
    path = str(tmp_path / name)
    with open(path, 'w', encoding=encoding, newline='') as f:
        f.write(text)
    return path


def tcga_root(tmp_path, meta, split=None):
    root = str(tmp_path)
    write_json(root, 'tcga.json', meta)
    if split is not None:
        write_json(root, 'train_val_split.json', split)
    return root


TCGA_META = {
    'T1': {'class': 'LUAD', 'slides': {'DX1': {'h5': 'b/1.h5',
                                               'num_patches': 2}}},
    'T2': {'class': 'LUSC', 'slides': {'DX1': {'h5': 'b/2.h5',
                                               'num_patches': 2}}},
}
MANIFEST = ('path,patient,slide,label,split\n'
            'a/1.png,pA,s1,tumour,train\n'
            'a/2.png,pA,s1,tumour,train\n'
            'b/1.png,pB,s1,normal,val\n')


# ------------------------------------------- patient in train and in val
def test_opensrh_patient_in_train_and_val(tiny_srh_copy):
    split = read_json(tiny_srh_copy, 'train_val_split.json')
    leaked = split['train'][0]
    split['val'].append(leaked)
    path = write_json(tiny_srh_copy, 'train_val_split.json', split)
    for name in ('train', 'val'):
        with pytest.raises(ValueError) as err:
            OpenSRHDataset(tiny_srh_copy, split=name)
        msg = str(err.value)
        assert path in msg and repr(leaked) in msg
        assert '"train" and "val"' in msg
        assert 'must be in exactly one split' in msg


def test_tcga_patient_in_train_and_val(tmp_path):
    root = tcga_root(tmp_path, TCGA_META,
                     {'train': ['T1', 'T2'], 'val': ['T2']})
    with pytest.raises(ValueError, match=r"train_val_split.json: 1 patient.*"
                       r"'T2' in \"train\" and \"val\".*exactly one split"):
        TCGADataset(root, split='val')


def test_patient_twice_in_one_split_list(tmp_path):
    root = tcga_root(tmp_path, TCGA_META, {'train': ['T1', 'T1']})
    with pytest.raises(ValueError, match=r"'T1' in \"train\" and \"train\""
                       r".*Remove the repeats"):
        TCGADataset(root, split='train')
    with pytest.raises(ValueError, match=r"names patient\(s\) \['T1'\] more "
                       r'than once.*Remove the repeats'):
        TCGADataset(root, split=['T1', 'T2', 'T1'])


def test_manifest_patient_in_two_splits(tmp_path):
    path = write_csv(tmp_path, MANIFEST + 'a/3.png,pA,s2,tumour,val\n')
    with pytest.raises(ValueError) as err:
        HierarchicalManifestDataset(path, split='train')
    msg = str(err.value)
    assert f'manifest {path}' in msg
    assert "'pA' in 'train' (lines 2, 3) and 'val' (line 5)" in msg
    assert 'exactly one split' in msg and 'same "split" value' in msg


def test_knn_bank_and_query_share_a_patient(tiny_srh):
    split = read_json(tiny_srh, 'train_val_split.json')
    leaked = split['train'][0]
    cfg = dict(type='HierarchicalKNNDataset',
               bank=dict(type='OpenSRHDataset', data_root=tiny_srh,
                         split='train'),
               query=dict(type='OpenSRHDataset', data_root=tiny_srh,
                          split=split['val'] + [leaked]))
    with pytest.raises(ValueError) as err:
        DATASETS.build(cfg)
    msg = str(err.value)
    assert repr(leaked) in msg and 'in both the bank' in msg
    assert osp.join(tiny_srh, 'meta', 'train_val_split.json') in msg
    assert 'disjoint splits' in msg
    # the normal case still builds
    cfg['query']['split'] = 'val'
    assert len(DATASETS.build(cfg)) == 8


# -------------------------------------------------------- duplicated data
def test_opensrh_patch_listed_twice(tiny_srh_copy):
    meta = read_json(tiny_srh_copy, 'opensrh.json')
    patient = next(p for p in meta if meta[p]['class'] != 'normal')
    slide, record = first_slide(meta, patient)
    record['tumor_patches'].append(record['tumor_patches'][0])
    path = write_json(tiny_srh_copy, 'opensrh.json', meta)
    with pytest.raises(ValueError) as err:
        OpenSRHDataset(tiny_srh_copy, split=None)
    msg = str(err.value)
    assert msg.startswith(f'{path}: patch ')
    assert f'["{patient}"]["slides"]["{slide}"]["tumor_patches"]' in msg
    assert 'listed twice' in msg and 'remove the duplicate entry' in msg


def test_tcga_bag_listed_by_two_slides(tmp_path):
    meta = json.loads(json.dumps(TCGA_META))
    meta['T2']['slides']['DX1']['h5'] = 'b/1.h5'
    root = tcga_root(tmp_path, meta)
    with pytest.raises(ValueError, match=r'tcga.json: HDF5 bag .*1.h5 is '
                       r'listed twice \(by \["T1"\]\["slides"\]\["DX1"\] and '
                       r'\["T2"\]\["slides"\]\["DX1"\]\).*remove the '
                       r'duplicate'):
        TCGADataset(root, split=None)


def test_manifest_duplicated_row(tmp_path):
    path = write_csv(tmp_path, MANIFEST + 'a/./1.png,pA,s1,tumour,train\n')
    with pytest.raises(ValueError) as err:
        HierarchicalManifestDataset(path)
    msg = str(err.value)
    assert f'manifest {path}: lines 2 and 5' in msg
    assert "'a/./1.png' (patient 'pA', slide 's1')" in msg
    assert 'delete the duplicate row' in msg


# ------------------------------------------------------- missing classes
@pytest.mark.parametrize('value, shown', [(None, 'null'), ('', '""'),
                                          ('  ', '"  "')])
def test_null_or_empty_class(tiny_srh_copy, value, shown):
    meta = read_json(tiny_srh_copy, 'opensrh.json')
    patient = sorted(meta)[-1]
    meta[patient]['class'] = value
    path = write_json(tiny_srh_copy, 'opensrh.json', meta)
    with pytest.raises(ValueError) as err:
        OpenSRHDataset(tiny_srh_copy, split=None)
    msg = str(err.value)
    assert msg.startswith(f'{path}: patient {patient!r} has "class": '
                          f'{shown}')
    assert 'Fill in the class' in msg


def test_missing_class_key(tmp_path):
    meta = json.loads(json.dumps(TCGA_META))
    del meta['T2']['class']
    with pytest.raises(ValueError, match=r"tcga.json: patient 'T2' needs "
                       r'keys "class" and "slides".*Fix the metadata'):
        TCGADataset(tcga_root(tmp_path, meta), split=None)


# ---------------------------------------------------- empty slides / patients
def test_patient_without_slides(tiny_srh_copy):
    meta = read_json(tiny_srh_copy, 'opensrh.json')
    patient = sorted(meta)[0]
    meta[patient]['slides'] = {}
    path = write_json(tiny_srh_copy, 'opensrh.json', meta)
    with pytest.raises(ValueError) as err:
        OpenSRHDataset(tiny_srh_copy, split=None)
    msg = str(err.value)
    assert msg.startswith(f'{path}: patient {patient!r} has no slides')
    assert 'remove the patient' in msg


def test_slide_without_patches(tiny_srh_copy, tmp_path):
    meta = read_json(tiny_srh_copy, 'opensrh.json')
    patient = next(p for p in meta if meta[p]['class'] == 'normal')
    slide, record = first_slide(meta, patient)
    record['normal_patches'] = []
    path = write_json(tiny_srh_copy, 'opensrh.json', meta)
    with pytest.raises(ValueError, match=rf'{path} \["{patient}"\]\["slides"\]'
                       rf'\["{slide}"\] has no patches \(no "normal_patches"'
                       rf'\).*remove the slide'):
        OpenSRHDataset(tiny_srh_copy, split=None)
    tcga = json.loads(json.dumps(TCGA_META))
    tcga['T1']['slides']['DX1']['num_patches'] = 0
    with pytest.raises(ValueError, match=r'\["T1"\]\["slides"\]\["DX1"\] has '
                       r'no patches'):
        TCGADataset(tcga_root(tmp_path / 'tcga', tcga), split=None)


# ------------------------------------------------------------- manifests
def test_manifest_patient_with_two_labels(tmp_path):
    path = write_csv(tmp_path, MANIFEST + '\na/3.png,pA,s2,normal,train\n')
    with pytest.raises(ValueError) as err:
        HierarchicalManifestDataset(path)
    msg = str(err.value)
    # the blank line counts: the spreadsheet shows the row on line 6
    assert (f"manifest {path}: patient 'pA' has more than one label: "
            f"'tumour' (lines 2, 3) and 'normal' (line 6)") in msg
    assert 'fix the "label" column' in msg


def test_manifest_with_excel_bom(tmp_path):
    path = write_csv(tmp_path, MANIFEST, encoding='utf-8-sig')
    with open(path, 'rb') as f:
        assert f.read(3) == b'\xef\xbb\xbf'
    ds = HierarchicalManifestDataset(path, split='train')
    assert len(ds) == 2
    assert ds.get_data_info(0)['img_path'] == str(tmp_path / 'a' / '1.png')


def test_data_root_is_filesystem_root(tmp_path):
    rel = str(tmp_path / 'a' / '1.png').lstrip('/')
    assert resolve_under_root('/', rel, 'x') == '/' + rel
    with pytest.raises(ValueError, match='leaves data_root'):
        resolve_under_root(str(tmp_path), '../x.png', 'x')
    text = MANIFEST.replace('a/', str(tmp_path / 'a').lstrip('/') + '/')
    ds = HierarchicalManifestDataset(write_csv(tmp_path, text),
                                     data_root='/', split='train')
    assert ds.get_data_info(1)['img_path'] == str(tmp_path / 'a' / '2.png')


# -------------------------------------------- skipped patches are totalled
class _FailOnSlide:
    """Pipeline step failing for one patch (``bad``)."""

    def __init__(self, bad):
        self.bad = bad

    def __call__(self, results):
        if results['img_path'] == self.bad:
            raise BadPatchError(results['img_path'], 'corrupt TIFF')
        return dict(slide=results['slide'])


def test_skips_in_workers_reach_the_main_process(tiny_srh):
    ds = OpenSRHDataset(tiny_srh, split='train', on_bad_patch='skip')
    bad = ds.get_data_info(0)['img_path']
    ds.pipeline = _FailOnSlide(bad)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=1,
                                         multiprocessing_context='fork')
    assert len(list(loader)) == len(ds)
    assert ds.num_skipped == 0  # the skips happened in the worker
    in_worker = ds.total_skipped
    assert in_worker >= 1  # (a retry may draw the bad patch again)
    ds[0]
    assert ds.num_skipped >= 1
    assert ds.total_skipped == in_worker + ds.num_skipped == total_skipped(ds)
    assert total_skipped(torch.utils.data.ConcatDataset([ds, ds])) == \
        2 * ds.total_skipped


def test_train_tool_prints_the_skipped_total(tiny_srh, capsys):
    spec = importlib.util.spec_from_file_location(
        'hlss_tools_train', osp.join(REPO, 'tools', 'train.py'))
    train_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_tool)
    ds = OpenSRHDataset(tiny_srh, split='train', on_bad_patch='skip')
    runner = SimpleNamespace(_train_loop=SimpleNamespace(
        dataloader=SimpleNamespace(dataset=ds)))
    assert train_tool.report_skipped_patches(runner) == 0
    assert capsys.readouterr().out == ''
    ds.pipeline = _FailOnSlide(ds.get_data_info(0)['img_path'])
    ds[0]
    assert train_tool.report_skipped_patches(runner) == ds.num_skipped >= 1
    assert (f'tools/train.py: {ds.num_skipped} bad patch(es) were skipped '
            f'during training') in capsys.readouterr().out


# ----------------------------------------------------- text embedding cache
class FileTower(BaseTextTower):
    """Tiny text model: a letter-count bag through one weight matrix read
    from ``<folder>/model.bin``, which is padded to 6 MiB (past the old
    1 MiB head / tail sampling) with the layer in the middle."""

    PAD = 3 << 20

    def __init__(self, folder, cache_dir=None):
        super().__init__(cache_dir=cache_dir)
        self.folder = folder

    @classmethod
    def save(cls, folder, layer):
        os.makedirs(folder, exist_ok=True)
        with open(osp.join(folder, 'model.bin'), 'wb') as f:
            f.write(b'\0' * cls.PAD)
            f.write(layer.astype('<f4').tobytes())
            f.write(b'\0' * cls.PAD)

    def cache_identity(self):
        return {'model_files': fingerprint_folder(self.folder)}

    def _load_backend(self):
        with open(osp.join(self.folder, 'model.bin'), 'rb') as f:
            f.seek(self.PAD)
            data = np.frombuffer(f.read(26 * 4 * 4), '<f4').copy()
        return torch.from_numpy(data.reshape(26, 4))

    def encode(self, texts):
        counts = torch.zeros(len(texts), 26)
        for i, text in enumerate(texts):
            for ch in text:
                if 'a' <= ch <= 'z':
                    counts[i, ord(ch) - 97] += 1
        return counts @ self.backend


ATTRS = {'dense': ['many nuclei', 'packed cells'], 'sparse': ['few axons']}


def test_changed_layer_same_size_changes_embeddings(tmp_path):
    folder, cache = str(tmp_path / 'model'), str(tmp_path / 'cache')
    rng = np.random.default_rng(0)
    layer = rng.standard_normal((26, 4))
    FileTower.save(folder, layer)
    size = osp.getsize(osp.join(folder, 'model.bin'))
    before = FileTower(folder, cache).embed_attributes(ATTRS)
    layer[5:10] *= -1  # one layer changes, in the middle of the file
    FileTower.save(folder, layer)
    assert osp.getsize(osp.join(folder, 'model.bin')) == size
    after_tower = FileTower(folder, cache)
    after = after_tower.embed_attributes(ATTRS)
    assert after_tower.backend_loaded  # the old cache entry was not used
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after,
                               FileTower(folder).embed_attributes(ATTRS))
    assert len(os.listdir(cache)) == 2


def test_file_digest_is_full_content_and_memoised(tmp_path, monkeypatch):
    path = tmp_path / 'w.bin'
    path.write_bytes(b'\0' * (3 << 20) + b'a' + b'\0' * (3 << 20))
    first = file_digest(str(path))
    stat = os.stat(path)
    path.write_bytes(b'\0' * (3 << 20) + b'b' + b'\0' * (3 << 20))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # same (path, size, mtime): the process-wide memo answers, no re-read
    monkeypatch.setattr(base_text_tower, 'open', lambda *a: 1 / 0,
                        raising=False)
    assert file_digest(str(path)) == first
    monkeypatch.undo()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))
    assert file_digest(str(path)) != first


def test_unwritable_cache_dir_warns_and_goes_on(tmp_path):
    folder = str(tmp_path / 'model')
    FileTower.save(folder, np.eye(26, 4))
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    cache = str(blocker / 'cache')  # cannot be created
    with pytest.warns(UserWarning) as record:
        emb = FileTower(folder, cache).embed_attributes(ATTRS)
    msg = str(record[0].message)
    assert f'cannot write the text embedding cache in {cache}' in msg
    assert 'Set cache_dir to a writable folder' in msg
    torch.testing.assert_close(emb, FileTower(folder).embed_attributes(ATTRS))
    if os.geteuid() != 0:  # root writes through permission bits
        ro = tmp_path / 'ro'
        ro.mkdir()
        ro.chmod(0o555)
        with pytest.warns(UserWarning, match='cannot write'):
            FileTower(folder, str(ro)).embed_attributes(ATTRS)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        FileTower(folder, str(tmp_path / 'ok')).embed_attributes(ATTRS)


# ------------------------------------------------------------------ resume
def _training_checkpoint(path, model, optimizer):
    torch.save({'meta': {'epoch': 1, 'iter': 3}, 'message_hub': {},
                'state_dict': model.state_dict(),
                'optimizer': optimizer.state_dict()}, path)
    return str(path)


def _net(width=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, width), nn.ReLU(), nn.Linear(width, 2))


@pytest.mark.parametrize('content', [b'', b'garbage' * 50, 'pickle'])
def test_resume_garbage_file_is_one_clear_line(tmp_path, content):
    path = tmp_path / 'epoch_3.pth'
    if content == 'pickle':  # a torch file with a pickled object inside
        torch.save({'state_dict': {}, 'obj': np.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(ResumeError) as err:
        check_resume_checkpoint(str(path), _net())
    msg = str(err.value)
    assert '\n' not in msg and TORCH_ADVICE not in msg
    assert msg.startswith(f'--resume: {path} is not a readable checkpoint')
    assert 'pass a checkpoint a training run wrote' in msg
    # the same file given to tools/test.py / backbone loading
    with pytest.raises(ValueError) as err:
        read_state_dict(str(path))
    assert '\n' not in str(err.value) and TORCH_ADVICE not in str(err.value)


def test_resume_weights_only_file_is_not_a_training_checkpoint(tmp_path):
    path = tmp_path / 'weights.pth'
    torch.save({'state_dict': _net().state_dict()}, path)
    with pytest.raises(ResumeError, match=r'is not a training checkpoint '
                       r'\(it lacks meta.epoch, meta.iter, message_hub.*'
                       r'load_from'):
        check_resume_checkpoint(str(path), _net())


def test_resume_with_changed_model_or_optimizer(tmp_path):
    model = _net()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = _training_checkpoint(tmp_path / 'epoch_1.pth', model, sgd)
    check_resume_checkpoint(path, _net(), OptimWrapper(torch.optim.SGD(
        _net().parameters(), lr=0.1, momentum=0.9)))  # same config: fine
    wider = _net(width=5)
    with pytest.raises(ResumeError) as err:
        check_resume_checkpoint(path, wider)
    msg = str(err.value)
    assert msg.startswith(f'--resume: checkpoint {path} was saved by another '
                          f'model')
    assert '0.weight (checkpoint (4, 3), model (5, 3))' in msg
    assert 'Resume with the config the checkpoint was trained with' in msg
    deeper = nn.Sequential(*_net(), nn.Linear(2, 2))
    with pytest.raises(ResumeError, match=r'missing keys: 3.bias, 3.weight'):
        check_resume_checkpoint(path, deeper)
    adamw = OptimWrapper(torch.optim.AdamW(_net().parameters(), lr=0.1))
    with pytest.raises(ResumeError, match=r"settings \['dampening', "
                       r"'momentum', 'nesterov'\] that this config's AdamW "
                       r'lacks.*trained with'):
        check_resume_checkpoint(path, _net(), adamw)
    net = _net()
    split = OptimWrapper(torch.optim.SGD(
        [{'params': net[0].parameters()}, {'params': net[2].parameters()}],
        lr=0.1, momentum=0.9))
    with pytest.raises(ResumeError, match=r'1 parameter group\(s\) in the '
                       r'checkpoint, 2 in this config'):
        check_resume_checkpoint(path, net, split)
