# kNN evaluation on OpenSRH in one val/test loop: the train split is the
# labelled bank, the val split the queries; HierarchicalKNNMetric reports
# patch-, slide- and patient-level accuracy (patch/acc, slide/mca, ...).
# Data root: set HLSS_SRH_ROOT, or pass --data-root to the tools (it replaces
# the nested data_root entries below too). Every name here starts with knn_
# or is a loop setting, so this file combines with
# opensrh_hierarchical.py in one _base_ list.
knn_keys = ['patient', 'slide', 'patient_idx', 'slide_idx', 'knn_role',
            'knn_id']
# Deterministic views: the centre crop of each patch (224 px, the training
# view size); configs training at another size override the pipeline.
knn_test_pipeline = [
    dict(type='LoadSRHPatch'),
    dict(type='SRHThirdChannel'),
    dict(type='CenterCropTensor', size=224),
    dict(type='PackInputs', algorithm_keys=knn_keys),
]
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='HierarchicalKNNDataset',
        # The bank reads the train split, so it has the training dataset's
        # bad-patch policy (opensrh_hierarchical.py: 'skip'; a bad patch is
        # left out of the bank). Queries stop at a bad patch ('raise').
        bank=dict(type='OpenSRHDataset',
                  data_root='{{$HLSS_SRH_ROOT:data/synthetic_srh}}',
                  split='train',
                  on_bad_patch='skip'),
        query=dict(type='OpenSRHDataset',
                   data_root='{{$HLSS_SRH_ROOT:data/synthetic_srh}}',
                   split='val'),
        pipeline=knn_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='HierarchicalKNNMetric', k=200, temperature=0.07,
                     topk=(1, 2, 3))
test_evaluator = val_evaluator
val_cfg = dict()
test_cfg = dict()
