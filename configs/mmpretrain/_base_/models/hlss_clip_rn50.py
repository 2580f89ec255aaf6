# HLSS as published: CLIP RN50 (QuickGELU) image tower, trained, and the same
# CLIP's frozen text tower for the attributes, both from the folder written by
# tools/model_converters/convert_clip_rn50.py (HLSS_CLIP_DIR, default
# checkpoints/clip_rn50; docs/reproduction.md). The image embedding (1024-d,
# attention-pooled) and the text embeddings share CLIP's space, so the level
# heads have no bridge: Linear(1024 -> 128) whose rows are the 128 attribute
# embeddings, on the normalised image embedding. HA as published (detached).
# SRH views in [0, 1] go in without mean/std normalisation, as published.
_base_ = ['hlss_level_heads.py']
import os  # noqa: E402 (read here, not by mmengine, to explain an empty one)

clip_dir = os.environ.get('HLSS_CLIP_DIR', 'checkpoints/clip_rn50')
if not clip_dir.strip():
    raise ValueError(
        'HLSS_CLIP_DIR is set but empty. Point it at the folder that '
        'tools/model_converters/convert_clip_rn50.py wrote (visual.pth and '
        'text/), e.g. `export HLSS_CLIP_DIR=checkpoints/clip_rn50`, or unset '
        'it (`unset HLSS_CLIP_DIR`) to use checkpoints/clip_rn50; '
        'docs/reproduction.md explains how to get the CLIP weights.')
model = dict(
    type='HLSS',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[0.0, 0.0, 0.0],
        std=[1.0, 1.0, 1.0],
        to_rgb=False),
    backbone=dict(
        type='CLIPResNet',
        layers=(3, 4, 6, 3),
        width=64,
        heads=32,
        output_dim=1024,
        image_size=224,
        init_cfg=dict(type='Pretrained', checkpoint=clip_dir + '/visual.pth')),
    neck=dict(type='IdentityNeck'),  # CLIP's attention pool is built in
    in_channels=1024,
    text_tower=dict(
        type='HFCLIPTextTower',
        model_path=clip_dir + '/text',
        cache_dir='.cache/hlss_text'),
    heads={{_base_.hlss_heads_published}})
