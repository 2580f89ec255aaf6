# HiDisc (Jiang et al., CVPR 2023, https://arxiv.org/abs/2303.01605) on
# OpenSRH: HLSS's hierarchical visual contrast without text. ResNet-50,
# global average pooling, one shared MLP projector (2048 -> 2048, BN + ReLU
# -> 128, L2-normalised) and the sum of the patch, slide and patient SupCon
# losses (temperature 0.07, weight 1 each; positives: views of one patch /
# patches of one slide / patches of one patient, ids from the data samples).
# Data, schedule, runtime and kNN validation as hlss_srh.py.
#   tools/dist_train.sh configs/mmpretrain/hidisc_resnet50_srh.py 8 --data-root /data/opensrh
_base_ = ['_base_/srh_pretrain_knn_val.py']
model = dict(
    type='HiDisc',
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='HierarchicalContrastiveHead', in_channels=2048,
        hid_channels=2048, out_channels=128,
        losses=dict(
            patch=dict(type='HierarchicalSupConLoss', temperature=0.07,
                       gather_distributed=True, loss_weight=1.0),
            slide=dict(type='HierarchicalSupConLoss', temperature=0.07,
                       gather_distributed=True, loss_weight=1.0),
            patient=dict(type='HierarchicalSupConLoss', temperature=0.07,
                         gather_distributed=True, loss_weight=1.0))))
