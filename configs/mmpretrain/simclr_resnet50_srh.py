# SimCLR (Chen et al., 2020, https://arxiv.org/abs/2002.05709) on OpenSRH:
# NT-Xent over the two views of each patch, ResNet-50, 2-layer MLP projector
# to 128-d, temperature 0.1. Data, schedule and runtime as hlss_srh.py; the
# optimizer is our AdamW instead of the paper's LARS.
#   tools/dist_train.sh configs/mmpretrain/simclr_resnet50_srh.py 8 --data-root /data/opensrh
_base_ = ['_base_/srh_pretrain.py']
model = dict(
    type='SimCLR',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[0.485, 0.456, 0.406],  # views are floats in [0, 1]
        std=[0.229, 0.224, 0.225],
        to_rgb=False),
    # Plain BN everywhere, necks and heads too (SyncBN needs CUDA); on GPUs
    # add `--cfg-options sync_bn=torch` to synchronise it across ranks.
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='BN'),
                  zero_init_residual=True),
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=2048,
              out_channels=128, num_layers=2, with_avg_pool=True,
              norm_cfg=dict(type='BN1d')),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
              temperature=0.1))
