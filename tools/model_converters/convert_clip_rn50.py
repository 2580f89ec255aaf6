#!/usr/bin/env python
"""Convert a CLIP ResNet checkpoint (OpenAI or open_clip) for hlss_plugin.

Run from the repository root, once, on any machine (no network needed)::

    python tools/model_converters/convert_clip_rn50.py SRC OUT_DIR [--bpe PATH]
        [--text-act {quick_gelu,gelu}] [--allow-pickle]

``SRC`` is one of

* an OpenAI CLIP archive (``RN50.pt``: TorchScript, read with
  ``torch.jit.load(...).state_dict()``) or a plain OpenAI-style state dict;
* an open_clip checkpoint: ``{'state_dict': ...}`` as written by open_clip's
  training, keys possibly prefixed with ``module.``, or a bare
  ``model.state_dict()`` of e.g. ``open_clip.create_model('RN50-quickgelu')``.

It writes

* ``OUT_DIR/visual.pth``: a plain float32 state dict of
  :class:`hlss_plugin.models.backbones.CLIPResNet`, loadable with
  ``init_cfg=dict(type='Pretrained', checkpoint='OUT_DIR/visual.pth')``;
* ``OUT_DIR/visual_config.json``: the matching ``CLIPResNet`` arguments
  (RN50 gives the defaults);
* ``OUT_DIR/text/``: a Hugging Face ``CLIPTextModelWithProjection`` folder
  (``config.json``, ``model.safetensors``) with CLIP's tokenizer
  (``vocab.json``, ``merges.txt``, ``tokenizer.json`` and its configs),
  loadable offline by ``HFCLIPTextTower(model_path='OUT_DIR/text')``.

Sizes are read from tensor shapes, so RN50, RN101, RN50x4, RN50x16 ... all
convert: stage depths from the ``layer<i>.<j>`` keys, ``width`` from the
first stage, ``output_dim`` and ``image_size`` from the attention pool, and
the text width, depth, MLP size, projection size, vocabulary and context
length from the text weights. Head counts are not visible in shapes; CLIP's
rule is used (``width * 32 // 64`` for the image tower, ``text width // 64``
for the text tower).

Key names (OpenAI and open_clip use the same ones; ``visual.`` is dropped):

===========================================  =================================
OpenAI / open_clip                           CLIPResNet
===========================================  =================================
``visual.conv{1,2,3}.*``                     ``stem.conv{1,2,3}.*``
``visual.bn{1,2,3}.*``                       ``stem.norm{1,2,3}.*``
``visual.layerI.J.conv{1,2,3}.*``            ``layerI.J.conv{1,2,3}.*``
``visual.layerI.J.bn{1,2,3}.*``              ``layerI.J.norm{1,2,3}.*``
``visual.layerI.J.downsample.0.*``           ``layerI.J.downsample.conv.*``
``visual.layerI.J.downsample.1.*``           ``layerI.J.downsample.norm.*``
``visual.attnpool.positional_embedding``     ``attnpool.pos_embed``
``visual.attnpool.{q,k,v}_proj.*``           ``attnpool.{q,k,v}_proj.*``
``visual.attnpool.c_proj.*``                 ``attnpool.out_proj.*``
===========================================  =================================

Text tower (Hugging Face names; ``T`` = ``text_model.``,
``L`` = ``T encoder.layers.i``):
``token_embedding.weight`` → ``T embeddings.token_embedding.weight``;
``positional_embedding`` → ``T embeddings.position_embedding.weight``;
``transformer.resblocks.i.ln_{1,2}`` → ``L.layer_norm{1,2}``;
``...attn.in_proj_{weight,bias}`` → split in three →
``L.self_attn.{q,k,v}_proj``;
``...attn.out_proj`` → ``L.self_attn.out_proj``;
``...mlp.c_fc`` / ``...mlp.c_proj`` → ``L.mlp.fc1`` / ``L.mlp.fc2``;
``ln_final`` → ``T final_layer_norm``;
``text_projection`` (D, P) → ``text_projection.weight`` (P, D), transposed.
``logit_scale`` and OpenAI's ``input_resolution``, ``context_length`` and
``vocab_size`` entries are not needed and dropped.

Tokenizer: CLIP's byte-level BPE. ``vocab.json`` lists the 256 byte
symbols, the same with the end-of-word marker ``</w>``, one token per merge
of CLIP's merge file (``bpe_simple_vocab_16e6.txt.gz``, shipped with
open_clip; ``--bpe PATH`` or open_clip's copy), then ``<|startoftext|>``
and ``<|endoftext|>``. The Hugging Face tokenizer lowercases and splits
words like CLIP; unlike open_clip it does not run ``ftfy`` or unescape HTML
entities, so such text may tokenise differently (plain text, punctuation,
digits and case are identical). Padding uses ``<|endoftext|>``; the model
pools the first ``<|endoftext|>`` (``eos_token_id`` in config.json).
"""
import argparse
import gzip
import json
import os
import os.path as osp
import re
import sys
import warnings
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402

