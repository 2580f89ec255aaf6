"""BaseTextTower with a toy backend: pooling formula, cache, freezing and
checkpoint behaviour (no Hugging Face model needed)."""
import logging
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger

from hlss_plugin.models.text_towers.base_text_tower import (BaseTextTower,
                                                            fingerprint_files)

DIM = 6


class ToyTower(BaseTextTower):
    """Backend: a frozen linear map of a per-text pseudo-random vector."""

    loads = 0

    def __init__(self, cache_dir=None, scale=1.0):
        super().__init__(cache_dir=cache_dir)
        self.scale = scale

    def cache_identity(self):
        return {'scale': self.scale}

    def _load_backend(self):
        type(self).loads += 1
        layer = nn.Linear(DIM, DIM)
        with torch.no_grad():
            layer.weight.copy_(torch.eye(DIM) * self.scale)
            layer.bias.zero_()
        return {'layer': layer}

    @staticmethod
    def raw(text):
        seed = sum(ord(c) * (i + 1) for i, c in enumerate(text))
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(DIM, generator=gen)

    def encode(self, texts):
        texts = self._check_texts(texts, 'ToyTower')
        layer = self.backend['layer']
        with torch.no_grad():
            return layer(torch.stack([self.raw(t) for t in texts]))


ATTRS = {
    'dense': ['many nuclei', 'crowded cells', 'packed tumour'],
    'necrosis': ['dead tissue'],
    'vessels': ['thick vessel walls', 'glomeruloid tufts'],
}


def numpy_reference(attrs, scale=1.0):
    rows = []
    for descriptions in attrs.values():
        vecs = np.stack([
            ToyTower.raw(t).numpy() * scale for t in descriptions
        ]).astype(np.float64)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        mean = vecs.mean(axis=0)
        rows.append(mean / np.linalg.norm(mean))
    return np.stack(rows)


