"""Frozen text encoder that turns attribute descriptions into embeddings."""
import hashlib
import json
import logging
import os
import os.path as osp
import warnings
from abc import ABCMeta, abstractmethod
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.logging import print_log

from hlss_plugin.utils import dist
from hlss_plugin.utils.checkpoint import describe_load_error

__all__ = ['BaseTextTower', 'file_digest', 'fingerprint_files']

_BLOCK = 1 << 20
#: Digest of each file already hashed in this process, keyed by
#: ``(real path, size, mtime_ns)``; a file replaced in place gets a new mtime
#: (or size) and is hashed again.
_FILE_DIGESTS: Dict[Tuple[str, int, int], str] = {}


def file_digest(path: str) -> str:
    """SHA-256 of a file's whole content, streamed in 1 MiB blocks.

    The digest is remembered per ``(real path, size, mtime_ns)`` for the
    rest of the process, so asking again for an unchanged file costs one
    ``os.stat``. (A file rewritten with the same size *and* the same
    modification time in nanoseconds would be missed; editors and
    ``save_pretrained`` always change the mtime.)

    Args:
        path (str): The file.

    Returns:
        str: A SHA-256 hex digest.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as f:
        ...     file_digest(f.name)[:8]
        'e3b0c442'
    """
    real = osp.realpath(path)
    stat = os.stat(real)
    key = (real, stat.st_size, stat.st_mtime_ns)
    digest = _FILE_DIGESTS.get(key)
    if digest is None:
        sha = hashlib.sha256()
        with open(real, 'rb') as f:
            for block in iter(lambda: f.read(_BLOCK), b''):
                sha.update(block)
        digest = _FILE_DIGESTS[key] = sha.hexdigest()
    return digest


def fingerprint_files(paths: Sequence[str]) -> str:
    """Content fingerprint of files, independent of where they are stored.

    Every file is hashed *whole* (:func:`file_digest`), so a model whose
    weights change anywhere -- even one layer, at the same file size -- gets
    a new fingerprint. The key is content-based on purpose rather than a
    model revision id (such as a Hugging Face snapshot commit hash): a
    local folder can be edited in place without its revision changing.
    Hashing runs at about 1 GB/s and each file is hashed once per process.

    Args:
        paths (Sequence[str]): Files to fingerprint; their base names and
            contents enter the hash, their folders and modification times do
            not (a copied model folder keeps its fingerprint).

    Returns:
        str: A SHA-256 hex digest.

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile(suffix='.txt') as f:
        ...     len(fingerprint_files([f.name]))
        64
    """
    digest = hashlib.sha256()
    for path in sorted(paths, key=osp.basename):
        digest.update(f'{osp.basename(path)}\0{file_digest(path)}\0'.encode())
    return digest.hexdigest()


def fingerprint_folder(folder: str) -> str:
    """:func:`fingerprint_files` of the files directly inside ``folder``.

    Example:
        >>> import tempfile
        >>> len(fingerprint_folder(tempfile.gettempdir()))
        64
    """
    return fingerprint_files([
        osp.join(folder, f) for f in sorted(os.listdir(folder))
        if osp.isfile(osp.join(folder, f))
    ])


