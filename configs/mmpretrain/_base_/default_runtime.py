# Runtime shared by every hlss_plugin config.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['hlss_plugin'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)
# PlainCheckpointHook keeps checkpoints loadable with
# torch.load(weights_only=True) (torch>=2.6), so `--resume` works without
# allow-listing anything. HierarchicalBatchCheckHook stops before the first
# iteration when the batch size is not the sampler's P x S x K (harmless with
# other samplers).
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='HierarchicalBatchCheckHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_processor = dict(window_size=10)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