SOT, EOT = '<|startoftext|>', '<|endoftext|>'

#: Keys whose absence means SRC is not a CLIP ResNet (image + text) model.
REQUIRED_KEYS = (
    'visual.conv1.weight',
    'visual.conv3.weight',
    'visual.layer1.0.conv1.weight',
    'visual.attnpool.positional_embedding',
    'visual.attnpool.c_proj.weight',
    'token_embedding.weight',
    'positional_embedding',
    'transformer.resblocks.0.attn.in_proj_weight',
    'ln_final.weight',
    'text_projection',
)
#: OpenAI / open_clip visual names (``visual.`` removed) -> CLIPResNet names.
VISUAL_KEY_RULES: Sequence[Tuple[str, str]] = (
    (r'^conv([123])\.', r'stem.conv\1.'),
    (r'^bn([123])\.', r'stem.norm\1.'),
    (r'^(layer\d+\.\d+)\.bn([123])\.', r'\1.norm\2.'),
    (r'^(layer\d+\.\d+)\.downsample\.0\.', r'\1.downsample.conv.'),
    (r'^(layer\d+\.\d+)\.downsample\.1\.', r'\1.downsample.norm.'),
    (r'^attnpool\.positional_embedding$', 'attnpool.pos_embed'),
    (r'^attnpool\.c_proj\.', 'attnpool.out_proj.'),
)
#: OpenAI / open_clip text names -> Hugging Face CLIPTextModelWithProjection
#: names (the fused ``in_proj`` and ``text_projection`` are handled apart).
TEXT_KEY_RULES: Sequence[Tuple[str, str]] = (
    (r'^token_embedding\.weight$',
     'text_model.embeddings.token_embedding.weight'),
    (r'^positional_embedding$',
     'text_model.embeddings.position_embedding.weight'),
    (r'^transformer\.resblocks\.(\d+)\.ln_([12])\.',
     r'text_model.encoder.layers.\1.layer_norm\2.'),
    (r'^transformer\.resblocks\.(\d+)\.attn\.out_proj\.',
     r'text_model.encoder.layers.\1.self_attn.out_proj.'),
    (r'^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.',
     r'text_model.encoder.layers.\1.mlp.fc1.'),
    (r'^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.',
     r'text_model.encoder.layers.\1.mlp.fc2.'),
    (r'^ln_final\.', 'text_model.final_layer_norm.'),
)
DROPPED_KEYS = ('logit_scale', 'logit_bias', 'input_resolution',
                'context_length', 'vocab_size', 'attn_mask')


class ConvertError(ValueError):
    """A problem with the input checkpoint or options, reported without a
    traceback by :func:`main`."""


