"""CLIP text encoder (with its projection) from a local Hugging Face folder."""
import os.path as osp
from typing import Any, Dict, List, Optional

import torch
from mmpretrain.registry import MODELS

from ...utils.arg_checks import check_int

from .base_text_tower import BaseTextTower, fingerprint_folder

__all__ = ['HFCLIPTextTower']

_BATCH_SIZE = 64


@MODELS.register_module()
class HFCLIPTextTower(BaseTextTower):
    """Frozen CLIP text tower returning projected text embeddings.

    Loads ``CLIPTokenizer`` and ``CLIPTextModelWithProjection`` from a local
    folder with ``local_files_only=True``: a converted OpenAI CLIP, a
    pathology CLIP saved in Hugging Face format, or any folder written by
    ``save_pretrained``. A full ``CLIPModel`` folder also works (only its
    text half and ``text_projection`` are loaded). The output is the model's
    ``text_embeds`` (the end-of-text token state, layer-normed and
    projected), i.e. the vectors CLIP compares with image embeddings. Loading
    is lazy; see :class:`BaseTextTower` for freezing, caching and
    distributed behaviour.

    Args:
        model_path (str): Local Hugging Face CLIP folder (config.json,
            vocab.json, merges.txt and weights).
        max_length (int): Texts are truncated to this many tokens, start and
            end tokens included; at most the model's
            ``max_position_embeddings`` (77 for OpenAI CLIP). Defaults to 77.
        cache_dir (str, optional): Folder for cached attribute embeddings.
            Defaults to None.

    Example:
        >>> tower = HFCLIPTextTower('/models/clip-b16')  # doctest: +SKIP
        >>> tower.encode(['dense tumour cells']).shape  # doctest: +SKIP
        torch.Size([1, 512])
    """

    pooling = 'projected_eot'

    def __init__(self,
                 model_path: str,
                 max_length: int = 77,
                 cache_dir: Optional[str] = None):
        super().__init__(cache_dir=cache_dir)
        if not isinstance(model_path, str) or not osp.isfile(
                osp.join(model_path, 'config.json')):
            raise ValueError(
                f'HFCLIPTextTower: model_path {model_path!r} is not a folder '
                f'holding config.json. Convert an OpenAI / open_clip '
                f'checkpoint with `python '
                f'tools/model_converters/convert_clip_rn50.py RN50.pt DIR` '
                f'and pass DIR/text, or pass any local Hugging Face CLIP '
                f'folder (save_pretrained once on a machine with internet); '
                f'nothing is downloaded at run time.')
        check_int('max_length', max_length, minimum=3,
                  owner='HFCLIPTextTower')  # it counts start and end tokens
        self.model_path = osp.abspath(model_path)
        self.max_length = max_length

    def cache_identity(self) -> Dict[str, Any]:
        """Fingerprint of the model folder's files plus ``max_length``."""
        return {
            'model_files': fingerprint_folder(self.model_path),
            'max_length': self.max_length
        }

    def _load_backend(self) -> Dict[str, Any]:
        from transformers import CLIPTextModelWithProjection, CLIPTokenizer
        try:
            tokenizer = CLIPTokenizer.from_pretrained(self.model_path,
                                                      local_files_only=True)
            model = CLIPTextModelWithProjection.from_pretrained(
                self.model_path, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ValueError(
                f'HFCLIPTextTower: could not load a CLIP text '
                f'model and tokenizer from {self.model_path!r} '
                f'({exc}). The folder needs config.json, '
                f'vocab.json, merges.txt and the weights.') from exc
        limit = model.config.max_position_embeddings
        if self.max_length > limit:
            raise ValueError(f'HFCLIPTextTower: max_length={self.max_length} '
                             f'exceeds the model\'s max_position_embeddings='
                             f'{limit}; set max_length <= {limit}.')
        return {'tokenizer': tokenizer, 'model': model}

    @torch.no_grad()
    def encode(self, texts: List[str]) -> torch.Tensor:
        """Projected CLIP text embeddings.

        Args:
            texts (List[str]): ``n`` non-empty strings.

        Returns:
            Tensor: Float32 CPU tensor ``(n, P)``, P = the projection
            dimension; not normalised.
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
            result = model(input_ids=tokens['input_ids'],
                           attention_mask=tokens['attention_mask'])
            out.append(result.text_embeds.float())
        return torch.cat(out).cpu()
