# HLSS on TCGA H&E patch bags: the OpenSRH paper setting with the H&E
# attribute lists and the TCGA data pipeline.
#   tools/dist_train.sh configs/mmpretrain/hlss_tcga.py 8 --data-root /data/tcga
_base_ = [
    '_base_/models/hlss_resnet50.py',
    '_base_/datasets/tcga_hierarchical.py',
    '_base_/schedules/adamw_cosine_warmup.py',
    '_base_/default_runtime.py',
]
patients_per_batch = 32
model = dict(heads=dict(patch=dict(attributes='he'),
                        slide=dict(attributes='he'),
                        patient=dict(attributes='he')))
train_dataloader = dict(
    batch_size=patients_per_batch * 2 * 2,
    num_workers=8,
    sampler=dict(patients_per_batch=patients_per_batch))
default_hooks = dict(checkpoint=dict(interval=50))
