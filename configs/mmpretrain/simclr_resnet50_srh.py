# SimCLR (Chen et al., 2020, https://arxiv.org/abs/2002.05709) on OpenSRH:
# NT-Xent over the two views of each patch, ResNet-50, 2-layer MLP projector
# to 128-d, temperature 0.1. Data, schedule and runtime as hlss_srh.py; the
# optimizer is our AdamW instead of the paper's LARS.
#   tools/dist_train.sh configs/mmpretrain/simclr_resnet50_srh.py 8 --data-root /data/opensrh
_base_ = ['_base_/srh_pretrain_knn_val.py']  # + kNN validation
model = dict(
    type='SimCLR',
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=2048,
              out_channels=128, num_layers=2, with_avg_pool=True,
              norm_cfg=dict(type='BN1d')),
    head=dict(type='ContrastiveHead', loss=dict(type='CrossEntropyLoss'),
              temperature=0.1))
