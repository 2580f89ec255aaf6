# Everything but the algorithm for the self-supervised baselines on OpenSRH,
# set as in hlss_srh.py so the baselines see the same batches, augmentations,
# schedule and runtime: the paper's batch (datasets/opensrh_paper_batch.py),
# AdamW lr 1e-3, 10 % linear warm-up then cosine, 1000 epochs, and the same
# ResNet-50 and data preprocessor (models/resnet50_selfsup.py); each config
# adds its algorithm type, neck and head.
# No evaluation here: srh_pretrain_knn_val.py adds the hierarchical kNN
# validation (with loops that also embed MMPretrain's algorithms, which have
# no 'predict' mode); the baseline configs use that file.
_base_ = [
    'models/resnet50_selfsup.py',
    'datasets/opensrh_paper_batch.py',
    'schedules/adamw_cosine_warmup.py',
    'default_runtime.py',
]
default_hooks = dict(checkpoint=dict(interval=50))
