# Any H&E patch cohort listed in a CSV manifest (HierarchicalManifestDataset)
# in the hierarchical batches of OpenSRH (P patients x S slides x K patches x
# V views), with the H&E views of tcga_hierarchical.py (HEView: Lightly's
# crop, flips, rotation, colour jitter and blur, then HED stain jitter).
# The manifest: columns path,patient,slide,label,split (split = train / val);
# paths relative to data_root; PNG, JPEG or RGB TIFF patches (LoadPatchImage).
# Data: set HLSS_MANIFEST_ROOT (the folder holding the CSV and the patches)
# and, for another file name than manifest.csv, HLSS_MANIFEST; or pass
# --data-root DIR to the tools (reads DIR/manifest.csv).
_base_ = ['./opensrh_hierarchical.py']
data_root = '{{$HLSS_MANIFEST_ROOT:data/cohort}}'
manifest = '{{$HLSS_MANIFEST:manifest.csv}}'  # relative to data_root
view_pipeline = [dict(type='HEView', crop_size=224)]
train_pipeline = [
    dict(type='LoadPatchImage'),
    dict(type='MultiView', num_views={{_base_.num_views}},
         transforms=[view_pipeline]),
    dict(type='PackInputs', algorithm_keys={{_base_.hierarchy_keys}}),
]
train_dataloader = dict(
    dataset=dict(
        type='HierarchicalManifestDataset',
        manifest=manifest,
        data_root=data_root,
        pipeline=train_pipeline))
