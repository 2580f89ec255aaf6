"""HFCLIPTextTower on a tiny random CLIP text model and a hand-written BPE
vocabulary, saved to a temporary folder (nothing downloaded)."""
import json

import pytest
import torch
from transformers import (CLIPTextConfig, CLIPTextModelWithProjection,
                          CLIPTokenizer)

from hlss_plugin.models.text_towers.hf_clip_text_tower import HFCLIPTextTower

MAX_POS = 40
MERGES = [('t', 'h'), ('th', 'e</w>'), ('c', 'e'), ('l', 'l</w>'), ('n', 'u'),
          ('nu', 'c')]


def _byte_alphabet():
    """The 256 printable characters byte-level BPE uses for raw bytes."""
    printable = (set(range(ord('!'),
                           ord('~') + 1)) | set(range(0xA1, 0xAD))
                 | set(range(0xAE, 0x100)))
    chars, shift = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + shift))
            shift += 1
    return chars


@pytest.fixture(scope='module')
def clip_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp('tiny_clip')
    alphabet = _byte_alphabet()
    tokens = alphabet + [c + '</w>' for c in alphabet]
    tokens += [a + b for a, b in MERGES]
    tokens += ['<|startoftext|>', '<|endoftext|>']
    vocab = {tok: i for i, tok in enumerate(tokens)}
    (folder / 'vocab.json').write_text(json.dumps(vocab))
    (folder / 'merges.txt').write_text('#version: 0.2\n' +
                                       ''.join(f'{a} {b}\n'
                                               for a, b in MERGES))
    torch.manual_seed(0)
    config = CLIPTextConfig(vocab_size=len(vocab),
                            hidden_size=32,
                            intermediate_size=48,
                            num_hidden_layers=2,
                            num_attention_heads=4,
                            max_position_embeddings=MAX_POS,
                            projection_dim=12,
                            bos_token_id=vocab['<|startoftext|>'],
                            eos_token_id=vocab['<|endoftext|>'],
                            pad_token_id=vocab['<|endoftext|>'])
    CLIPTextModelWithProjection(config).eval().save_pretrained(str(folder))
    return str(folder)


TEXTS = ['the nuclei', 'the cell', 'the dense cell with large nuclei, 2x']


def test_tiny_tokenizer_is_what_we_wrote(clip_dir):
    tok = CLIPTokenizer.from_pretrained(clip_dir, local_files_only=True)
    pieces = tok.convert_ids_to_tokens(tok('the cell')['input_ids'])
    assert pieces == [
        '<|startoftext|>', 'the</w>', 'ce', 'll</w>', '<|endoftext|>'
    ]


def test_matches_direct_unpadded_model_calls(clip_dir):
    tower = HFCLIPTextTower(clip_dir, max_length=MAX_POS)
    out = tower.encode(TEXTS)
    assert out.shape == (3, 12) and out.dtype == torch.float32
    tok = CLIPTokenizer.from_pretrained(clip_dir, local_files_only=True)
    model = CLIPTextModelWithProjection.from_pretrained(
        clip_dir, local_files_only=True).eval()
    for row, text in zip(out, TEXTS):
        ids = tok(text, return_tensors='pt')  # one text: no padding
        with torch.no_grad():
            ref = model(**ids).text_embeds[0]
        torch.testing.assert_close(row, ref, rtol=0, atol=1e-5)


def test_truncation_and_attribute_pooling(clip_dir, tmp_path, monkeypatch):
    tower = HFCLIPTextTower(clip_dir, max_length=5, cache_dir=str(tmp_path))
    # 'the dense ...' has > 5 tokens; truncated to start + 3 + end tokens.
    long, prefix = tower.encode([TEXTS[2], 'the dense'])
    full = HFCLIPTextTower(clip_dir, max_length=MAX_POS).encode([TEXTS[2]])
    assert not torch.allclose(long, full[0])
    torch.testing.assert_close(long, prefix, rtol=0, atol=1e-5)

    attrs = {'nuclei': TEXTS[:2], 'other': TEXTS[2:]}
    emb = tower.embed_attributes(attrs)
    raw = torch.nn.functional.normalize(tower.encode(TEXTS[:2]), dim=1)
    expected = torch.nn.functional.normalize(raw.mean(0), dim=0)
    torch.testing.assert_close(emb[0], expected)

    def boom(self):
        raise AssertionError('must not load')

    monkeypatch.setattr(HFCLIPTextTower, '_load_backend', boom)
    again = HFCLIPTextTower(clip_dir, max_length=5, cache_dir=str(tmp_path))
    assert torch.equal(again.embed_attributes(attrs), emb)


def test_frozen_and_not_in_state_dict(clip_dir):
    tower = HFCLIPTextTower(clip_dir, max_length=MAX_POS)
    tower.encode(['the cell'])
    model = tower.backend['model']
    assert all(not p.requires_grad for p in model.parameters())
    tower.train(True)
    assert not tower.training and not model.training
    assert tower.state_dict() == {}


def test_errors(clip_dir, tmp_path):
    with pytest.raises(ValueError, match='not a folder holding config.json'):
        HFCLIPTextTower(str(tmp_path / 'absent'))
    with pytest.raises(ValueError, match='max_length must be an int >= 3'):
        HFCLIPTextTower(clip_dir, max_length=1)
    # The default 77 exceeds this tiny model's 40 positions.
    with pytest.raises(ValueError, match=r'max_length=77 exceeds .*=40'):
        HFCLIPTextTower(clip_dir).encode(['the cell'])
