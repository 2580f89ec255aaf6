# HLSS on OpenSRH (hlss_srh.py) set up for throughput. Same model, batches,
# augmentation set and schedule; what changes is where and how it runs:
# - DataLoader workers only decode: LoadSRHPatchRaw keeps the (2, H, W)
#   uint16 patch (no float conversion, no augmentation on the CPU);
#   pin_memory + persistent workers; the uint16 batch goes to the device.
# - SRHBatchAugmentPreprocessor builds the third channel and draws the two
#   views there, with per-sample parameters (same ops, ranges and
#   probabilities as SRHAugment in hlss_srh.py's view_pipeline).
# - bf16 autocast: AmpOptimWrapper(dtype='bfloat16') on a GPU; on a machine
#   without one, AmpFallbackOptimWrapperConstructor builds the CPU
#   equivalent (CPUAutocastOptimWrapper) and logs it.
# - channels-last inputs and weights (ChannelsLastHook); cudnn benchmark.
# - torch.compile: off; `--cfg-options compile=True` compiles train_step
#   with mmengine's Runner switch (the first iterations are slow).
#   tools/dist_train.sh configs/mmpretrain/hlss_srh_fast.py 8 \
#       --data-root /data/opensrh
_base_ = ['hlss_srh.py']
channels_last = True
model = dict(
    data_preprocessor=dict(
        _delete_=True,
        type='SRHBatchAugmentPreprocessor',
        # the per-view augmentation of hlss_srh.py's view_pipeline
        augment=dict(type='SRHAugment', rand_prob=0.3),
        num_views={{_base_.num_views}},
        third_channel=True,  # SRHThirdChannel's formula, on the device
        mean=[0.485, 0.456, 0.406],
        std=[0.229, 0.224, 0.225],
        channels_last=channels_last,
        # apply_mode='dense' (default 'gather') computes each fired op on
        # the whole batch and blends with torch.where: no host-device syncs
        # from boolean masking, ~1/rand_prob more op work. Compare with
        # tools/benchmarks/benchmark_throughput.py --augment-mode on the GPU
        # first.
        non_blocking=True))
train_dataloader = dict(
    pin_memory=True,
    persistent_workers=True,
    dataset=dict(pipeline=[
        dict(type='LoadSRHPatchRaw'),
        dict(type='PackInputs', algorithm_keys={{_base_.hierarchy_keys}}),
    ]))
# kNN evaluation: uint16 centre crops; the preprocessor converts and
# normalises them (no augmentation outside training).
knn_test_pipeline = [
    dict(type='LoadSRHPatchRaw'),
    dict(type='CenterCropTensor', size=224),
    dict(type='PackInputs', algorithm_keys={{_base_.knn_keys}}),
]
val_dataloader = dict(pin_memory=True,
                      dataset=dict(pipeline=knn_test_pipeline))
test_dataloader = dict(pin_memory=True,
                       dataset=dict(pipeline=knn_test_pipeline))
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    constructor='AmpFallbackOptimWrapperConstructor')
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='HierarchicalBatchCheckHook'),
    dict(type='ChannelsLastHook', enabled=channels_last),
]
env_cfg = dict(cudnn_benchmark=True)
compile = False