class LogCatcher(logging.Handler):

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def log_messages():
    logger = MMLogger.get_current_instance()
    handler = LogCatcher()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def test_embed_attributes_matches_numpy_formula():
    emb = ToyTower(scale=3.0).embed_attributes(ATTRS)
    assert emb.shape == (3, DIM) and emb.dtype == torch.float32
    np.testing.assert_allclose(emb.numpy(),
                               numpy_reference(ATTRS, 3.0),
                               atol=1e-6)
    np.testing.assert_allclose(emb.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_rows_follow_dict_order_and_descriptions_are_order_free():
    tower = ToyTower()
    emb = tower.embed_attributes(ATTRS)
    reordered = {k: list(reversed(ATTRS[k])) for k in reversed(list(ATTRS))}
    emb2 = tower.embed_attributes(reordered)
    torch.testing.assert_close(emb2, emb.flip(0))


def test_mean_of_normalised_differs_from_plain_mean():
    """Scale a single description: a plain mean would shift towards it."""

    class Scaled(ToyTower):

        def encode(self, texts):
            out = super().encode(texts)
            out[0] *= 100.0
            return out

    attrs = {'dense': ATTRS['dense']}
    torch.testing.assert_close(Scaled().embed_attributes(attrs),
                               ToyTower().embed_attributes(attrs))


def test_frozen_eval_and_no_checkpoint_weights():
    tower = ToyTower()
    tower.embed_attributes(ATTRS)  # loads the backend
    assert tower.backend_loaded
    layer = tower.backend['layer']
    assert not any(p.requires_grad for p in layer.parameters())
    assert not layer.training
    assert tower.train() is tower
    assert not tower.training and not layer.training
    assert list(tower.parameters()) == [] and tower.state_dict() == {}

    class Holder(nn.Module):

        def __init__(self):
            super().__init__()
            self.tower = tower
            self.head = nn.Linear(DIM, 2)

    holder = Holder()
    holder.train()
    assert not tower.training and holder.head.training
    assert set(holder.state_dict()) == {'head.weight', 'head.bias'}
    assert len(list(holder.parameters())) == 2
    holder.load_state_dict(holder.state_dict())  # strict load still works


def test_backend_is_lazy_and_loaded_once():
    ToyTower.loads = 0
    tower = ToyTower()
    assert not tower.backend_loaded and ToyTower.loads == 0
    tower.encode(['a b'])
    tower.encode(['c d'])
    assert ToyTower.loads == 1


def test_cache_hit_skips_backend(tmp_path, monkeypatch, log_messages):
    first = ToyTower(cache_dir=str(tmp_path))
    emb = first.embed_attributes(ATTRS)
    files = os.listdir(tmp_path)
    assert len(files) == 1 and files[0].endswith('.pt')

    def boom(self):
        raise AssertionError('the backend must not be loaded on a cache hit')

    monkeypatch.setattr(ToyTower, '_load_backend', boom)
    second = ToyTower(cache_dir=str(tmp_path))
    emb2 = second.embed_attributes(ATTRS)
    assert torch.equal(emb, emb2) and not second.backend_loaded
    path = str(tmp_path / files[0])
    assert any(f'loaded cached attribute embeddings from {path} (text model '
               f'not loaded)' in m for m in log_messages)

    record = torch.load(path, weights_only=True)
    assert record['attributes'] == list(ATTRS)
    assert record['descriptions'] == list(ATTRS.values())
    assert torch.equal(record['embeddings'], emb)
    # Another identity, description or attribute set misses the cache.
    misses = [
        (ToyTower(str(tmp_path), scale=2.0), ATTRS),
        (ToyTower(str(tmp_path)), dict(dense=['other'])),
        (ToyTower(str(tmp_path)), dict(x=ATTRS['dense'])),
    ]
    for tower, attrs in misses:
        with pytest.raises(AssertionError, match='must not be loaded'):
            tower.embed_attributes(attrs)


def test_unreadable_or_foreign_cache_is_recomputed(tmp_path, log_messages):
    tower = ToyTower(cache_dir=str(tmp_path))
    emb = tower.embed_attributes(ATTRS)
    path = tower.cache_path(tower.cache_key(list(ATTRS), list(ATTRS.values())))
    with open(path, 'wb') as f:
        f.write(b'not a torch file')
    torch.testing.assert_close(
        ToyTower(str(tmp_path)).embed_attributes(ATTRS), emb)
    assert any('ignoring unreadable cache' in m for m in log_messages)
    torch.save({'key': 'other'}, path)
    torch.testing.assert_close(
        ToyTower(str(tmp_path)).embed_attributes(ATTRS), emb)
    assert any('does not match' in m for m in log_messages)


def test_fingerprint_ignores_folder_but_not_content(tmp_path):
    a, b = tmp_path / 'a', tmp_path / 'b'
    a.mkdir()
    b.mkdir()
    (a / 'w.bin').write_bytes(b'x' * 10)
    (b / 'w.bin').write_bytes(b'x' * 10)
    assert fingerprint_files([str(a / 'w.bin')
                              ]) == fingerprint_files([str(b / 'w.bin')])
    big = bytearray(os.urandom(5 << 20))
    (a / 'big.bin').write_bytes(bytes(big))
    before = fingerprint_files([str(a / 'big.bin')])
    big[-1] ^= 1
    (a / 'big.bin').write_bytes(bytes(big))
    assert fingerprint_files([str(a / 'big.bin')]) != before


@pytest.mark.parametrize('attrs, match', [
    ({}, 'non-empty mapping'),
    ([('a', ['b'])], 'non-empty mapping'),
    (dict(dense=[]), "attribute 'dense' needs a non-empty list"),
    (dict(dense='many nuclei'), "attribute 'dense' needs"),
    (dict(dense=['ok', ' ']), "attribute 'dense' needs"),
])
def test_bad_attributes(attrs, match):
    with pytest.raises(ValueError, match=match):
        ToyTower().embed_attributes(attrs)


def test_bad_encode_output_and_bad_arguments():

    class Broken(ToyTower):

        def encode(self, texts):
            return torch.zeros(len(texts) + 1, DIM)

    with pytest.raises(ValueError, match=r'returned shape \(4, 6\) for 3'):
        Broken().embed_attributes({'a': ['x', 'y', 'z']})
    with pytest.raises(ValueError, match='cache_dir must be a folder path'):
        ToyTower(cache_dir='')
    for texts in ('one string', [], ['ok', '']):
        with pytest.raises(ValueError, match='ToyTower.encode'):
            ToyTower().encode(texts)
