"""PrecomputedTextTower: every documented file format, lookups, the
attribute-name fallback and the error paths."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from hlss_plugin.models.text_towers.precomputed_text_tower import \
    PrecomputedTextTower

TEXTS = ['many nuclei', 'crowded cells', 'dead tissue', 'necrosis']
EMB = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0],
                    [0.0, 0.0, 2.0]])


def _write(tmp_path, fmt):
    if fmt == 'pt-lists':
        path = tmp_path / 'emb.pt'
        torch.save({'texts': TEXTS, 'embeddings': EMB}, path)
    elif fmt == 'pt-dict':
        path = tmp_path / 'emb.pt'
        torch.save({t: e.clone() for t, e in zip(TEXTS, EMB)}, path)
    elif fmt == 'npz':
        path = tmp_path / 'emb.npz'
        np.savez(path, texts=np.array(TEXTS), embeddings=EMB.numpy())
    else:
        path = tmp_path / 'emb.npy'
        dtype = [('text', 'U64'), ('embedding', 'f4', (3, ))]
        np.save(path, np.array(list(zip(TEXTS, EMB.numpy())), dtype=dtype))
    return str(path)


@pytest.mark.parametrize('fmt', ['pt-lists', 'pt-dict', 'npz', 'npy'])
def test_formats_encode_the_stored_vectors(tmp_path, fmt):
    tower = PrecomputedTextTower(_write(tmp_path, fmt))
    assert not tower.backend_loaded  # read lazily
    out = tower.encode(['necrosis', 'many nuclei'])
    assert out.dtype == torch.float32
    assert torch.equal(out, EMB[[3, 0]])
    assert tower.state_dict() == {}


def test_embed_attributes_pools_and_falls_back_to_names(tmp_path):
    tower = MODELS.build(
        dict(type='PrecomputedTextTower', path=_write(tmp_path, 'pt-lists')))
    emb = tower.embed_attributes({
        'dense': ['many nuclei', 'crowded cells'],
        # 'dead cells' is not stored, but the name 'necrosis' is.
        'necrosis': ['dead tissue', 'dead cells'],
    })
    dense = torch.tensor([0.5, 0.5, 0.0])  # mean of the two unit vectors
    torch.testing.assert_close(emb[0], dense / dense.norm())
    torch.testing.assert_close(emb[1], torch.tensor([0.0, 0.0, 1.0]))


def test_missing_texts_are_listed(tmp_path):
    tower = PrecomputedTextTower(_write(tmp_path, 'npz'))
    with pytest.raises(ValueError,
                       match=r"emb\.npz has no embedding for 2 text\(s\): "
                       r"'absent one', 'absent two'\. Recompute"):
        tower.encode(['many nuclei', 'absent one', 'absent two'])
    with pytest.raises(ValueError, match=r"1 text\(s\): 'unknown text'"):
        tower.embed_attributes({'no such name': ['unknown text']})


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match='is not an existing file'):
        PrecomputedTextTower(str(tmp_path / 'absent.pt'))
    (tmp_path / 'emb.csv').write_text('a,1\n')
    with pytest.raises(ValueError, match='unknown extension'):
        PrecomputedTextTower(str(tmp_path / 'emb.csv'))

    cases = {}
    np.save(tmp_path / 'plain.npy', EMB.numpy())
    cases['plain.npy'] = 'without the texts'
    np.savez(tmp_path / 'wrong.npz', a=np.zeros(2))
    cases['wrong.npz'] = r"arrays \['a'\]"
    torch.save({'texts': TEXTS[:2], 'embeddings': EMB}, tmp_path / 'n.pt')
    cases['n.pt'] = r'holds 2 texts but embeddings of shape \(4, 3\)'
    torch.save({'texts': ['a', 'a'], 'embeddings': EMB[:2]}, tmp_path / 'd.pt')
    cases['d.pt'] = "the text 'a' twice"
    torch.save({'a': torch.zeros(2), 'b': torch.zeros(3)}, tmp_path / 'l.pt')
    cases['l.pt'] = 'differ in length'
    torch.save([EMB], tmp_path / 'list.pt')
    cases['list.pt'] = 'holds a list'
    # Arbitrary pickled objects are refused (weights_only loading).
    numpy_inside = dict(texts=TEXTS, embeddings=EMB.numpy())
    torch.save(numpy_inside, tmp_path / 'pickled.pt')
    cases['pickled.pt'] = r'cannot read .*weights_only=True'
    for name, match in cases.items():
        tower = PrecomputedTextTower(str(tmp_path / name))
        with pytest.raises(ValueError, match=match):
            tower.encode(['a'])
