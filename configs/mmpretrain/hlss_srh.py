# HLSS on OpenSRH, paper setting: 32 patients x 2 slides x 2 patches x 2 views
# per step over all GPUs (32 / N patients on each of N GPUs), AdamW lr 1e-3,
# cosine with 10 % warm-up, 128-d output per level;
# kNN evaluation (train split = bank, val split = queries) every 50 epochs.
#   tools/dist_train.sh configs/mmpretrain/hlss_srh.py 8 --data-root /data/opensrh
_base_ = [
    '_base_/models/hlss_resnet50.py',
    '_base_/datasets/opensrh_paper_batch.py',
    '_base_/datasets/opensrh_knn_eval.py',
    '_base_/schedules/adamw_cosine_warmup.py',
    '_base_/default_runtime.py',
]
train_cfg = dict(val_interval=50)  # kNN evaluation every 50 epochs
default_hooks = dict(checkpoint=dict(interval=50, save_best='patient/acc',
                                     rule='greater'))
