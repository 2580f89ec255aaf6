# kNN evaluation on a CSV-manifest cohort (manifest_hierarchical.py) in one
# val/test loop, as opensrh_knn_eval.py does for OpenSRH: the rows with
# split "train" are the labelled bank, those with split "val" the queries.
# Every name here starts with knn_ or is a loop setting, so this file
# combines with manifest_hierarchical.py in one _base_ list; the manifest
# and data root come from the same environment variables (HLSS_MANIFEST,
# HLSS_MANIFEST_ROOT) or --data-root.
_base_ = ['./opensrh_knn_eval.py']
# Deterministic views: the centre 224 px of each patch (the training view
# size); configs training at another size override the pipeline.
knn_test_pipeline = [
    dict(type='LoadPatchImage'),
    dict(type='CenterCropTensor', size=224),
    dict(type='PackInputs', algorithm_keys={{_base_.knn_keys}}),
]
val_dataloader = dict(
    dataset=dict(
        # The bank reads the train rows with the training dataset's
        # bad-patch policy ('skip'); queries stop at a bad patch.
        bank=dict(type='HierarchicalManifestDataset',
                  manifest='{{$HLSS_MANIFEST:manifest.csv}}',
                  data_root='{{$HLSS_MANIFEST_ROOT:data/cohort}}',
                  split='train',
                  on_bad_patch='skip'),
        query=dict(type='HierarchicalManifestDataset',
                   manifest='{{$HLSS_MANIFEST:manifest.csv}}',
                   data_root='{{$HLSS_MANIFEST_ROOT:data/cohort}}',
                   split='val'),
        pipeline=knn_test_pipeline))
test_dataloader = val_dataloader
