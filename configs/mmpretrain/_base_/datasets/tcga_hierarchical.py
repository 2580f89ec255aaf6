# TCGA H&E patches from per-slide HDF5 bags in the same hierarchical batches
# as OpenSRH (P patients x S slides x K patches x V views); only the dataset
# and the loading step differ.
# Data root: set HLSS_TCGA_ROOT, or pass --data-root to the tools.
_base_ = ['./opensrh_hierarchical.py']
data_root = '{{$HLSS_TCGA_ROOT:data/tcga}}'
train_dataloader = dict(
    dataset=dict(
        type='TCGADataset',
        data_root=data_root,
        pipeline=[
            dict(type='LoadH5Patch'),
            dict(type='MultiView', num_views={{_base_.num_views}},
                 transforms=[{{_base_.view_pipeline}}]),
            dict(type='PackInputs', algorithm_keys={{_base_.hierarchy_keys}}),
        ]))
