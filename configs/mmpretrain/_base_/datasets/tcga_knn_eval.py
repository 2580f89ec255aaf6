# kNN evaluation on TCGA in one val/test loop, as opensrh_knn_eval.py does
# for OpenSRH: the train split of meta/train_val_split.json is the labelled
# bank, the val split the queries; HierarchicalKNNMetric reports patch-,
# slide- and patient-level accuracy. Every name here starts with knn_ or is
# a loop setting, so this file combines with tcga_hierarchical.py in one
# _base_ list.
# Data root: set HLSS_TCGA_ROOT, or pass --data-root to the tools.
_base_ = ['./opensrh_knn_eval.py']
# Deterministic views: the centre 224 px of each patch (the training view
# size); configs training at another size override the pipeline.
knn_test_pipeline = [
    dict(type='LoadH5Patch'),
    dict(type='CenterCropTensor', size=224),
    dict(type='PackInputs', algorithm_keys={{_base_.knn_keys}}),
]
val_dataloader = dict(
    dataset=dict(
        # The bank reads the train split with the training dataset's
        # bad-patch policy ('skip'); queries stop at a bad patch.
        bank=dict(type='TCGADataset',
                  data_root='{{$HLSS_TCGA_ROOT:data/tcga}}',
                  split='train',
                  on_bad_patch='skip'),
        query=dict(type='TCGADataset',
                   data_root='{{$HLSS_TCGA_ROOT:data/tcga}}',
                   split='val'),
        pipeline=knn_test_pipeline))
test_dataloader = val_dataloader
