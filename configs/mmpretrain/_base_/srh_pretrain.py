# Everything but the model for the self-supervised baselines on OpenSRH, set
# as in hlss_srh.py so the baselines see the same batches, augmentations,
# schedule and runtime: 32 patients x 2 slides x 2 patches x 2 views per step
# over all GPUs (global batch), AdamW lr 1e-3, 10 % linear warm-up then
# cosine, 1000 epochs.
# No evaluation here: srh_pretrain_knn_val.py adds the hierarchical kNN
# validation (with loops that also embed MMPretrain's algorithms, which have
# no 'predict' mode); the baseline configs use that file.
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
# Shared by every baseline; each config adds its algorithm type, neck and
# head. Plain BN everywhere, necks and heads too (SyncBN needs CUDA); on GPUs
# add `--cfg-options sync_bn=torch` to synchronise it across ranks.
model = dict(
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[0.485, 0.456, 0.406],  # views are floats in [0, 1]
        std=[0.229, 0.224, 0.225],
        to_rgb=False),
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='BN'),
                  zero_init_residual=True))