class BaseTextTower(nn.Module, metaclass=ABCMeta):
    """Frozen text encoder used to embed histology attributes once.

    HLSS initialises its per-level projection heads from attribute embeddings.
    This class turns ``{attribute: [description, ...]}`` into an ``(A, D)``
    matrix: every description is encoded, L2-normalised, averaged per
    attribute and the mean is L2-normalised again
    (:meth:`embed_attributes`). Subclasses only implement :meth:`encode`,
    :meth:`_load_backend` and :meth:`cache_identity`.

    **Frozen, and never in a checkpoint.** The underlying text model (the
    *backend*) is loaded lazily on the first :meth:`encode` and is stored
    *outside* the ``nn.Module`` registry: it is not a submodule, so
    ``parameters()``, ``state_dict()``, ``.to()`` and DDP never see it. A model
    that holds a tower therefore checkpoints no text weights, and the
    optimizer never gets them. All backend parameters have
    ``requires_grad=False`` and the backend stays in ``eval()``; so does the
    tower (:meth:`train` ignores its argument). The backend runs on the CPU
    and the embeddings are returned on the CPU as float32; move or copy them
    where they are needed.

    **Disk cache.** With ``cache_dir``, :meth:`embed_attributes` stores its
    result in ``<cache_dir>/text_embeddings_<key>.pt``, where ``key`` hashes
    the tower class, :meth:`cache_identity` (a content fingerprint of the
    model files and the settings that change the output), :attr:`pooling`
    and every attribute name and description in order. The file holds only
    tensors, strings and lists (it loads with ``torch.load(...,
    weights_only=True)``). A later call or run with the same key reads the
    file and does not load the text model at all. The model fingerprint
    hashes the *whole* content of every model file (see
    :func:`fingerprint_files`), so changed weights never reuse old
    embeddings. The cache is optional: a ``cache_dir`` that cannot be
    created or written (read-only disk) gives a warning naming the folder
    and the run goes on with the computed embeddings.

    **Distributed.** When a ``torch.distributed`` process group with more
    than one rank is initialised, :meth:`embed_attributes` is a collective:
    rank 0 computes the embeddings (or reads the cache, and writes it) and
    broadcasts them; the other ranks never load the text model. Every rank
    must call it. An error on rank 0 is re-raised on every rank.

    Args:
        cache_dir (str, optional): Folder for cached attribute embeddings,
            created if needed. ``None`` disables caching. Defaults to None.

    Example:
        >>> class HashTower(BaseTextTower):
        ...     def cache_identity(self):
        ...         return {'name': 'hash'}
        ...     def _load_backend(self):
        ...         return None
        ...     def encode(self, texts):
        ...         g = [torch.Generator().manual_seed(len(t)) for t in texts]
        ...         return torch.stack([torch.randn(8, generator=x)
        ...                             for x in g])
        >>> emb = HashTower().embed_attributes({'dense': ['a', 'bb'],
        ...                                     'sparse': ['ccc']})
        >>> emb.shape, bool(torch.allclose(emb.norm(dim=1), torch.ones(2)))
        (torch.Size([2, 8]), True)
    """

    #: How token states become one vector; part of the cache key.
    pooling: str = 'none'

    def __init__(self, cache_dir: Optional[str] = None):
        super().__init__()
        if cache_dir is not None and (not isinstance(cache_dir, str)
                                      or not cache_dir):
            raise ValueError(f'{type(self).__name__}: cache_dir must be a '
                             f'folder path or None, got {cache_dir!r}.')
        self.cache_dir = cache_dir
        # Held outside the module registry on purpose (see class docstring).
        object.__setattr__(self, '_backend', None)
        object.__setattr__(self, '_backend_loaded', False)
        super().train(False)

    # ------------------------------------------------------------ subclass API
    @abstractmethod
    def cache_identity(self) -> Dict[str, Any]:
        """JSON-serialisable description of everything that changes the
        output of :meth:`encode` (model fingerprint, maximum length, ...).

        Must not load the backend: a cache hit relies on it.
        """

    @abstractmethod
    def _load_backend(self) -> Any:
        """Load and return the text model (and tokenizer); called at most
        once, by :attr:`backend`."""

    @abstractmethod
    def encode(self, texts: List[str]) -> torch.Tensor:
        """Embed texts with the frozen backend.

        Args:
            texts (List[str]): ``n`` non-empty strings.

        Returns:
            Tensor: Float32 CPU tensor of shape ``(n, D)``, not normalised.
        """

    # ---------------------------------------------------------------- backend
    @property
    def backend(self) -> Any:
        """The text model, loaded (and frozen) on first access."""
        if not self._backend_loaded:
            backend = self._load_backend()
            for module in _modules_in(backend):
                module.requires_grad_(False)
                module.eval()
            object.__setattr__(self, '_backend', backend)
            object.__setattr__(self, '_backend_loaded', True)
        return self._backend

    @property
    def backend_loaded(self) -> bool:
        """Whether the text model has been loaded in this process."""
        return self._backend_loaded

    def train(self, mode: bool = True) -> 'BaseTextTower':
        """Keep the tower in eval mode whatever ``mode`` says (it is frozen).

        Returns:
            BaseTextTower: ``self``.
        """
        return super().train(False)

    @staticmethod
    def _check_texts(texts: Any, owner: str) -> List[str]:
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise ValueError(f'{owner}.encode: expected a list of strings, '
                             f'got {type(texts).__name__}.')
        if not texts:
            raise ValueError(f'{owner}.encode: got an empty list of texts.')
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'{owner}.encode: text {i} must be a '
                                 f'non-empty string, got {text!r}.')
        return list(texts)

    # ----------------------------------------------------- attribute embedding
    def embed_attributes(
            self, attributes: Mapping[str, Sequence[str]]) -> torch.Tensor:
        """Embed each attribute as the normalised mean of its descriptions.

        For attribute ``a`` with description embeddings ``e_1..e_k``:
        ``t_a = normalize(mean_i(normalize(e_i)))``.

        Args:
            attributes (Mapping[str, Sequence[str]]): Attribute name to its
                non-empty list of descriptions, e.g. one level of
                :func:`hlss_plugin.text.load_attributes`.

        Returns:
            Tensor: Float32 CPU tensor ``(A, D)`` with unit-norm rows, in the
            order of ``attributes``; identical on every rank.

        Raises:
            ValueError: If ``attributes`` is empty or malformed.
            RuntimeError: On ranks other than 0 when rank 0 failed.
        """
        names, groups = self._check_attributes(attributes)
        key = self.cache_key(names, groups)
        if dist.world_size() == 1:
            return self._embed_or_load(names, groups, key)
        result: Any = None
        if dist.rank() == 0:
            try:
                result = self._embed_or_load(names, groups, key)
            except Exception as exc:  # re-raised below, after the broadcast
                dist.broadcast_object(f'{type(exc).__name__}: {exc}')
                raise
        result = dist.broadcast_object(result)
        if isinstance(result, str):
            raise RuntimeError(f'{type(self).__name__}.embed_attributes '
                               f'failed on rank 0: {result}')
        return result

    def _check_attributes(self, attributes: Any):
        owner = f'{type(self).__name__}.embed_attributes'
        if not isinstance(attributes, Mapping) or not attributes:
            raise ValueError(f'{owner}: expected a non-empty mapping '
                             f'{{attribute: [descriptions]}}, got '
                             f'{attributes!r:.80}.')
        names, groups = [], []
        for name, descriptions in attributes.items():
            if (isinstance(descriptions, str)
                    or not isinstance(descriptions, Sequence)
                    or not descriptions or not all(
                        isinstance(d, str) and d.strip()
                        for d in descriptions)):
                raise ValueError(
                    f'{owner}: attribute {name!r} needs a non-empty list of '
                    f'non-empty description strings, got {descriptions!r}. '
                    f'Check it with hlss_plugin.text.validate_attributes.')
            names.append(str(name))
            groups.append(list(descriptions))
        return names, groups

    def cache_key(self, names: List[str], groups: List[List[str]]) -> str:
        """Hex key of an attribute set for this tower (no model loading).

        Args:
            names (List[str]): Attribute names, in order.
            groups (List[List[str]]): Their descriptions.

        Returns:
            str: SHA-256 hex digest.
        """
        record = {
            'tower': type(self).__name__,
            'identity': self.cache_identity(),
            'pooling': self.pooling,
            'attributes': [[n, g] for n, g in zip(names, groups)],
        }
        blob = json.dumps(record, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode('utf-8')).hexdigest()

    def cache_path(self, key: str) -> Optional[str]:
        """Cache file for ``key``, or None without ``cache_dir``."""
        if self.cache_dir is None:
            return None
        return osp.join(self.cache_dir, f'text_embeddings_{key[:32]}.pt')

    def _embed_or_load(self, names: List[str], groups: List[List[str]],
                       key: str) -> torch.Tensor:
        path = self.cache_path(key)
        if path is not None and osp.isfile(path):
            cached = self._read_cache(path, key, names, groups)
            if cached is not None:
                note = ('text model not loaded'
                        if not self.backend_loaded else 'text model not used')
                print_log(
                    f'{type(self).__name__}: loaded cached attribute '
                    f'embeddings from {path} ({note})',
                    logger='current')
                return cached
        embeddings = self._pool(names, groups)
        if path is not None:
            self._write_cache(path, key, names, groups, embeddings)
        return embeddings

    def _pool(self, names: List[str], groups: List[List[str]]) -> torch.Tensor:
        flat = [text for group in groups for text in group]
        encoded = self.encode(flat)
        if encoded.dim() != 2 or encoded.shape[0] != len(flat):
            raise ValueError(
                f'{type(self).__name__}.encode returned shape '
                f'{tuple(encoded.shape)} for {len(flat)} texts; expected '
                f'({len(flat)}, D).')
        encoded = F.normalize(encoded.detach().float().cpu(), dim=1)
        counts = [len(group) for group in groups]
        means = torch.stack(
            [chunk.mean(dim=0) for chunk in encoded.split(counts)])
        return F.normalize(means, dim=1).contiguous()

    def _read_cache(self, path: str, key: str, names: List[str],
                    groups: List[List[str]]) -> Optional[torch.Tensor]:
        try:
            record = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as exc:  # unreadable: recompute and overwrite
            print_log(
                f'{type(self).__name__}: ignoring unreadable cache '
                f'{path} ({describe_load_error(exc)}); recomputing.',
                logger='current',
                level=logging.WARNING)
            return None
        if (not isinstance(record, dict) or record.get('key') != key
                or record.get('attributes') != names
                or record.get('descriptions') != groups
                or not isinstance(record.get('embeddings'), torch.Tensor)):
            print_log(
                f'{type(self).__name__}: cache {path} does not match '
                f'this attribute set; recomputing.',
                logger='current',
                level=logging.WARNING)
            return None
        return record['embeddings']

    def _write_cache(self, path: str, key: str, names: List[str],
                     groups: List[List[str]],
                     embeddings: torch.Tensor) -> None:
        """Store the embeddings; a cache folder that cannot be written is
        a warning, not an error (the cache is optional)."""
        tmp = f'{path}.tmp{os.getpid()}'
        try:
            os.makedirs(osp.dirname(path), exist_ok=True)
            self._save_record(path, tmp, key, names, groups, embeddings)
        except (OSError, RuntimeError) as exc:
            if osp.exists(tmp):
                try:
                    os.remove(tmp)
                except OSError:
                    pass
            warnings.warn(
                f'{type(self).__name__}: cannot write the text embedding '
                f'cache in {self.cache_dir} ({type(exc).__name__}: '
                f'{str(exc).splitlines()[0] if str(exc) else exc!r}); going '
                f'on without it (the embeddings are recomputed next run). '
                f'Set cache_dir to a writable folder, or cache_dir=None to '
                f'silence this.', stacklevel=3)
            return
        print_log(
            f'{type(self).__name__}: saved attribute embeddings to '
            f'{path}',
            logger='current')

    def _save_record(self, path: str, tmp: str, key: str, names: List[str],
                     groups: List[List[str]],
                     embeddings: torch.Tensor) -> None:
        record = {
            'key': key,
            'tower': type(self).__name__,
            'identity': json.dumps(self.cache_identity(), sort_keys=True),
            'pooling': self.pooling,
            'attributes': names,
            'descriptions': groups,
            'embeddings': embeddings,
        }
        torch.save(record, tmp)
        os.replace(tmp, path)


def _modules_in(backend: Any) -> List[nn.Module]:
    """The ``nn.Module`` objects held by a backend (itself, or in a tuple,
    list or dict)."""
    if isinstance(backend, nn.Module):
        return [backend]
    if isinstance(backend, Mapping):
        backend = list(backend.values())
    if isinstance(backend, (list, tuple)):
        return [m for item in backend for m in _modules_in(item)]
    return []
