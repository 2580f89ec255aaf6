# Runtime shared by every hlss_plugin config.
default_scope = 'mmpretrain'
custom_imports = dict(imports=['hlss_plugin'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # Under DDP, BatchNorm running stats are averaged over the ranks before
    # each checkpoint and validation, so validation evaluates exactly the
    # weights and buffers that are saved (a no-op on one process).
    sync_buffers=dict(type='EvalBufferSyncHook'),
    # Before the first iteration: builds and checks what validation / test
    # need (non-empty bank and query, k vs bank size, patch size vs every
    # crop, one on_bad_patch policy per split).
    preflight=dict(type='PreflightHook'),
)
# (Both are default_hooks, not custom_hooks, so configs that replace the
# custom_hooks list keep them; turn one off with e.g.
# --cfg-options default_hooks.preflight.enabled=False.)
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
