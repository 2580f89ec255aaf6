"""Load an SRH patch and keep it ``uint16`` (batched-augmentation pipelines).
"""
import torch
from mmpretrain.registry import TRANSFORMS

from .loading import LoadSRHPatch, _read_tiff, _set_img, check_srh_array


@TRANSFORMS.register_module()
class LoadSRHPatchRaw(LoadSRHPatch):
    """Load a raw SRH patch ``(2, H, W)`` ``uint16`` TIFF without converting
    it to float.

    Same file checks and errors as :class:`LoadSRHPatch` (strict shape and
    dtype, :class:`~hlss_plugin.errors.BadPatchError` for bad files), but the
    tensor stays ``uint16``: half the bytes of ``float32`` to collate, pin
    and copy to the accelerator, and no per-pixel work in the DataLoader
    worker. Pair it with
    ``SRHBatchAugmentPreprocessor``
    (:mod:`hlss_plugin.models.data_preprocessors`), which converts, builds
    the third channel and augments on the device.
    :class:`CenterCropTensor` can pre-crop the ``uint16`` tensor in the
    worker (it only slices).

    **Required keys:** ``img_path``.
    **Added keys:** ``img`` (``uint16`` tensor ``(channels, H, W)``, raw
    intensities), ``ori_shape``, ``img_shape`` (``(H, W)``).

    Args:
        channels (int): Expected number of channels. Defaults to 2
            (CH2 lipid-weighted, CH3 protein-weighted).

    Raises:
        BadPatchError: Missing or corrupt file, wrong shape or dtype.

    Example:
        >>> import tifffile
        >>> tifffile.imwrite('p.tif', np.zeros((2, 300, 300), np.uint16))
        >>> out = LoadSRHPatchRaw()(dict(img_path='p.tif'))
        >>> out['img'].shape, out['img'].dtype
        (torch.Size([2, 300, 300]), torch.uint16)
    """

    def transform(self, results: dict) -> dict:
        path = results['img_path']
        arr = _read_tiff(path)
        check_srh_array(arr, path, self.channels)
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            arr = arr.copy()
        return _set_img(results, torch.from_numpy(arr))
