# HLSS's per-level text-aligned heads (HVC + HA each) and the frozen text
# tower, shared by HLSS (hlss_resnet50.py) and by HLSSAuxWrapper, which adds
# them to a baseline algorithm (simclr_hlss_srh.py, mocov3_hlss_srh.py,
# byol_hlss_srh.py). Every name starts with hlss_, so this file combines with
# any baseline config in one _base_ list; configs take what they need with
# {{_base_.hlss_heads}} and {{_base_.hlss_text_tower}}.
hlss_hvc = dict(type='HierarchicalSupConLoss', temperature=0.07,
                gather_distributed=True, loss_weight=1.0)
hlss_ha = dict(type='HierarchicalAlignmentLoss', temperature=0.1,
               detach=False, loss_weight=1.0)
hlss_head = dict(type='HierarchicalTextAlignedHead', attributes='srh',
                 num_outputs=128, trainable=True, bridge_hidden=2048,
                 hvc_loss=hlss_hvc, ha_loss=hlss_ha)
# HVC and/or HA per level: set a level's hvc_loss or ha_loss to None to drop
# that term, e.g. patch=dict(hlss_head, hvc_loss=None)
hlss_heads = dict(patch=hlss_head, slide=hlss_head, patient=hlss_head)
hlss_text_tower = dict(type='HFSentenceTextTower',
                       cache_dir='.cache/hlss_text')
