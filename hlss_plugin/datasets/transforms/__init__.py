"""Transforms registered into ``mmpretrain.registry.TRANSFORMS``."""
from .augment_ops import AUGMENT_OPS, build_augment_op
from .center_crop_tensor import CenterCropTensor
from .loading import LoadH5Patch, LoadPatchImage, LoadSRHPatch
from .load_srh_patch_raw import LoadSRHPatchRaw
from .srh_augment import SRHAugment, apply_plan
from .srh_third_channel import SRHThirdChannel, srh_third_channel

__all__ = [
    'AUGMENT_OPS', 'build_augment_op', 'CenterCropTensor', 'LoadH5Patch', 'LoadPatchImage',
    'LoadSRHPatch', 'SRHAugment', 'apply_plan', 'SRHThirdChannel',
    'srh_third_channel', 'LoadSRHPatchRaw'
]
