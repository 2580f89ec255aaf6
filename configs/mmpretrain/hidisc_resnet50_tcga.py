# HiDisc on TCGA H&E: hidisc_resnet50_srh.py's model, schedule and runtime
# on the TCGA patch bags. HiDisc has no Lightly transform, so its views are
# HLSS's H&E views (HEView, as _base_/datasets/tcga_hierarchical.py: Lightly's
# crop, flips, rotation, colour jitter and blur, then HED stain jitter); TCGA
# kNN validation.
#   tools/dist_train.sh configs/mmpretrain/hidisc_resnet50_tcga.py 8 --data-root /data/tcga
_base_ = ['hidisc_resnet50_srh.py']
data_root = '{{$HLSS_TCGA_ROOT:data/tcga}}'
view_pipeline = [dict(type='HEView', crop_size=224)]
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
