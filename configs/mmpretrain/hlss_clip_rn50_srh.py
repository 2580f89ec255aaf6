# HLSS on OpenSRH initialised from CLIP ResNet-50 (OpenAI / open_clip RN50,
# QuickGELU), the paper's setting: CLIP's image tower (attention-pooled,
# 1024-d) is trained; CLIP's frozen text tower embeds the attributes.
# Everything else as hlss_srh.py (32 x 2 x 2 x 2 per GPU, AdamW, cosine).
# One setting: the folder written by the converter, from HLSS_CLIP_DIR.
#   python tools/convert_clip_rn50.py RN50.pt checkpoints/clip_rn50
#   export HLSS_CLIP_DIR=checkpoints/clip_rn50
#   tools/dist_train.sh configs/mmpretrain/hlss_clip_rn50_srh.py 8 \
#       --data-root /data/opensrh
# Without the variable: --cfg-options model.backbone.init_cfg.checkpoint=\
#   DIR/visual.pth model.text_tower.model_path=DIR/text
# For RN101 / RN50x4 copy the backbone arguments from DIR/visual_config.json
# and set in_channels to its output_dim.
_base_ = ['hlss_srh.py']
clip_dir = '{{$HLSS_CLIP_DIR:checkpoints/clip_rn50}}'
model = dict(
    data_preprocessor=dict(  # CLIP's normalisation (views in [0, 1])
        mean=[0.48145466, 0.4578275, 0.40821073],
        std=[0.26862954, 0.26130258, 0.27577711]),
    backbone=dict(
        _delete_=True,
        type='CLIPResNet',
        layers=(3, 4, 6, 3),
        width=64,
        heads=32,
        output_dim=1024,
        image_size=224,
        init_cfg=dict(type='Pretrained', checkpoint=clip_dir + '/visual.pth')),
    neck=dict(_delete_=True, type='IdentityNeck'),  # the pool is built in
    in_channels=1024,
    text_tower=dict(
        _delete_=True,
        type='HFCLIPTextTower',
        model_path=clip_dir + '/text',
        cache_dir='.cache/hlss_text'))
