# OpenSRH patches in hierarchical batches: P patients x S slides x K patches,
# each patch turned into V augmented views. P and the batch size are global
# (batch_scope='global'): on N GPUs each draws P / N patients, which
# HierarchicalBatchSampler turns into per-GPU batches of P / N x S x K.
# batch_scope='per_gpu' draws P patients on every GPU instead.
# Data root: set HLSS_SRH_ROOT, or pass --data-root to the tools.
data_root = '{{$HLSS_SRH_ROOT:data/synthetic_srh}}'

patients_per_batch = 4
slides_per_patient = 2
patches_per_slide = 2
num_views = 2
batch_size = patients_per_batch * slides_per_patient * patches_per_slide
batch_scope = 'global'

hierarchy_keys = ['patient', 'slide', 'patient_idx', 'slide_idx']
# SRHAugment's default ops: 224 px random resized crop first, then flips and
# the strong ops (noise, jitter, autocontrast, solarize, sharpness, blur,
# erasing, affine), each with probability rand_prob.
view_pipeline = [dict(type='SRHAugment', rand_prob=0.3)]
train_pipeline = [
    dict(type='LoadSRHPatch'),
    dict(type='SRHThirdChannel'),
    dict(type='MultiView', num_views=num_views, transforms=[view_pipeline]),
    dict(type='PackInputs', algorithm_keys=hierarchy_keys),
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(
        type='HierarchicalSampler',
        patients_per_batch=patients_per_batch,
        slides_per_patient=slides_per_patient,
        patches_per_slide=patches_per_slide,
        batch_scope=batch_scope),
    batch_sampler=dict(type='HierarchicalBatchSampler'),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='OpenSRHDataset',
        data_root=data_root,
        split='train',
        on_bad_patch='skip',
        pipeline=train_pipeline))