# ------------------------------------------------------------------ loading
def _is_torchscript(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(
            name.endswith('/constants.pkl') or '/code/' in name
            for name in archive.namelist())


def load_state_dict(path: str,
                    allow_pickle: bool = False) -> Dict[str, torch.Tensor]:
    """Read a CLIP checkpoint into a flat state dict with OpenAI key names.

    Args:
        path (str): TorchScript archive, state dict, or a dict holding one
            under ``state_dict`` (``module.`` prefixes are removed).
        allow_pickle (bool): Load with ``weights_only=False`` (runs the
            file's pickled code: only for files you trust) when the safe
            loader refuses the file. Defaults to False.

    Returns:
        dict[str, Tensor]: The state dict.
    """
    if not osp.isfile(path):
        raise ConvertError(f'{path!r}: no such file (the CLIP checkpoint, '
                           f'e.g. RN50.pt).')
    if _is_torchscript(path):
        state = torch.jit.load(path, map_location='cpu').state_dict()
    else:
        try:
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as exc:  # noqa: BLE001 - reported with the fix
            if not allow_pickle:
                raise ConvertError(
                    f'{path!r} could not be read as weights only ({exc}). '
                    f'If you trust the file, rerun with --allow-pickle.'
                ) from exc
            ckpt = torch.load(path, map_location='cpu', weights_only=False)
        if isinstance(ckpt, dict) and isinstance(ckpt.get('state_dict'),
                                                 dict):
            ckpt = ckpt['state_dict']
        if not isinstance(ckpt, dict):
            raise ConvertError(f'{path!r} holds a {type(ckpt).__name__}, '
                               f'not a state dict.')
        state = ckpt
    out = {}
    for key, value in state.items():
        while key.startswith('module.'):
            key = key[len('module.'):]
        out[key] = value
    return out


def check_architecture(state: Dict[str, torch.Tensor], source: str) -> None:
    """Raise :class:`ConvertError` unless ``state`` is a CLIP ResNet.

    The message names the expected keys that are missing, a sample of the
    keys found, and what the checkpoint looks like instead.
    """
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if not missing:
        return
    keys = sorted(state)
    if 'visual.class_embedding' in state or 'visual.proj' in state:
        guess = ('a CLIP ViT (visual.class_embedding / visual.proj / '
                 'visual.transformer.*): convert a CLIP ResNet (RN50, '
                 'RN101, RN50x4, ...) instead')
    elif 'fc.weight' in state and 'layer1.0.conv1.weight' in state:
        guess = ('a plain torchvision-style ResNet (conv1, bn1, layer1..4, '
                 'fc), not a CLIP model: use MMPretrain\'s ResNet backbone '
                 'for it')
    elif any(k.startswith('visual.') for k in keys) and not any(
            k.startswith('transformer.') for k in keys):
        guess = 'an image tower without CLIP\'s text tower'
    else:
        guess = 'not an OpenAI / open_clip CLIP ResNet'
    shown = ', '.join(keys[:8]) + (f' ... ({len(keys)} keys)'
                                   if len(keys) > 8 else '')
    raise ConvertError(
        f'{source}: this looks like {guess}. Expected CLIP ResNet keys '
        f'{", ".join(missing)} are missing; found {shown}.')


# ------------------------------------------------------------ visual tower
def convert_visual_key(key: str) -> str:
    """OpenAI / open_clip name without ``visual.`` -> CLIPResNet name."""
    for pattern, repl in VISUAL_KEY_RULES:
        key, count = re.subn(pattern, repl, key)
        if count:
            break
    return key


def infer_visual_config(state: Dict[str, torch.Tensor]) -> dict:
    """CLIPResNet arguments read from the tensor shapes."""
    layers = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in state
                  for m in [re.match(rf'visual\.layer{stage}\.(\d+)\.', k)]
                  if m}
        if not blocks:
            break
        layers.append(max(blocks) + 1)
    width = state['visual.layer1.0.conv1.weight'].shape[0]
    tokens = state['visual.attnpool.positional_embedding'].shape[0] - 1
    grid = round(tokens**0.5)
    if grid * grid != tokens:
        raise ConvertError(f'visual.attnpool.positional_embedding has '
                           f'{tokens + 1} rows; expected a square grid + 1.')
    return dict(layers=layers, width=width, heads=max(1, width * 32 // 64),
                output_dim=state['visual.attnpool.c_proj.weight'].shape[0],
                image_size=grid * 32)


def convert_visual(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The image tower's tensors under CLIPResNet names, in float32."""
    out = {}
    for key, value in state.items():
        if not key.startswith('visual.'):
            continue
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        out[convert_visual_key(key[len('visual.'):])] = value.contiguous()
    for key in list(out):  # BatchNorm counters absent from some archives
        if key.endswith('.running_var'):
            counter = key[:-len('running_var')] + 'num_batches_tracked'
            out.setdefault(counter, torch.tensor(0, dtype=torch.long))
    return out


# -------------------------------------------------------------- text tower
def infer_text_config(state: Dict[str, torch.Tensor],
                      hidden_act: str = 'quick_gelu') -> dict:
    """``CLIPTextConfig`` arguments read from the tensor shapes."""
    width = state['ln_final.weight'].shape[0]
    layers = 1 + max(
        int(m.group(1)) for k in state
        for m in [re.match(r'transformer\.resblocks\.(\d+)\.', k)] if m)
    vocab_size = state['token_embedding.weight'].shape[0]
    return dict(
        vocab_size=vocab_size,
        hidden_size=width,
        intermediate_size=state[
            'transformer.resblocks.0.mlp.c_fc.weight'].shape[0],
        projection_dim=state['text_projection'].shape[1],
        num_hidden_layers=layers,
        num_attention_heads=max(1, width // 64),
        max_position_embeddings=state['positional_embedding'].shape[0],
        hidden_act=hidden_act,
        layer_norm_eps=1e-5,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1)


def convert_text(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The text tower's tensors under Hugging Face names, in float32."""
    out = {}
    for key, value in state.items():
        if key.startswith('visual.') or key in DROPPED_KEYS:
            continue
        value = value.detach().cpu().float()
        fused = re.match(r'^transformer\.resblocks\.(\d+)\.attn\.in_proj_'
                         r'(weight|bias)$', key)
        if fused:
            layer, kind = fused.groups()
            for name, part in zip('qkv', value.chunk(3, dim=0)):
                out[f'text_model.encoder.layers.{layer}.self_attn.'
                    f'{name}_proj.{kind}'] = part.contiguous()
            continue
        if key == 'text_projection':
            out['text_projection.weight'] = value.t().contiguous()
            continue
        for pattern, repl in TEXT_KEY_RULES:
            new, count = re.subn(pattern, repl, key)
            if count:
                out[new] = value.contiguous()
                break
        else:
            raise ConvertError(f'unknown text-tower key {key!r}: this CLIP '
                               f'variant is not supported by the converter.')
    return out


# ---------------------------------------------------------------- tokenizer
def byte_symbols() -> List[str]:
    """CLIP's (GPT-2's) printable stand-ins for the 256 bytes, in vocabulary
    order: printable Latin-1 bytes map to themselves, the others to code
    points from 256 upwards, appended after them."""
    kept = (list(range(ord('!'), ord('~') + 1)) +
            list(range(ord('\xa1'), ord('\xac') + 1)) +
            list(range(ord('\xae'), ord('\xff') + 1)))
    symbols = [chr(b) for b in kept]
    extra = 0
    for b in range(256):
        if b not in kept:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def default_bpe_path() -> str:
    """open_clip's copy of CLIP's merge file (open_clip must be installed)."""
    try:
        import open_clip
    except ImportError as exc:
        raise ConvertError(
            'The tokenizer needs CLIP\'s BPE merge file '
            '(bpe_simple_vocab_16e6.txt.gz). Pass it with --bpe PATH, or '
            '`pip install open-clip-torch`, which ships it.') from exc
    path = osp.join(osp.dirname(open_clip.__file__),
                    'bpe_simple_vocab_16e6.txt.gz')
    if not osp.isfile(path):
        raise ConvertError(f'open_clip is installed but {path} is missing; '
                           f'pass CLIP\'s BPE merge file with --bpe PATH.')
    return path


def build_vocab(bpe_path: str,
                vocab_size: int) -> Tuple[Dict[str, int], List[str]]:
    """CLIP's vocabulary and merges for a model with ``vocab_size`` tokens.

    Args:
        bpe_path (str): CLIP's merge file (gzip text; first line a header,
            then one ``left right`` merge per line).
        vocab_size (int): Rows of the checkpoint's token embedding: 512
            byte symbols + merges + the two special tokens.

    Returns:
        tuple: ``{token: id}`` and the merges (``'left right'`` strings).
    """
    num_merges = vocab_size - 2 * 256 - 2
    opener = gzip.open if bpe_path.endswith('.gz') else open
    try:
        with opener(bpe_path, 'rt', encoding='utf-8') as f:
            lines = f.read().split('\n')
    except (OSError, UnicodeDecodeError) as exc:
        raise ConvertError(f'--bpe {bpe_path!r}: cannot read it as CLIP\'s '
                           f'merge file ({exc}).') from exc
    merges = lines[1:1 + num_merges]
    if num_merges < 0 or len(merges) < num_merges or any(
            len(m.split()) != 2 for m in merges):
        raise ConvertError(
            f'--bpe {bpe_path!r}: needs {num_merges} merges of two symbols '
            f'after its header line for vocab_size={vocab_size}; it has '
            f'{len(merges)} lines. Is it CLIP\'s bpe_simple_vocab_16e6.'
            f'txt.gz?')
    symbols = byte_symbols()
    tokens = symbols + [s + '</w>' for s in symbols]
    tokens += [''.join(m.split()) for m in merges] + [SOT, EOT]
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != vocab_size:
        raise ConvertError(f'--bpe {bpe_path!r}: the vocabulary has '
                           f'{len(vocab)} distinct tokens, the checkpoint '
                           f'{vocab_size}.')
    return vocab, merges


def write_tokenizer(folder: str, vocab: Dict[str, int], merges: List[str],
                    context_length: int) -> None:
    """Write vocab.json, merges.txt and the Hugging Face tokenizer files."""
    from transformers import CLIPTokenizer
    with open(osp.join(folder, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(osp.join(folder, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + '\n'.join(merges) + '\n')
    tokenizer = CLIPTokenizer.from_pretrained(
        folder, local_files_only=True, model_max_length=context_length,
        bos_token=SOT, eos_token=EOT, unk_token=EOT, pad_token=EOT)
    tokenizer.save_pretrained(folder)


# ------------------------------------------------------------------- driver
def convert(src: str,
            out_dir: str,
            bpe: Optional[str] = None,
            text_act: str = 'quick_gelu',
            allow_pickle: bool = False) -> dict:
    """Convert ``src`` into ``out_dir`` (see the module docstring).

    Both towers are loaded back strictly before anything is written, so a
    written folder is complete.

    Returns:
        dict: ``visual`` (CLIPResNet arguments) and ``text``
        (CLIPTextConfig arguments).
    """
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    # hlss_plugin is imported only to convert (a --help stays instant)
    with warnings.catch_warnings(record=True) as startup:
        warnings.simplefilter('always')
        from hlss_plugin.apis import filter_startup_warnings
        from hlss_plugin.models.backbones import CLIPResNet
    filter_startup_warnings(startup)
    if text_act not in ('quick_gelu', 'gelu'):
        raise ConvertError(f'--text-act must be quick_gelu (OpenAI weights) '
                           f'or gelu, got {text_act!r}.')
    state = load_state_dict(src, allow_pickle=allow_pickle)
    check_architecture(state, src)
    bpe = bpe or default_bpe_path()

    visual_cfg = infer_visual_config(state)
    visual = convert_visual(state)
    backbone = CLIPResNet(**visual_cfg)
    problems = backbone.compare_state_dict(visual)
    if problems:
        raise ConvertError(f'{src}: the image tower does not map onto '
                           f'CLIPResNet({visual_cfg}): ' + '; '.join(problems))

    text_cfg = infer_text_config(state, text_act)
    vocab, merges = build_vocab(bpe, text_cfg['vocab_size'])
    text_model = CLIPTextModelWithProjection(CLIPTextConfig(**text_cfg))
    result = text_model.load_state_dict(convert_text(state), strict=False)
    missing = [k for k in result.missing_keys
               if not k.endswith('position_ids')]
    if missing or result.unexpected_keys:
        raise ConvertError(f'{src}: the text tower does not map onto '
                           f'CLIPTextModelWithProjection: missing {missing}, '
                           f'unexpected {result.unexpected_keys}.')

    text_dir = osp.join(out_dir, 'text')
    os.makedirs(text_dir, exist_ok=True)
    torch.save(visual, osp.join(out_dir, 'visual.pth'))
    with open(osp.join(out_dir, 'visual_config.json'), 'w') as f:
        json.dump(dict(type='CLIPResNet', **visual_cfg), f, indent=2)
    text_model.config.architectures = ['CLIPTextModelWithProjection']
    text_model.save_pretrained(text_dir)
    write_tokenizer(text_dir, vocab, merges,
                    text_cfg['max_position_embeddings'])
    return dict(visual=visual_cfg, text=text_cfg)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert an OpenAI / open_clip CLIP ResNet checkpoint '
        'into OUT_DIR/visual.pth (CLIPResNet) and OUT_DIR/text/ (Hugging '
        'Face CLIPTextModelWithProjection + tokenizer).')
    parser.add_argument('src', help='RN50.pt (OpenAI) or an open_clip '
                        'checkpoint / state dict')
    parser.add_argument('out_dir', help='output folder (created)')
    parser.add_argument('--bpe', help='CLIP\'s bpe_simple_vocab_16e6.txt.gz '
                        '(default: the copy inside open_clip)')
    parser.add_argument('--text-act', default='quick_gelu',
                        choices=['quick_gelu', 'gelu'],
                        help='text-tower activation: quick_gelu for OpenAI '
                        'weights and open_clip *-quickgelu models, gelu for '
                        'open_clip models trained without it')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='allow full unpickling of SRC (trusted files '
                        'only) when it is not weights-only loadable')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    try:
        info = convert(args.src, args.out_dir, bpe=args.bpe,
                       text_act=args.text_act, allow_pickle=args.allow_pickle)
    except ConvertError as exc:
        print(f'convert_clip_rn50: error: {exc}', file=sys.stderr)
        return 2
    print(f'wrote {osp.join(args.out_dir, "visual.pth")} '
          f'(backbone=dict(type=\'CLIPResNet\', '
          + ', '.join(f'{k}={v}' for k, v in info['visual'].items())
          + f'), in_channels={info["visual"]["output_dim"]})')
    print(f'wrote {osp.join(args.out_dir, "text")} '
          f'(HFCLIPTextTower, {info["text"]["projection_dim"]}-d embeddings)')
    print(f'use it: export HLSS_CLIP_DIR={osp.abspath(args.out_dir)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
