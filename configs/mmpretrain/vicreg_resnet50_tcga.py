# VICReg on TCGA H&E: vicreg_resnet50_srh.py's model, schedule and runtime
# on the TCGA patch bags, with VICReg's own views (Lightly's
# VICRegViewTransform at its defaults, ImageNet normalisation left to the
# data preprocessor) followed by HED stain jitter, and TCGA kNN validation.
#   tools/dist_train.sh configs/mmpretrain/vicreg_resnet50_tcga.py 8 --data-root /data/tcga
_base_ = ['vicreg_resnet50_srh.py']
data_root = '{{$HLSS_TCGA_ROOT:data/tcga}}'
view_pipeline = [dict(type='LightlyView', view='VICRegViewTransform',
                      input_size=224)]
train_pipeline = [
    dict(type='LoadH5Patch'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs', algorithm_keys={{_base_.hierarchy_keys}}),
]
train_dataloader = dict(
    dataset=dict(type='TCGADataset', data_root=data_root,
                 pipeline=train_pipeline))
# kNN validation on TCGA (as _base_/datasets/tcga_knn_eval.py): train split
# = bank, val split = queries, centre 224 px crops.
knn_test_pipeline = [
    dict(type='LoadH5Patch'),
    dict(type='CenterCropTensor', size=224),
    dict(type='PackInputs', algorithm_keys={{_base_.knn_keys}}),
]
val_dataloader = dict(
    dataset=dict(bank=dict(type='TCGADataset', data_root=data_root),
                 query=dict(type='TCGADataset', data_root=data_root),
                 pipeline=knn_test_pipeline))
test_dataloader = val_dataloader
