# HLSS small enough to train on 2 CPU cores in minutes (the demo's config):
# ResNet-18, 96 px views, 4 patients x 2 slides x 2 patches x 2 views; kNN
# evaluation once, after the last epoch.
_base_ = ['hlss_srh.py']
patients_per_batch = 4
model = dict(backbone=dict(depth=18), in_channels=512)
view_pipeline = [dict(type='SRHAugment', rand_prob=0.3, crop_size=96)]
train_dataloader = dict(
    batch_size=patients_per_batch * _base_.slides_per_patient *
    _base_.patches_per_slide,
    num_workers=2,
    sampler=dict(patients_per_batch=patients_per_batch),
    dataset=dict(pipeline=[
        dict(type='LoadSRHPatch'),
        dict(type='SRHThirdChannel'),
        dict(type='MultiView', num_views={{_base_.num_views}},
             transforms=[view_pipeline]),
        dict(type='PackInputs', algorithm_keys={{_base_.hierarchy_keys}}),
    ]))
max_epochs = 6
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=5, eta_min=1e-5, by_epoch=True,
         begin=1, end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
knn_test_pipeline = [
    dict(type='LoadSRHPatch'),
    dict(type='SRHThirdChannel'),
    dict(type='CenterCropTensor', size=96),
    dict(type='PackInputs', algorithm_keys={{_base_.knn_keys}}),
]
val_dataloader = dict(dataset=dict(pipeline=knn_test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=knn_test_pipeline))
default_hooks = dict(
    checkpoint=dict(interval=1, max_keep_ckpts=2, save_best=None),
    logger=dict(interval=5))
