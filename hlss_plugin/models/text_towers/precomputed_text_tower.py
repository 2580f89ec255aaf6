"""Text tower that looks embeddings up in a file instead of running a model."""
import os.path as osp
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS

from hlss_plugin.utils.checkpoint import describe_load_error

from .base_text_tower import BaseTextTower, fingerprint_files

__all__ = ['PrecomputedTextTower']

_FORMAT_HELP = (
    'Supported formats: a .pt file (torch.save) holding either '
    "{'texts': [str, ...], 'embeddings': Tensor (n, D)} or {text: Tensor "
    "(D,), ...}; a .npz file (np.savez) with arrays 'texts' (n strings) and "
    "'embeddings' (n, D); or a .npy file holding a structured array with "
    "fields 'text' (str) and 'embedding' (float, shape (D,)).")


@MODELS.register_module()
class PrecomputedTextTower(BaseTextTower):
    """Embeddings computed elsewhere (another machine, a model that cannot be
    installed here), read from one file.

    Keys are texts: descriptions and/or attribute names. File formats
    (pickle-free: ``.pt`` loads with ``weights_only=True``, numpy files with
    ``allow_pickle=False``):

    - ``.pt``: ``{'texts': [str, ...], 'embeddings': Tensor (n, D)}`` or
      ``{text: Tensor (D,), ...}``;
    - ``.npz``: ``np.savez(path, texts=np.array(texts), embeddings=E)``;
    - ``.npy``: a structured array with fields ``'text'`` and
      ``'embedding'``, e.g. ``np.array(list(zip(texts, E)),
      dtype=[('text', 'U256'), ('embedding', 'f4', (D,))])``.

    :meth:`encode` returns the stored vectors of the requested texts.
    :meth:`embed_attributes` pools description embeddings like every tower
    (normalised mean of normalised vectors); for an attribute whose
    descriptions are not all in the file, the entry stored under the
    attribute *name* is used instead (L2-normalised), so a file may also hold
    finished attribute embeddings. Anything missing raises a ``ValueError``
    listing the missing texts. The file is read lazily, on first use; nothing
    is stored in ``state_dict()``.

    Args:
        path (str): The embedding file (``.pt``, ``.npz`` or ``.npy``).

    Example:
        >>> torch.save({'texts': ['dense', 'sparse'],
        ...             'embeddings': torch.eye(2)}, '/tmp/emb.pt')
        >>> PrecomputedTextTower('/tmp/emb.pt').encode(['sparse'])
        tensor([[0., 1.]])
    """

    pooling = 'precomputed'

    def __init__(self, path: str):
        super().__init__(cache_dir=None)
        if not isinstance(path, str) or not osp.isfile(path):
            raise ValueError(f'PrecomputedTextTower: path {path!r} is not an '
                             f'existing file. {_FORMAT_HELP}')
        if not path.endswith(('.pt', '.pth', '.npz', '.npy')):
            raise ValueError(f'PrecomputedTextTower: {path!r} has an unknown '
                             f'extension. {_FORMAT_HELP}')
        self.path = osp.abspath(path)

    def cache_identity(self) -> Dict[str, Any]:
        """Fingerprint of the embedding file."""
        return {'file': fingerprint_files([self.path])}

    # -------------------------------------------------------------- reading
    def _load_backend(self) -> Dict[str, torch.Tensor]:
        if self.path.endswith('.npz'):
            texts, matrix = self._read_npz()
        elif self.path.endswith('.npy'):
            texts, matrix = self._read_npy()
        else:
            texts, matrix = self._read_pt()
        if matrix.dim() != 2 or matrix.shape[0] != len(texts):
            raise ValueError(
                f'PrecomputedTextTower: {self.path} holds {len(texts)} texts '
                f'but embeddings of shape {tuple(matrix.shape)}; expected '
                f'({len(texts)}, D). {_FORMAT_HELP}')
        table: Dict[str, torch.Tensor] = {}
        for text, row in zip(texts, matrix):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'PrecomputedTextTower: {self.path} has an '
                                 f'empty or non-string text key {text!r}.')
            if text in table:
                raise ValueError(f'PrecomputedTextTower: {self.path} holds '
                                 f'the text {text!r} twice; keep one.')
            table[text] = row
        return table

    def _read_pt(self):
        try:
            data = torch.load(self.path, map_location='cpu', weights_only=True)
        except Exception as exc:  # torch's text advises weights_only=False
            raise ValueError(f'PrecomputedTextTower: cannot read {self.path} '
                             f'with torch.load(weights_only=True) '
                             f'({describe_load_error(exc)}). '
                             f'{_FORMAT_HELP}') from None
        if not isinstance(data, Mapping):
            raise ValueError(f'PrecomputedTextTower: {self.path} holds a '
                             f'{type(data).__name__}. {_FORMAT_HELP}')
        if set(data) == {'texts', 'embeddings'}:
            texts, matrix = list(data['texts']), data['embeddings']
            if not isinstance(matrix, torch.Tensor):
                raise ValueError(f'PrecomputedTextTower: {self.path}: '
                                 f"'embeddings' must be a Tensor. "
                                 f'{_FORMAT_HELP}')
            return texts, matrix.float()
        rows = list(data.values())
        if not rows or not all(
                isinstance(r, torch.Tensor) and r.dim() == 1 for r in rows):
            raise ValueError(f'PrecomputedTextTower: {self.path} must map '
                             f'each text to a 1-d Tensor. {_FORMAT_HELP}')
        if len({r.shape[0] for r in rows}) != 1:
            raise ValueError(f'PrecomputedTextTower: {self.path}: the '
                             f'vectors differ in length. {_FORMAT_HELP}')
        return list(data), torch.stack(rows).float()

    def _read_npz(self):
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if set(data.files) != {'texts', 'embeddings'}:
                    raise ValueError(f'arrays {sorted(data.files)}')
                texts = [str(t) for t in data['texts'].tolist()]
                matrix = torch.from_numpy(
                    np.asarray(data['embeddings'], dtype=np.float32))
        except ValueError as exc:
            raise ValueError(f'PrecomputedTextTower: cannot read {self.path} '
                             f'({exc}). {_FORMAT_HELP}') from exc
        return texts, matrix

    def _read_npy(self):
        try:
            array = np.load(self.path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f'PrecomputedTextTower: cannot read {self.path} '
                             f'({exc}). {_FORMAT_HELP}') from exc
        names = array.dtype.names or ()
        if array.ndim != 1 or set(names) != {'text', 'embedding'}:
            raise ValueError(
                f'PrecomputedTextTower: {self.path} holds an array of dtype '
                f'{array.dtype} and shape {array.shape}, without the texts. '
                f'{_FORMAT_HELP}')
        texts = [str(t) for t in array['text'].tolist()]
        matrix = torch.from_numpy(
            np.asarray(array['embedding'],
                       dtype=np.float32).reshape(len(array), -1))
        return texts, matrix

    # ------------------------------------------------------------ embedding
    def _missing(self, texts: List[str]) -> List[str]:
        return [t for t in texts if t not in self.backend]

    def _raise_missing(self, missing: List[str]) -> None:
        shown = ', '.join(repr(t) for t in missing[:5])
        more = f' and {len(missing) - 5} more' if len(missing) > 5 else ''
        raise ValueError(
            f'PrecomputedTextTower: {self.path} has no embedding for '
            f'{len(missing)} text(s): {shown}{more}. Recompute the file for '
            f'the current attribute list (or fix the texts).')

    def encode(self, texts: List[str]) -> torch.Tensor:
        """Stored embeddings of ``texts``.

        Args:
            texts (List[str]): ``n`` texts, each a key of the file.

        Returns:
            Tensor: Float32 CPU tensor ``(n, D)`` (as stored).

        Raises:
            ValueError: If any text is not in the file.
        """
        texts = self._check_texts(texts, type(self).__name__)
        missing = self._missing(texts)
        if missing:
            self._raise_missing(missing)
        return torch.stack([self.backend[t] for t in texts])

    def _pool(self, names: List[str], groups: List[List[str]]) -> torch.Tensor:
        rows: List[Optional[torch.Tensor]] = []
        missing: List[str] = []
        for name, group in zip(names, groups):
            if not self._missing(group):
                rows.append(super()._pool([name], [group])[0])
            elif name in self.backend:
                rows.append(F.normalize(self.backend[name].float(), dim=0))
            else:
                missing.extend(self._missing(group))
        if missing:
            self._raise_missing(missing)
        return torch.stack(rows).contiguous()
