# The paper's HLSS on OpenSRH (Watawana et al., MICCAI 2024), point by point
# as the published code trains it (docs/reproduction.md has the table):
# CLIP RN50 image tower + CLIP text tower
# (tools/model_converters/convert_clip_rn50.py -> HLSS_CLIP_DIR; set but
# empty is an error), bridge-free 128-attribute heads per level, HVC (SupCon,
# T = 0.07) per level, HA as published, the published augmentation,
# class-balanced patients, 32 patients x 2 slides x 2 patches x 2 views per
# step over all GPUs, AdamW lr 1e-3, 10 % linear warm-up + cosine over 40,000
# epochs (per iteration), kNN evaluation as published every 400 epochs.
#   python tools/model_converters/convert_clip_rn50.py rn50_cc12m.pt \
#       checkpoints/clip_rn50
#   export HLSS_CLIP_DIR=checkpoints/clip_rn50
#   tools/dist_train.sh configs/mmpretrain/hlss_clip_rn50_srh.py 8 \
#       --data-root /data/opensrh
_base_ = [
    '_base_/models/hlss_clip_rn50.py',
    '_base_/datasets/opensrh_published.py',
    '_base_/schedules/adamw_cosine_warmup.py',
    '_base_/default_runtime.py',
]
max_epochs = 40000
warmup_epochs = 4000
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=max_epochs - warmup_epochs,
         eta_min=0.0, by_epoch=True, begin=warmup_epochs, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=400)
default_hooks = dict(checkpoint=dict(interval=400, save_best='patient/acc',
                                     rule='greater'))
