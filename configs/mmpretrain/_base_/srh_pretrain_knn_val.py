# srh_pretrain.py plus the kNN validation of hlss_srh.py, for the baselines
# whose MMPretrain algorithms (SimCLR, MoCoV3, BYOL, SimSiam, BarlowTwins)
# have no 'predict' mode: EmbeddingValLoop / EmbeddingTestLoop embed them
# with their data preprocessor, backbone and global average pooling (the
# embedding BackboneEmbedder and tools/benchmarks/benchmark.py evaluate),
# and run models that can predict (HLSSAuxWrapper) as mmengine's loops do.
# HierarchicalKNNMetric every 50 epochs; the best patient/acc is kept.
_base_ = ['srh_pretrain.py', 'datasets/opensrh_knn_eval.py']
val_cfg = dict(type='EmbeddingValLoop')
test_cfg = dict(type='EmbeddingTestLoop')
train_cfg = dict(val_interval=50)
default_hooks = dict(checkpoint=dict(save_best='patient/acc', rule='greater'))
