"""Transforms registered into ``mmpretrain.registry.TRANSFORMS``."""
from .augment_ops import AUGMENT_OPS, build_augment_op
from .center_crop_tensor import CenterCropTensor
from .loading import LoadH5Patch, LoadPatchImage, LoadSRHPatch
from .load_srh_patch_raw import LoadSRHPatchRaw
from .resize_tensor import ResizeTensor
from .srh_augment import RECIPES, SRHAugment, apply_plan
from .srh_third_channel import SRHThirdChannel, srh_third_channel

__all__ = [
    'AUGMENT_OPS', 'build_augment_op', 'CenterCropTensor', 'LoadH5Patch', 'LoadPatchImage',
    'LoadSRHPatch', 'RECIPES', 'SRHAugment', 'apply_plan', 'SRHThirdChannel',
    'srh_third_channel', 'LoadSRHPatchRaw', 'ResizeTensor'
]
