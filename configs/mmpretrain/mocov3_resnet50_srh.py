# MoCo v3 (Chen et al., 2021, https://arxiv.org/abs/2104.02057) on OpenSRH:
# ResNet-50 with 3-layer-style projector (4096 -> 256) and predictor, a
# momentum encoder (CosineEMA of backbone + neck, updated inside
# MoCoV3.loss, so no hook) and symmetrised InfoNCE. base_momentum 0.004 is
# the 1000-epoch setting. Data, schedule and runtime as hlss_srh.py; the
# optimizer is our AdamW instead of LARS (and no AMP wrapper).
#   tools/dist_train.sh configs/mmpretrain/mocov3_resnet50_srh.py 8 --data-root /data/opensrh
_base_ = ['_base_/srh_pretrain_knn_val.py']  # + kNN validation
temperature = 1.0
model = dict(
    type='MoCoV3',
    base_momentum=0.004,
    backbone=dict(zero_init_residual=False),
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=4096,
              out_channels=256, num_layers=2, with_bias=False,
              with_last_bn=True, with_last_bn_affine=False,
              with_last_bias=False, with_avg_pool=True,
              norm_cfg=dict(type='BN1d')),
    head=dict(
        type='MoCoV3Head',
        predictor=dict(type='NonLinearNeck', in_channels=256,
                       hid_channels=4096, out_channels=256, num_layers=2,
                       with_bias=False, with_last_bn=False,
                       with_last_bn_affine=False, with_last_bias=False,
                       with_avg_pool=False, norm_cfg=dict(type='BN1d')),
        loss=dict(type='CrossEntropyLoss', loss_weight=2 * temperature),
        temperature=temperature))
