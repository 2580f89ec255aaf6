"""Loading transforms: SRH TIFF patches, HDF5 patch bags and image files.

Every loader reads ``results['img_path']`` and writes ``results['img']`` as a
``float32`` torch tensor of shape ``(C, H, W)`` together with ``ori_shape``
and ``img_shape`` (both ``(H, W)``). Any problem with the file itself (missing,
unreadable, wrong dtype or channel count, bad row index, missing HDF5 key)
raises :class:`~hlss_plugin.errors.BadPatchError`, so hierarchical datasets
can apply their ``on_bad_patch`` policy (skip or raise).

Value conventions:

* SRH patches (``(2, H, W)`` ``uint16``: channel 0 = CH2 lipid-weighted,
  channel 1 = CH3 protein-weighted) stay in **raw intensity units**; scale
  them with :class:`~hlss_plugin.datasets.transforms.srh_third_channel.
  SRHThirdChannel`.
* Everything else (H&E, PNG/JPEG, RGB TIFF) is scaled to ``[0, 1]``:
  ``uint8 / 255`` and ``uint16 / 65535``.
"""
import os
import os.path as osp
from collections import OrderedDict
from typing import Optional

import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

from ...errors import BadPatchError

#: Divisor that maps each supported integer dtype onto ``[0, 1]``.
UNIT_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

TIFF_SUFFIXES = ('.tif', '.tiff')
PIL_SUFFIXES = ('.png', '.jpg', '.jpeg')


def _require_file(path: str) -> None:
    """Raise :class:`BadPatchError` unless ``path`` is an existing file."""
    if not osp.isfile(path):
        raise BadPatchError(
            path, 'file not found. Check the path in the metadata/manifest '
            'and the dataset data_root, or use on_bad_patch="skip" to drop '
            'missing patches.')


def _read_tiff(path: str) -> np.ndarray:
    """Read a TIFF with tifffile, turning any failure into BadPatchError."""
    import tifffile
    _require_file(path)
    try:
        return tifffile.imread(path)
    except Exception as err:  # tifffile raises many types on corrupt files
        raise BadPatchError(
            path, f'could not be read as a TIFF ({type(err).__name__}: '
            f'{err}). The file is corrupt or not a TIFF; re-export it with '
            f'tifffile.imwrite, or remove it from the metadata.') from err


def check_srh_array(arr: np.ndarray, path: str, channels: int = 2) -> None:
    """Check that ``arr`` is a raw SRH patch ``(channels, H, W)`` ``uint16``.

    Args:
        arr (np.ndarray): The decoded file.
        path (str): File name used in the error message.
        channels (int): Expected channel count. Defaults to 2 (CH2, CH3).

    Raises:
        BadPatchError: When the dtype or shape differ, with the fix.

    Example:
        >>> check_srh_array(np.zeros((2, 8, 8), np.uint16), 'a.tif')
    """
    found = f'found shape {tuple(arr.shape)} dtype {arr.dtype}'
    if arr.ndim != 3 or arr.shape[0] != channels:
        hint = ''
        if arr.ndim == 3 and arr.shape[-1] == channels:
            hint = (' It looks channel-last; save it channel-first with '
                    'np.transpose(img, (2, 0, 1)).')
        raise BadPatchError(
            path, f'expected an SRH patch of shape ({channels}, H, W) uint16 '
            f'([CH2, CH3] channel-first), {found}.{hint} Re-export the patch, '
            f'or set LoadSRHPatch(channels=...) if your patches have another '
            f'channel count.')
    if arr.dtype != np.uint16:
        raise BadPatchError(
            path, f'expected an SRH patch of dtype uint16 (raw intensities), '
            f'{found}. Re-export it as uint16 (values 0..65535); for 8-bit '
            f'RGB images use LoadPatchImage instead.')


