# HLSS on your own H&E cohort, listed in a CSV manifest: hlss_tcga.py's
# model, schedule and runtime (H&E attribute lists) on
# HierarchicalManifestDataset, kNN evaluation (train rows = bank, val rows =
# queries) every 50 epochs. The CSV (columns path,patient,slide,label,split)
# sits in the data root; patches are PNG, JPEG or RGB TIFF files.
#   tools/dist_train.sh configs/mmpretrain/hlss_manifest_cohort.py 8 \
#       --data-root /data/my_cohort     # reads /data/my_cohort/manifest.csv
# Another CSV name: HLSS_MANIFEST=cohort_v2.csv tools/dist_train.sh ...
_base_ = [
    '_base_/models/hlss_resnet50_he.py',
    '_base_/datasets/manifest_hierarchical.py',
    '_base_/datasets/manifest_knn_eval.py',
    '_base_/schedules/adamw_cosine_warmup.py',
    '_base_/default_runtime.py',
]
patients_per_batch = 32  # the paper's global batch, as for OpenSRH
batch_size = (patients_per_batch * _base_.slides_per_patient *
              _base_.patches_per_slide)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    sampler=dict(patients_per_batch=patients_per_batch))
train_cfg = dict(val_interval=50)  # kNN evaluation every 50 epochs
default_hooks = dict(checkpoint=dict(interval=50, save_best='patient/acc',
                                     rule='greater'))
