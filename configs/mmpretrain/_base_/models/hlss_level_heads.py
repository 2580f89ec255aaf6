# HLSS's per-level text-aligned heads (HVC + HA each) and the frozen text
# tower, shared by HLSS (hlss_resnet50.py) and by HLSSAuxWrapper, which adds
# them to a baseline algorithm (simclr_hlss_srh.py, mocov3_hlss_srh.py,
# byol_hlss_srh.py). Every name starts with hlss_, so this file combines with
# any baseline config in one _base_ list; configs take what they need with
# {{_base_.hlss_heads}} and {{_base_.hlss_text_tower}}.
hlss_hvc = dict(type='HierarchicalSupConLoss', temperature=0.07,
                gather_distributed=True, loss_weight=1.0)
# HA as published: the unit-norm image embedding (in the text space) against
# the fixed text embedding of its nearest attribute, softmax over the
# embedding at T = 1, (KL + KL) / 2 summed over all gathered views, weight 1,
# without gradient (the published code adds it as a number).
hlss_ha_published = dict(type='HierarchicalAlignmentLoss', temperature=1.0,
                         reduction='sum', gather_distributed=True,
                         detach=True, loss_weight=1.0)
# HA that trains: same fixed target, gradient into the image side, mean over
# the gathered views, T = 0.1 (at T = 1 the softmax of a unit vector is
# nearly uniform and the term vanishes).
hlss_ha_trained = dict(type='HierarchicalAlignmentLoss', temperature=0.1,
                       reduction='mean', gather_distributed=True,
                       detach=False, loss_weight=1.0)
# One output per attribute (128 per level in the shipped files). No bridge
# when the image and text embeddings share a space (CLIP), else one Linear.
hlss_head_common = dict(type='HierarchicalTextAlignedHead', attributes='srh',
                        num_outputs=None, trainable=True, hvc_loss=hlss_hvc)
# center_text=True (centring the MiniLM attribute embeddings, which sit in a
# narrow cone) cost 3-5 points of slide / patient kNN accuracy at the CPU
# preset (docs/benchmark.md), so the rows stay as embedded.
hlss_head = dict(hlss_head_common, ha_loss=hlss_ha_trained,
                 center_text=False)
hlss_head_published = dict(hlss_head_common, ha_loss=hlss_ha_published)
# HVC and/or HA per level: set a level's hvc_loss or ha_loss to None to drop
# that term, e.g. patch=dict(hlss_head, hvc_loss=None)
hlss_heads = dict(patch=hlss_head, slide=hlss_head, patient=hlss_head)
hlss_heads_published = dict(patch=hlss_head_published,
                            slide=hlss_head_published,
                            patient=hlss_head_published)
hlss_text_tower = dict(type='HFSentenceTextTower',
                       cache_dir='.cache/hlss_text')