def _to_unit_float(arr: np.ndarray, path: str) -> torch.Tensor:
    """``(C, H, W)`` uint8/uint16 array -> float32 tensor in ``[0, 1]``."""
    scale = UNIT_SCALE.get(arr.dtype)
    if scale is None:
        raise BadPatchError(
            path, f'unsupported dtype {arr.dtype}; expected uint8 or uint16 '
            f'(scaled to [0, 1] by /255 or /65535). Convert the image to '
            f'one of these.')
    img = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return img.div_(scale)


def _set_img(results: dict, img: torch.Tensor) -> dict:
    results['img'] = img
    results['ori_shape'] = tuple(img.shape[-2:])
    results['img_shape'] = tuple(img.shape[-2:])
    return results


@TRANSFORMS.register_module()
class LoadSRHPatch(BaseTransform):
    """Load a raw SRH patch ``(2, H, W)`` ``uint16`` TIFF with tifffile.

    The strict format check refuses channel-last or 8-bit files (instead of
    guessing), so a wrongly exported dataset fails loudly.

    **Required keys:** ``img_path``.
    **Added keys:** ``img`` (float32 tensor ``(channels, H, W)``, raw
    intensity units 0..65535), ``ori_shape``, ``img_shape`` (``(H, W)``).

    Args:
        channels (int): Expected number of channels. Defaults to 2
            (CH2 lipid-weighted, CH3 protein-weighted).

    Raises:
        BadPatchError: Missing or corrupt file, wrong shape or dtype.

    Example:
        >>> import tifffile
        >>> tifffile.imwrite('p.tif', np.zeros((2, 300, 300), np.uint16))
        >>> out = LoadSRHPatch()(dict(img_path='p.tif'))
        >>> out['img'].shape, out['img'].dtype
        (torch.Size([2, 300, 300]), torch.float32)
    """

    def __init__(self, channels: int = 2):
        if not isinstance(channels, int) or channels < 1:
            raise ValueError(f'LoadSRHPatch: channels must be a positive int '
                             f'(2 for [CH2, CH3] SRH), got {channels!r}.')
        self.channels = channels

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        arr = _read_tiff(path)
        check_srh_array(arr, path, self.channels)
        return _set_img(results, torch.from_numpy(arr.astype(np.float32)))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(channels={self.channels})'


