# SimSiam (Chen & He, 2021, https://arxiv.org/abs/2011.10566) on OpenSRH:
# ResNet-50, 3-layer 2048-d projector, 512-d bottleneck predictor,
# stop-gradient symmetrised cosine loss. As in the paper the predictor keeps
# a fixed learning rate: its parameters form 'fix_lr' groups that
# SimSiamHook resets to `lr` every iteration, so keep `lr` equal to the
# optimizer's lr. Data, schedule and runtime as hlss_srh.py; the optimizer
# is our AdamW instead of the paper's SGD.
#   tools/dist_train.sh configs/mmpretrain/simsiam_resnet50_srh.py 8 --data-root /data/opensrh
_base_ = ['_base_/srh_pretrain_knn_val.py']  # + kNN validation
lr = 1e-3  # the lr of _base_/schedules/adamw_cosine_warmup.py
model = dict(
    type='SimSiam',
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=2048,
              out_channels=2048, num_layers=3, with_last_bn_affine=False,
              with_avg_pool=True, norm_cfg=dict(type='BN1d')),
    head=dict(
        type='LatentPredictHead',
        loss=dict(type='CosineSimilarityLoss'),
        predictor=dict(type='NonLinearNeck', in_channels=2048,
                       hid_channels=512, out_channels=2048,
                       with_avg_pool=False, with_last_bn=False,
                       with_last_bias=True, norm_cfg=dict(type='BN1d'))))
optim_wrapper = dict(
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(custom_keys={'predictor': dict(fix_lr=True)}))
# A list replaces the runtime's custom_hooks, so its two hooks are repeated.
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='HierarchicalBatchCheckHook'),
    dict(type='SimSiamHook', priority='HIGH', fix_pred_lr=True, lr=lr),
]
