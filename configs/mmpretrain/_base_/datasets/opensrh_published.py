# OpenSRH data and kNN evaluation as in the published HLSS code:
# - views: SRHAugment(recipe='published'): bicubic resize of the whole 300 px
#   patch to 224, then eleven ops each with p = 0.5 in the published order;
# - patients: class-balanced by replication (minority-class patients
#   repeated up to the largest class, an epoch = one pass over that list);
# - evaluation: the whole patch resized to 224; kNN k = 200, T = 0.07; patch
#   scores L1-normalised, softmaxed, then summed per slide / patient;
# - batches: the paper's 32 x 2 x 2 x 2 (opensrh_paper_batch.py).
_base_ = ['opensrh_paper_batch.py', 'opensrh_knn_eval.py']
view_pipeline = [dict(type='SRHAugment', recipe='published')]
train_dataloader = dict(
    sampler=dict(class_balanced='replicate'),
    dataset=dict(pipeline=[
        dict(type='LoadSRHPatch'),
        dict(type='SRHThirdChannel'),
        dict(type='MultiView', num_views={{_base_.num_views}},
             transforms=[view_pipeline]),
        dict(type='PackInputs', algorithm_keys={{_base_.hierarchy_keys}}),
    ]))
knn_test_pipeline = [
    dict(type='LoadSRHPatch'),
    dict(type='SRHThirdChannel'),
    dict(type='ResizeTensor', size=224),  # bicubic, no antialias
    dict(type='PackInputs', algorithm_keys={{_base_.knn_keys}}),
]
val_dataloader = dict(dataset=dict(pipeline=knn_test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(aggregation='published')
test_evaluator = val_evaluator
