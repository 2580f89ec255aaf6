# Everything but the model for the self-supervised baselines on OpenSRH, set
# as in hlss_srh.py so the baselines see the same batches, augmentations,
# schedule and runtime: 32 patients x 2 slides x 2 patches x 2 views per GPU,
# AdamW lr 1e-3, 10 % linear warm-up then cosine, 1000 epochs.
# The kNN evaluation (opensrh_knn_eval.py) is left out: MMPretrain's
# self-supervised algorithms have no 'predict' mode, so the val loop would
# stop the run at its first evaluation.
_base_ = [
    'datasets/opensrh_hierarchical.py',
    'schedules/adamw_cosine_warmup.py',
    'default_runtime.py',
]
patients_per_batch = 32
train_dataloader = dict(
    batch_size=patients_per_batch * 2 * 2,
    num_workers=8,
    sampler=dict(patients_per_batch=patients_per_batch))
default_hooks = dict(checkpoint=dict(interval=50))
