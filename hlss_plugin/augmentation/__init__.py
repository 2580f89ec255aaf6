"""View augmentation: the ops, plans, and the transforms built on them.

* :mod:`.ops`: SRH augmentation ops with explicit per-sample parameters
  (``sample`` / ``apply`` / ``apply_dense``), one file per family.
* :mod:`.plan` / :mod:`.apply_plan`: draw which ops fire and their params
  for ``n`` samples, and apply such a plan (``'gather'`` or ``'dense'``).
* :mod:`.srh_augment`: the registered per-sample transform ``SRHAugment``
  and its :mod:`.recipes`; the batched ``SRHBatchAugmentPreprocessor``
  (``hlss_plugin.models.data_preprocessors``) runs the same plans on a
  device.
* :mod:`.srh_third_channel`: the SRH 3-channel image formula.
* :mod:`.reference_pipeline`: the published recipe in stock torchvision (a
  test and benchmark baseline, not used for training).
* :mod:`.hed_jitter` / :mod:`.he_views`: H&E stain jitter (``HEDJitter``)
  and the H&E views (``HEView``, Lightly-based ``LightlyView``).

See ``docs/augmentation.md``.
"""
from .apply_plan import APPLY_MODES, apply_plan
from .he_views import HEView, LightlyView
from .hed_jitter import HEDJitter, hed_jitter
from .ops import AUGMENT_OPS, AugmentOp, build_augment_op
from .plan import PlannedOp, sample_plan
from .recipes import DEFAULT_OPS, PUBLISHED_OPS, RECIPES
from .srh_augment import SRHAugment
from .srh_third_channel import srh_third_channel

__all__ = [
    'APPLY_MODES', 'AUGMENT_OPS', 'AugmentOp', 'DEFAULT_OPS', 'HEDJitter',
    'HEView', 'LightlyView', 'PUBLISHED_OPS', 'PlannedOp', 'RECIPES',
    'SRHAugment', 'apply_plan', 'build_augment_op', 'hed_jitter',
    'sample_plan', 'srh_third_channel'
]
