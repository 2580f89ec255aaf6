"""What ``tools/benchmarks/benchmark_throughput.py`` measures on: the
config (with the benchmark's overrides), the model, its optimizer wrapper,
a fake uint16 batch and a synthetic OpenSRH-layout folder."""
import copy
import json
import os
import os.path as osp
from argparse import Namespace

import torch

from ..utils.quiet_logs import quiet_logs
from . import data_pipeline as bd

__all__ = ['build_model', 'build_optim', 'fake_batch', 'load_config',
           'random_text_tower', 'view_size', 'write_srh_layout']


def load_config(args: Namespace):
    """The benchmark's config with its overrides.

    Sets ``args.channels_last`` (when None, from the config) and
    ``args.config_crop_size`` (the config's view size, for the CPU pipeline
    section).

    Args:
        args (Namespace): The tool's arguments (``config``,
            ``channels_last``, ``augment_mode``, ``crop_size``, ``depth``,
            ``base_channels``).

    Returns:
        Config: The config; its preprocessor's channels-last, apply mode
        and crop size, and the ResNet's depth and width (with every channel
        count that follows) overridden.

    Raises:
        ValueError: The config's preprocessor is not
            ``SRHBatchAugmentPreprocessor``, or ``--depth`` /
            ``--base-channels`` meet a backbone other than ResNet.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(args.config)
    pre = cfg.model.data_preprocessor
    if pre.get('type') != 'SRHBatchAugmentPreprocessor':
        raise ValueError(
            f'{args.config}: model.data_preprocessor.type is '
            f'{pre.get("type")!r}; the benchmark needs '
            f'SRHBatchAugmentPreprocessor (e.g. hlss_srh_fast.py).')
    if args.channels_last is None:
        args.channels_last = bool(pre.get('channels_last', False))
    pre.channels_last = args.channels_last
    pre.apply_mode = args.augment_mode
    # the production view size, for the CPU pipeline section
    args.config_crop_size = int((pre.get('augment') or {}).get('crop_size')
                                or 224)
    if args.crop_size is not None:
        pre.augment = dict(pre.get('augment') or {}, crop_size=args.crop_size)
    backbone = cfg.model.backbone
    if args.depth is not None or args.base_channels is not None:
        if backbone.get('type') != 'ResNet':
            raise ValueError(f'--depth / --base-channels need an MMPretrain '
                             f'ResNet backbone, the config has '
                             f'{backbone.get("type")!r}.')
        if args.depth is not None:
            backbone.depth = args.depth
        if args.base_channels is not None:
            backbone.base_channels = args.base_channels
            backbone.stem_channels = args.base_channels
        width = backbone.get('base_channels', 64)
        # channels of the last stage: 8 x width (BasicBlock, depth < 50)
        # or 32 x width (Bottleneck)
        out = width * (8 if backbone.depth < 50 else 32)
        cfg.model.in_channels = out
        for head in cfg.model.heads.values():
            head.bridge_hidden = out
            if backbone.depth < 50:
                head.num_outputs = None
    return cfg


def view_size(pre, patch: int) -> int:
    """Side of the views the preprocessor makes from ``patch`` px patches.
    """
    shape = (3, patch, patch)
    for op, _ in pre.augment.steps:
        shape = op.output_shape(shape)
    return int(shape[-1])


def random_text_tower(cfg, folder: str) -> dict:
    """A PrecomputedTextTower config with random 384-d attribute vectors.

    Args:
        cfg (Config): The config (its heads' attribute files).
        folder (str): Where ``random_text.pt`` is written.

    Returns:
        dict: The text tower config.
    """
    from hlss_plugin.text import load_attributes
    names = []
    for head in cfg.model.heads.values():
        for level in load_attributes(head.attributes).values():
            names += [n for n in level if n not in names]
    gen = torch.Generator().manual_seed(0)
    path = osp.join(folder, 'random_text.pt')
    torch.save({'texts': names,
                'embeddings': torch.randn(len(names), 384, generator=gen)},
               path)
    return dict(type='PrecomputedTextTower', path=path)


def build_model(cfg, args: Namespace, device: torch.device, folder: str):
    """Build and initialise the config's model on ``device``.

    Args:
        cfg (Config): The benchmark's config.
        args (Namespace): ``text_tower``, ``seed``, ``channels_last``,
            ``compile``.
        device (torch.device): Where the model goes.
        folder (str): Scratch folder (the random text tower).

    Returns:
        nn.Module: The model (its backbone compiled with ``--compile``).
    """
    from mmpretrain.registry import MODELS
    model_cfg = copy.deepcopy(cfg.model)
    if args.text_tower == 'random':
        model_cfg.text_tower = random_text_tower(cfg, folder)
    torch.manual_seed(args.seed)
    with quiet_logs():
        model = MODELS.build(model_cfg)
        model.init_weights()
    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    if args.compile:
        model.backbone = torch.compile(model.backbone)
    return model


def build_optim(cfg, module, precision: str):
    """The config's optimizer in the wrapper training uses.

    Args:
        cfg (Config): The config (``optim_wrapper.optimizer``).
        module (nn.Module): The parameters' owner.
        precision (str): ``'bf16'`` (``AmpOptimWrapper``) or ``'fp32'``.

    Returns:
        OptimWrapper: Built by ``AmpFallbackOptimWrapperConstructor`` (a
        CPU autocast wrapper on a CPU).
    """
    from mmengine.optim import build_optim_wrapper
    optim_cfg = dict(optimizer=copy.deepcopy(cfg.optim_wrapper.optimizer),
                     constructor='AmpFallbackOptimWrapperConstructor')
    if precision == 'bf16':
        optim_cfg.update(type='AmpOptimWrapper', dtype='bfloat16')
    else:
        optim_cfg.update(type='OptimWrapper')
    return build_optim_wrapper(module, optim_cfg)


def fake_batch(b: int, patch: int, seed: int, device: torch.device) -> dict:
    """A uint16 ``(b, 2, patch, patch)`` batch in host memory (pinned for
    CUDA) with hierarchical data samples (2 slides x 2 patches/patient)."""
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(seed)
    raw = torch.randint(0, 12000, (b, 2, patch, patch), generator=g,
                        dtype=torch.int32).to(torch.uint16)
    if device.type == 'cuda':
        raw = raw.pin_memory()
    samples = [DataSample(metainfo=dict(patient_idx=i // 4, slide_idx=i // 2,
                                        sample_idx=i, patient=f'P{i // 4}',
                                        slide=f'P{i // 4}/{i // 2}'))
               for i in range(b)]
    return dict(inputs=raw, data_samples=samples)


def write_srh_layout(root: str, patients: int, slides: int, patches: int,
                     size: int, seed: int) -> None:
    """An OpenSRH-layout folder: ``patients`` x ``slides`` x ``patches``
    TIFFs copied from a pool of up to 16 rendered patches (fast to write,
    real decode cost); the last patient is the val split."""
    import tifffile

    from hlss_plugin.synthetic import OPENSRH_CLASSES
    pool, _ = bd.synthetic_patches(min(16, patients * slides * patches),
                                   size, seed)
    meta, k = {}, 0
    for p in range(patients):
        pid = f'BENCH{p:04d}'
        cls = OPENSRH_CLASSES[p % len(OPENSRH_CLASSES)]
        key = 'normal_patches' if cls == 'normal' else 'tumor_patches'
        slide_meta = {}
        for s in range(slides):
            folder = osp.join(root, 'studies', pid, str(s), 'patches')
            os.makedirs(folder, exist_ok=True)
            names = []
            for j in range(patches):
                rel = f'studies/{pid}/{s}/patches/{pid}-{s}-{j}.tif'
                tifffile.imwrite(osp.join(root, rel), pool[k % len(pool)])
                names.append(rel)
                k += 1
            slide_meta[str(s)] = {key: names}
        meta[pid] = {'class': cls, 'slides': slide_meta}
    ids = sorted(meta)
    os.makedirs(osp.join(root, 'meta'), exist_ok=True)
    with open(osp.join(root, 'meta', 'opensrh.json'), 'w') as f:
        json.dump(meta, f)
    with open(osp.join(root, 'meta', 'train_val_split.json'), 'w') as f:
        json.dump({'train': ids[:-1], 'val': ids[-1:]}, f)
