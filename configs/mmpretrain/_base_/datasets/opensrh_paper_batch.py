# OpenSRH in the paper's hierarchical batches: 32 patients x 2 slides x
# 2 patches x 2 views per step over all GPUs (batch_scope='global': each of
# N GPUs draws 32 / N patients). S, K and V are opensrh_hierarchical.py's;
# every full-size SRH config (hlss_srh.py, hlss_clip_rn50_srh.py and the
# baselines' srh_pretrain.py) takes its batch from here.
_base_ = ['opensrh_hierarchical.py']
patients_per_batch = 32
batch_size = (patients_per_batch * _base_.slides_per_patient *
              _base_.patches_per_slide)
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    sampler=dict(patients_per_batch=patients_per_batch))