@TRANSFORMS.register_module()
class LoadH5Patch(BaseTransform):
    """Load one patch (row ``patch_idx``) from an HDF5 patch bag.

    The bag holds a dataset ``key`` of shape ``(N, H, W, C)`` in ``uint8`` or
    ``uint16``. The patch is returned channel-first and scaled to ``[0, 1]``:
    ``uint8 / 255``, ``uint16 / 65535`` (full 16-bit range, not the image's
    own maximum, so intensities stay comparable across patches).

    Open files are cached (at most ``max_open_files``, least recently used
    closed first). The cache belongs to one process: after a DataLoader
    worker forks, the inherited handles are dropped and the bag is reopened
    in the worker (checked with ``os.getpid()``); pickling (spawn workers)
    drops the cache as well.

    **Required keys:** ``img_path`` (the bag), ``patch_idx`` (int row).
    Optional ``h5_key`` in the data item overrides ``key``.
    **Added keys:** ``img`` (float32 tensor ``(C, H, W)`` in ``[0, 1]``),
    ``ori_shape``, ``img_shape``.

    Args:
        key (str): Dataset name inside the bag. Defaults to ``'imgs'``.
        channels (int, optional): Expected channel count ``C``; ``None``
            accepts any. Defaults to 3 (RGB H&E).
        max_open_files (int): Size of the per-process handle cache.
            Defaults to 64.

    Raises:
        BadPatchError: Missing or unreadable bag, missing key, wrong rank,
            dtype or channel count, ``patch_idx`` out of range.

    Example:
        >>> import h5py
        >>> with h5py.File('bag.h5', 'w') as f:
        ...     f['imgs'] = np.zeros((4, 64, 64, 3), np.uint8)
        >>> out = LoadH5Patch()(dict(img_path='bag.h5', patch_idx=2))
        >>> out['img'].shape
        torch.Size([3, 64, 64])
    """

    def __init__(self,
                 key: str = 'imgs',
                 channels: Optional[int] = 3,
                 max_open_files: int = 64):
        if channels is not None and (not isinstance(channels, int)
                                     or channels < 1):
            raise ValueError(f'LoadH5Patch: channels must be a positive int '
                             f'or None (any), got {channels!r}.')
        if not isinstance(max_open_files, int) or max_open_files < 1:
            raise ValueError(f'LoadH5Patch: max_open_files must be an int '
                             f'>= 1, got {max_open_files!r}.')
        self.key = key
        self.channels = channels
        self.max_open_files = max_open_files
        self._files: 'OrderedDict[str, object]' = OrderedDict()
        self._pid = os.getpid()

    # ----------------------------------------------------------- file cache
    def _open(self, path: str):
        import h5py
        if self._pid != os.getpid():
            # Inherited through fork: never share HDF5 handles between
            # processes. Drop the references and reopen in this process.
            self._files = OrderedDict()
            self._pid = os.getpid()
        handle = self._files.get(path)
        if handle is not None:
            self._files.move_to_end(path)
            return handle
        _require_file(path)
        try:
            handle = h5py.File(path, 'r')
        except Exception as err:
            raise BadPatchError(
                path, f'could not be opened as HDF5 ({type(err).__name__}: '
                f'{err}). The bag is corrupt or not HDF5; re-create it with '
                f'h5py, or remove the slide from the metadata.') from err
        self._files[path] = handle
        while len(self._files) > self.max_open_files:
            _, old = self._files.popitem(last=False)
            old.close()
        return handle

    def close(self) -> None:
        """Close every cached file opened by this process."""
        if self._pid == os.getpid():
            for handle in self._files.values():
                handle.close()
        self._files = OrderedDict()

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_files'] = OrderedDict()
        return state

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -------------------------------------------------------------- loading
    def transform(self, results: dict) -> dict:
        path = results['img_path']
        key = results.get('h5_key', self.key)
        if 'patch_idx' not in results:
            raise ValueError(
                f'LoadH5Patch: data item for {path} has no "patch_idx" (the '
                f'row in the HDF5 dataset). Use a dataset that sets it, e.g. '
                f'TCGADataset.')
        idx = results['patch_idx']
        handle = self._open(path)
        if key not in handle:
            raise BadPatchError(
                path, f'has no dataset {key!r} (found {sorted(handle.keys())}'
                f'). Set LoadH5Patch(key=...) / the dataset h5_key to the '
                f'patch dataset name.')
        dset = handle[key]
        where = f'dataset {key!r}'
        if dset.ndim != 4:
            raise BadPatchError(
                path, f'{where} has shape {dset.shape}; expected (N, H, W, C) '
                f'patches channel-last. Re-create the bag in that layout.')
        if self.channels is not None and dset.shape[-1] != self.channels:
            raise BadPatchError(
                path, f'{where} has {dset.shape[-1]} channels (shape '
                f'{dset.shape}); expected {self.channels}. Re-create the bag '
                f'or set LoadH5Patch(channels=None).')
        if dset.dtype not in UNIT_SCALE:
            raise BadPatchError(
                path, f'{where} has dtype {dset.dtype}; expected uint8 or '
                f'uint16. Convert the patches when writing the bag.')
        n = dset.shape[0]
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)) \
                or not 0 <= idx < n:
            raise BadPatchError(
                path, f'patch_idx {idx!r} is out of range for {where} with '
                f'{n} patches (valid 0..{n - 1}). Fix num_patches in the '
                f'metadata or rebuild the index.')
        try:
            arr = dset[int(idx)]
        except Exception as err:
            raise BadPatchError(
                path, f'reading row {idx} of {where} failed '
                f'({type(err).__name__}: {err}); the bag is corrupt. '
                f'Re-create it.') from err
        return _set_img(results, _to_unit_float(arr.transpose(2, 0, 1), path))

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(key={self.key!r}, '
                f'channels={self.channels}, '
                f'max_open_files={self.max_open_files})')


