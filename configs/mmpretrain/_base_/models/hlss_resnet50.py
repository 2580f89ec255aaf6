# HLSS with an MMPretrain ResNet-50 visual tower (resnet50_selfsup.py) and
# the embedded MiniLM text tower. Each level has its own text-initialised
# head and losses (hlss_level_heads.py).
_base_ = ['resnet50_selfsup.py', 'hlss_level_heads.py']
model = dict(
    type='HLSS',
    neck=dict(type='GlobalAveragePooling'),
    in_channels=2048,
    text_tower={{_base_.hlss_text_tower}},
    heads={{_base_.hlss_heads}})
