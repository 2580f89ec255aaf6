"""Loading, packing and evaluation transforms registered into
``mmpretrain.registry.TRANSFORMS`` (view augmentation lives in
:mod:`hlss_plugin.augmentation`)."""
from .center_crop_tensor import CenterCropTensor, center_crop_box
from .loading import LoadH5Patch, LoadPatchImage, LoadSRHPatch
from .load_srh_patch_raw import LoadSRHPatchRaw
from .resize_tensor import ResizeTensor
from .srh_third_channel import SRHThirdChannel

__all__ = [
    'CenterCropTensor', 'center_crop_box', 'LoadH5Patch', 'LoadPatchImage',
    'LoadSRHPatch', 'SRHThirdChannel', 'LoadSRHPatchRaw', 'ResizeTensor'
]
