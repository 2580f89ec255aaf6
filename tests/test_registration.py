"""`import hlss_plugin` registers every public module into MMPretrain."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.registry import FUNCTIONS, Registry
from mmpretrain import registry as mmpretrain_registry
from mmpretrain.registry import DATA_SAMPLERS, DATASETS, HOOKS, LOOPS, \
    MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, TRANSFORMS, \
    WEIGHT_INITIALIZERS

import hlss_plugin  # noqa: F401

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))

EXPECTED = {
    DATASETS: ['OpenSRHDataset', 'TCGADataset', 'HierarchicalManifestDataset'],
    DATA_SAMPLERS: ['HierarchicalSampler'],
    TRANSFORMS: ['LoadSRHPatch', 'LoadH5Patch', 'LoadPatchImage',
                 'SRHThirdChannel', 'SRHAugment', 'LoadSRHPatchRaw'],
    HOOKS: ['PlainCheckpointHook', 'HierarchicalBatchCheckHook',
            'ChannelsLastHook'],
    OPTIM_WRAPPERS: ['CPUAutocastOptimWrapper'],
    OPTIM_WRAPPER_CONSTRUCTORS: ['AmpFallbackOptimWrapperConstructor'],
    WEIGHT_INITIALIZERS: ['HLSSPretrained'],
    LOOPS: ['EmbeddingValLoop', 'EmbeddingTestLoop'],
    MODELS: ['HLSS', 'CLIPResNet', 'IdentityNeck',
             'HierarchicalTextAlignedHead', 'HierarchicalSupConLoss',
             'HierarchicalAlignmentLoss', 'HFSentenceTextTower',
             'HFCLIPTextTower', 'PrecomputedTextTower', 'HiDisc',
             'HierarchicalContrastiveHead', 'VICRegHead', 'HLSSAuxWrapper',
             'BackboneEmbedder', 'SRHBatchAugmentPreprocessor'],
}


@pytest.mark.parametrize('registry, names', EXPECTED.items(),
                         ids=lambda x: getattr(x, 'name', None))
def test_registered(registry, names):
    for name in names:
        assert registry.get(name) is not None, f'{name} not in {registry}'


@pytest.mark.parametrize('path', sorted(glob.glob(
    osp.join(REPO, 'configs', 'mmpretrain', '**', '*.py'), recursive=True)),
    ids=lambda p: osp.relpath(p, REPO))
def test_configs_parse_and_name_registered_types(path):
    cfg = Config.fromfile(path)

    def types(node):
        if isinstance(node, dict):
            if 'type' in node and isinstance(node['type'], str):
                yield node['type']
            for key, value in node.items():
                if node.get('type') == 'SRHAugment' and key in ('ops',
                                                                'base_ops'):
                    continue  # augmentation op names, not registry types
                yield from types(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                yield from types(value)

    registries = [r for r in vars(mmpretrain_registry).values()
                  if isinstance(r, Registry)] + [FUNCTIONS]
    for name in types(cfg.to_dict()):
        assert any(r.get(name) is not None for r in registries), \
            f'{path}: type {name!r} is not registered'
