# BYOL (Grill et al., 2020, https://arxiv.org/abs/2006.07733) on OpenSRH:
# ResNet-50 online network with a 4096 -> 256 projector and predictor,
# a target network (CosineEMA of backbone + neck, updated inside BYOL.loss,
# so no hook; base_momentum 0.004 = tau 0.996, the 1000-epoch setting) and a
# symmetrised cosine loss. Data, schedule and runtime as hlss_srh.py; the
# optimizer is our AdamW instead of the paper's LARS.
#   tools/dist_train.sh configs/mmpretrain/byol_resnet50_srh.py 8 --data-root /data/opensrh
_base_ = ['_base_/srh_pretrain_knn_val.py']  # + kNN validation
model = dict(
    type='BYOL',
    base_momentum=0.004,
    backbone=dict(zero_init_residual=False),
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=4096,
              out_channels=256, num_layers=2, with_bias=True,
              with_last_bn=False, with_avg_pool=True,
              norm_cfg=dict(type='BN1d')),
    head=dict(
        type='LatentPredictHead',
        predictor=dict(type='NonLinearNeck', in_channels=256,
                       hid_channels=4096, out_channels=256, num_layers=2,
                       with_bias=True, with_last_bn=False,
                       with_avg_pool=False, norm_cfg=dict(type='BN1d')),
        loss=dict(type='CosineSimilarityLoss')))
