# HLSS with an MMPretrain ResNet-50 visual tower and the embedded MiniLM text
# tower. Each level has its own text-initialised head and losses.
hvc = dict(type='HierarchicalSupConLoss', temperature=0.07,
           gather_distributed=True, loss_weight=1.0)
ha = dict(type='HierarchicalAlignmentLoss', temperature=0.1, detach=False,
          loss_weight=1.0)
level_head = dict(type='HierarchicalTextAlignedHead', attributes='srh',
                  num_outputs=128, trainable=True, bridge_hidden=2048,
                  hvc_loss=hvc, ha_loss=ha)
model = dict(
    type='HLSS',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[0.485, 0.456, 0.406],  # views are floats in [0, 1]
        std=[0.229, 0.224, 0.225],
        to_rgb=False),
    backbone=dict(type='ResNet', depth=50, norm_cfg=dict(type='BN'),
                  zero_init_residual=True),
    neck=dict(type='GlobalAveragePooling'),
    in_channels=2048,
    text_tower=dict(type='HFSentenceTextTower', cache_dir='.cache/hlss_text'),
    heads=dict(patch=level_head, slide=level_head, patient=level_head))
