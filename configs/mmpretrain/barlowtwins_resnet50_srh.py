# Barlow Twins (Zbontar et al., 2021, https://arxiv.org/abs/2103.03230) on
# OpenSRH: ResNet-50, 3-layer 8192-d projector, cross-correlation loss
# (LatentCrossCorrelationHead; its affine-free BatchNorm1d all-reduces the
# correlation matrix over ranks). Data, schedule and runtime as
# hlss_srh.py; the optimizer is our AdamW instead of the paper's LARS.
#   tools/dist_train.sh configs/mmpretrain/barlowtwins_resnet50_srh.py 8 --data-root /data/opensrh
_base_ = ['_base_/srh_pretrain_knn_val.py']  # + kNN validation
model = dict(
    type='BarlowTwins',
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=8192,
              out_channels=8192, num_layers=3, with_last_bn=False,
              with_last_bn_affine=False, with_avg_pool=True,
              norm_cfg=dict(type='BN1d'),
              init_cfg=dict(type='Kaiming', distribution='uniform',
                            layer=['Linear'])),
    head=dict(type='LatentCrossCorrelationHead', in_channels=8192,
              loss=dict(type='CrossCorrelationLoss')))
