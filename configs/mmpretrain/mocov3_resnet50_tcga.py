# MoCo v3 on TCGA H&E: mocov3_resnet50_srh.py's model, schedule and runtime
# on the TCGA patch bags. MoCo v3 uses BYOL's two asymmetric augmentations
# (Chen et al., 2021, Sec. 4): Lightly's BYOLView1Transform and
# BYOLView2Transform (ImageNet normalisation left to the data
# preprocessor), each followed by HED stain jitter; TCGA kNN validation.
#   tools/dist_train.sh configs/mmpretrain/mocov3_resnet50_tcga.py 8 --data-root /data/tcga
_base_ = ['mocov3_resnet50_srh.py']
data_root = '{{$HLSS_TCGA_ROOT:data/tcga}}'
view_pipeline = [dict(type='LightlyView', view='BYOLView1Transform',
                      input_size=224)]
view2_pipeline = [dict(type='LightlyView', view='BYOLView2Transform',
                       input_size=224)]
train_pipeline = [
    dict(type='LoadH5Patch'),
    dict(type='MultiView', num_views=[1, 1],
         transforms=[view_pipeline, view2_pipeline]),
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