def _tiff_to_chw(arr: np.ndarray, path: str):
    """Decide the layout of a decoded manifest TIFF.

    Returns ``(array (C, H, W), is_raw_srh)``.
    """
    if arr.ndim == 2:
        return arr[None], False
    if arr.ndim == 3:
        if arr.shape[0] == 2 and arr.dtype == np.uint16:
            return arr, True  # raw SRH [CH2, CH3]
        if arr.shape[-1] in (1, 3, 4):
            if arr.shape[-1] == 4:
                arr = arr[..., :3]  # drop alpha
            return arr.transpose(2, 0, 1), False
        if arr.shape[0] in (1, 3):
            return arr, False  # planar (channel-first) RGB / gray
    raise BadPatchError(
        path, f'unsupported TIFF layout: shape {tuple(arr.shape)} dtype '
        f'{arr.dtype}. Expected an SRH patch (2, H, W) uint16, RGB (H, W, 3) '
        f'or (3, H, W), or grayscale (H, W). Re-export the patch.')


@TRANSFORMS.register_module()
class LoadPatchImage(BaseTransform):
    """Load a patch of any manifest format: TIFF, PNG or JPEG.

    * ``.tif`` / ``.tiff`` (tifffile): a ``(2, H, W)`` ``uint16`` array is a
      raw SRH patch and is kept in raw intensity units, exactly like
      :class:`LoadSRHPatch`. Other TIFFs (RGB ``(H, W, 3)`` or ``(3, H, W)``,
      RGBA with alpha dropped, grayscale) are scaled to ``[0, 1]``.
    * ``.png`` / ``.jpg`` / ``.jpeg`` (PIL): 8-bit images are converted to
      RGB (palette, RGBA, CMYK ...), or kept single-channel when grayscale;
      16-bit grayscale PNGs are read as ``uint16``. Values scaled to
      ``[0, 1]``.

    Scaling: ``uint8 / 255``, ``uint16 / 65535``.

    **Required keys:** ``img_path``.
    **Added keys:** ``img`` (float32 tensor ``(C, H, W)``), ``ori_shape``,
    ``img_shape``, ``raw_srh`` (bool, True for raw SRH TIFFs).

    Raises:
        BadPatchError: Missing, corrupt or unsupported files.

    Example:
        >>> from PIL import Image
        >>> Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save('p.png')
        >>> LoadPatchImage()(dict(img_path='p.png'))['img'].shape
        torch.Size([3, 32, 32])
    """

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        suffix = osp.splitext(str(path))[1].lower()
        if suffix in TIFF_SUFFIXES:
            arr, raw = _tiff_to_chw(_read_tiff(path), path)
            if raw:
                img = torch.from_numpy(arr.astype(np.float32))
            else:
                img = _to_unit_float(arr, path)
        elif suffix in PIL_SUFFIXES:
            img, raw = self._read_pil(path), False
        else:
            raise BadPatchError(
                path, f'unsupported file extension {suffix!r}; LoadPatchImage '
                f'reads {TIFF_SUFFIXES + PIL_SUFFIXES}. Convert the patch or '
                f'fix the manifest path.')
        results['raw_srh'] = raw
        return _set_img(results, img)

    @staticmethod
    def _read_pil(path: str) -> torch.Tensor:
        from PIL import Image
        _require_file(path)
        try:
            with Image.open(path) as im:
                if im.mode in ('I;16', 'I;16B', 'I;16L'):
                    arr = np.asarray(im).astype(np.uint16)
                else:
                    if im.mode not in ('L', 'RGB'):
                        im = im.convert('RGB')
                    arr = np.asarray(im)
        except Exception as err:
            raise BadPatchError(
                path, f'could not be decoded by PIL ({type(err).__name__}: '
                f'{err}). The file is corrupt or mislabelled; re-export it '
                f'or remove it from the manifest.') from err
        arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
        return _to_unit_float(arr, path)
