# MoCo v3 + HLSS: mocov3_resnet50_srh.py wrapped in HLSSAuxWrapper, which adds
# HLSS's patch/slide/patient text-aligned heads (HVC + HA) on the backbone
# features MoCo v3 already computes (no extra backbone pass; the momentum
# encoder is not hooked); the loss is MoCo v3's InfoNCE plus every level's
# HLSS terms.
# The wrapper can predict; the kNN validation every 50 epochs comes with
# mocov3_resnet50_srh.py (its loops run the wrapper's predict mode).
#   tools/dist_train.sh configs/mmpretrain/mocov3_hlss_srh.py 8 --data-root /data/opensrh
_base_ = ['mocov3_resnet50_srh.py', '_base_/models/hlss_level_heads.py']
model = dict(_delete_=True, type='HLSSAuxWrapper', in_channels=2048,
             algorithm={{_base_.model}}, heads={{_base_.hlss_heads}},
             text_tower={{_base_.hlss_text_tower}})
