# Linear probe: MMPretrain's ImageClassifier with a frozen ResNet-50 taken
# from an HLSS (or any MMPretrain self-supervised) checkpoint, trained on
# OpenSRH patch labels and evaluated at the patch, slide and patient level.
#   HLSS_BACKBONE_CKPT=work_dirs/hlss_srh/epoch_1000.pth \
#   python tools/train.py configs/mmpretrain/linear_probe_resnet50_srh.py --data-root DIR
_base_ = ['_base_/default_runtime.py']
data_root = '{{$HLSS_SRH_ROOT:data/synthetic_srh}}'
backbone_checkpoint = '{{$HLSS_BACKBONE_CKPT:checkpoints/hlss_backbone.pth}}'
num_classes = 7  # OpenSRH: hgg, lgg, mening, metast, normal, pitui, schwan

model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        mean=[0.485, 0.456, 0.406],  # views are floats in [0, 1]
        std=[0.229, 0.224, 0.225],
        to_rgb=False),
    backbone=dict(
        type='ResNet', depth=50, frozen_stages=4, norm_eval=True,
        norm_cfg=dict(type='BN'),
        # prefix detected: backbone. (HLSS, HiDisc, SimCLR, ...),
        # algorithm.backbone. (HLSSAuxWrapper), module.* or a plain dict
        init_cfg=dict(type='HLSSPretrained', checkpoint=backbone_checkpoint)),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=num_classes,
              in_channels=2048, loss=dict(type='CrossEntropyLoss'),
              topk=(1, )))

hierarchy_keys = ['patient', 'slide', 'patient_idx', 'slide_idx']
train_pipeline = [
    dict(type='LoadSRHPatch'),
    dict(type='SRHThirdChannel'),
    dict(type='SRHAugment', rand_prob=1.0,
         ops=[dict(type='random_resized_crop', size=224)]),
    dict(type='PackInputs', algorithm_keys=hierarchy_keys),
]
test_pipeline = [
    dict(type='LoadSRHPatch'),
    dict(type='SRHThirdChannel'),
    dict(type='CenterCropTensor', size=224),
    dict(type='PackInputs', algorithm_keys=hierarchy_keys),
]
train_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='OpenSRHDataset', data_root=data_root, split='train',
                 on_bad_patch='skip', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(type='OpenSRHDataset', data_root=data_root, split='val',
                 pipeline=test_pipeline))
val_evaluator = dict(type='HierarchicalClassificationMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 30
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.0))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs,
                        by_epoch=True, begin=0, end=max_epochs)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=5)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=5, save_best='patient/acc',
                                     rule='greater'))
