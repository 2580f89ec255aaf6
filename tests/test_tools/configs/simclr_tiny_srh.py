# TEST-ONLY: MMPretrain's own SimCLR with a tiny ResNet-18 on 32 px SRH views,
# so tools/train.py can be tested end to end on 2 CPU cores in seconds.
# Pass the data with --data-root (tools/misc/make_synthetic_srh.py writes some).
_base_ = [
    '../../../configs/mmpretrain/_base_/datasets/opensrh_hierarchical.py',
    '../../../configs/mmpretrain/_base_/default_runtime.py',
]
# The hook module is imported explicitly so this config does not depend on
# hlss_plugin.engine.hooks exporting it; tests.test_tools.train_probe_hooks
# (TrainProbeHook) is importable because tools/train.py puts the repository
# root on sys.path.
custom_imports = dict(
    imports=['hlss_plugin',
             'hlss_plugin.engine.hooks.hierarchical_batch_check_hook',
             'tests.test_tools.train_probe_hooks'],
    allow_failed_imports=False)

patients_per_batch = 2
slides_per_patient = 2
patches_per_slide = 2
batch_size = patients_per_batch * slides_per_patient * patches_per_slide

# Views are float tensors in [0, 1]; SelfSupDataPreprocessor computes
# (x - mean) / std on them as they are (no /255), so mean/std are on the
# [0, 1] scale too.
model = dict(
    type='SimCLR',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[0.5, 0.5, 0.5],
        std=[0.25, 0.25, 0.25],
        to_rgb=False),
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=8,
        base_channels=8,
        norm_cfg=dict(type='BN')),
    # with_avg_pool: global average pooling of the last stage, then the MLP.
    neck=dict(
        type='NonLinearNeck',
        in_channels=64,
        hid_channels=32,
        out_channels=16,
        num_layers=2,
        with_avg_pool=True,
        norm_cfg=dict(type='BN1d')),
    head=dict(
        type='ContrastiveHead',
        loss=dict(type='CrossEntropyLoss'),
        temperature=0.1))

# 32 px resized crop instead of the 224 px default, plus two cheap ops.
view_pipeline = [
    dict(
        type='SRHAugment',
        rand_prob=0.3,
        ops=[
            dict(type='random_resized_crop', size=32, scale=(0.2, 1.0)),
            dict(type='gaussian_noise', std=(0.01, 0.05)),
            dict(type='color_jitter', brightness=0.2, contrast=0.2,
                 saturation=0.2, hue=0.1),
        ])
]
train_pipeline = [
    dict(type='LoadSRHPatch'),
    dict(type='SRHThirdChannel'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs',
         algorithm_keys=['patient', 'slide', 'patient_idx', 'slide_idx']),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(patients_per_batch=patients_per_batch,
                 slides_per_patient=slides_per_patient,
                 patches_per_slide=patches_per_slide),
    dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=1, eta_min=1e-5, by_epoch=True,
         begin=1, end=2, convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=2)

default_hooks = dict(logger=dict(interval=1))
# TrainProbeHook (test-only) records what each rank trained on; the resume
# test stops a run with --cfg-options custom_hooks.2.stop_after_epoch=1.
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='HierarchicalBatchCheckHook'),
    dict(type='TrainProbeHook'),
]
