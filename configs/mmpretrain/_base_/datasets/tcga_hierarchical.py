# TCGA H&E patches from per-slide HDF5 bags in the same hierarchical batches
# as OpenSRH (P patients x S slides x K patches x V views); the dataset, the
# loading step and the views differ. Each view is HEView: random resized
# crop, flips, 90-degree rotation, mild colour jitter and Gaussian blur
# (Lightly's ops), then HED stain jitter (Tellez et al.).
# Data root: set HLSS_TCGA_ROOT, or pass --data-root to the tools.
_base_ = ['./opensrh_hierarchical.py']
data_root = '{{$HLSS_TCGA_ROOT:data/tcga}}'
view_pipeline = [dict(type='HEView', crop_size=224)]
train_pipeline = [
    dict(type='LoadH5Patch'),
    dict(type='MultiView', num_views={{_base_.num_views}},
         transforms=[view_pipeline]),
    dict(type='PackInputs', algorithm_keys={{_base_.hierarchy_keys}}),
]
train_dataloader = dict(
    dataset=dict(
        type='TCGADataset',
        data_root=data_root,
        pipeline=train_pipeline))
