# VICReg (Bardes et al., ICLR 2022, https://arxiv.org/abs/2105.04906) on
# OpenSRH, through MMPretrain's generic two-view flow: the `BarlowTwins`
# algorithm type only runs backbone -> neck on each view and calls
# head.loss(z1, z2), so VICRegHead (lightly.loss.VICRegLoss: invariance 25,
# variance 25, covariance 1; variance and covariance over the batch gathered
# from all ranks) turns it into VICReg.
# Expander: Linear-BN-ReLU-Linear-BN-ReLU-Linear (NonLinearNeck, plain BN1d)
# at 2048-2048-2048 instead of the paper's 8192-8192-8192: 12.6M instead of
# 151M parameters and 2048^2 instead of 8192^2 covariance entries per view,
# while a step holds only 128 patches (over all GPUs), far fewer
# than 8192 dimensions to decorrelate. The paper reports higher accuracy
# with wider expanders, so this is a cost trade-off, not the best setting.
# Data, schedule and runtime as hlss_srh.py; the optimizer is our AdamW
# instead of the paper's LARS.
#   tools/dist_train.sh configs/mmpretrain/vicreg_resnet50_srh.py 8 --data-root /data/opensrh
_base_ = ['_base_/srh_pretrain_knn_val.py']  # + kNN validation
model = dict(
    type='BarlowTwins',
    neck=dict(type='NonLinearNeck', in_channels=2048, hid_channels=2048,
              out_channels=2048, num_layers=3, with_last_bn=False,
              with_avg_pool=True, norm_cfg=dict(type='BN1d')),
    head=dict(type='VICRegHead',
              loss=dict(lambda_param=25.0, mu_param=25.0, nu_param=1.0,
                        gather_distributed=True)))
