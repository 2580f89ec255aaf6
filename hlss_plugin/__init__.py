"""hlss_plugin: HLSS for MMPretrain.

Importing the package registers every dataset, sampler, transform,
augmentation and hook into MMPretrain's registries::

    custom_imports = dict(imports=['hlss_plugin'], allow_failed_imports=False)
"""
from . import augmentation, datasets, engine, evaluation, models  # noqa: F401
# (the imports above register every module into MMPretrain's registries)
from .errors import BadPatchError
from .version import __version__

__all__ = [
    'BadPatchError', 'augmentation', 'datasets', 'engine', 'evaluation',
    'models', '__version__'
]
