# HLSS with an MMPretrain ResNet-50 visual tower and the embedded MiniLM text
# tower. Each level has its own text-initialised head and losses
# (hlss_level_heads.py).
_base_ = ['hlss_level_heads.py']
model = dict(
    type='HLSS',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[0.485, 0.456, 0.406],  # views are floats in [0, 1]
        std=[0.229, 0.224, 0.225],
        to_rgb=False),
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='BN'),
                  zero_init_residual=True),
    neck=dict(type='GlobalAveragePooling'),
    in_channels=2048,
    text_tower={{_base_.hlss_text_tower}},
    heads={{_base_.hlss_heads}})
