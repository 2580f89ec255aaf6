# hlss_resnet50.py with the H&E attribute lists (hlss_plugin/text/
# he_attributes.json) at every level: the model of the H&E configs
# (hlss_tcga.py, hlss_manifest_cohort.py).
_base_ = ['hlss_resnet50.py']
model = dict(heads=dict(patch=dict(attributes='he'),
                        slide=dict(attributes='he'),
                        patient=dict(attributes='he')))
