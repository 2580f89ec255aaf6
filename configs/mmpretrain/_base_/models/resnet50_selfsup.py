# The visual side shared by HLSS (hlss_resnet50.py) and the self-supervised
# baselines (srh_pretrain.py): SelfSupDataPreprocessor normalising the
# [0, 1] float views with ImageNet's mean / std, and MMPretrain's ResNet-50.
# Plain BN everywhere, necks and heads too (SyncBN needs CUDA); on GPUs add
# `--cfg-options sync_bn=torch` to synchronise it across ranks.
model = dict(
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[0.485, 0.456, 0.406],  # views are floats in [0, 1]
        std=[0.229, 0.224, 0.225],
        to_rgb=False),
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='BN'),
                  zero_init_residual=True))
