# HLSS on TCGA H&E patch bags: the OpenSRH paper setting with the H&E
# attribute lists, the TCGA data pipeline (HEView views with HED stain
# jitter) and kNN evaluation (train split = bank, val split = queries)
# every 50 epochs.
#   tools/dist_train.sh configs/mmpretrain/hlss_tcga.py 8 --data-root /data/tcga
_base_ = [
    '_base_/models/hlss_resnet50_he.py',
    '_base_/datasets/tcga_hierarchical.py',
    '_base_/datasets/tcga_knn_eval.py',
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
