"""Named op lists of :class:`~hlss_plugin.augmentation.srh_augment.SRHAugment`.

``'default'`` (this plugin's, crop first, :data:`DEFAULT_OPS`) and
``'published'`` (the published HLSS recipe: bicubic resize to 224, then
:data:`PUBLISHED_OPS` in order, each at 0.5).
"""
#: Strong ops of the ``'default'`` recipe (each fires with ``rand_prob``,
#: 0.3), in the order they run, after the flips; the resized crop is moved
#: first (see :class:`SRHAugment`).
DEFAULT_OPS = (
    dict(type='random_resized_crop', size=224, scale=(0.08, 1.0)),
    dict(type='gaussian_noise', std=(0.01, 0.1)),
    dict(type='color_jitter', brightness=0.2, contrast=0.2, saturation=0.2,
         hue=0.1),
    dict(type='autocontrast'),
    dict(type='solarize', threshold=0.2),
    dict(type='sharpness', factor=2.0),
    dict(type='gaussian_blur', kernel_size=5, sigma=(1.0, 1.0)),
    dict(type='erasing', scale=(0.02, 0.33), ratio=(0.3, 3.3)),
    dict(type='affine', degrees=10.0, translate=(0.1, 0.1)),
)

#: Strong ops of the ``'published'`` recipe: the training augmentation of
#: the published HLSS code (``train_augmentation`` of its
#: ``train_hlss_attr3levels.yaml``, each op applied with probability
#: ``rand_prob`` = 0.5, the default of its ``get_srh_aug_list``), in its
#: order, with torchvision's default arguments where it gives none:
#: ``color_jitter`` is torchvision's ``ColorJitter()``, which changes
#: nothing; the noise std is U(0.01, 0.1); ``random_resized_crop`` and
#: ``erasing`` use torchvision's default scale / ratio.
PUBLISHED_OPS = (
    dict(type='hflip'),
    dict(type='vflip'),
    dict(type='gaussian_noise', std=(0.01, 0.1)),
    dict(type='color_jitter', brightness=0, contrast=0, saturation=0, hue=0),
    dict(type='autocontrast'),
    dict(type='solarize', threshold=0.2),
    dict(type='sharpness', factor=2.0),
    dict(type='gaussian_blur', kernel_size=5, sigma=1.0),
    dict(type='affine', degrees=10.0, translate=(0.1, 0.3)),
    dict(type='random_resized_crop', size=224, scale=(0.08, 1.0),
         ratio=(3.0 / 4.0, 4.0 / 3.0)),
    dict(type='erasing', scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0),
)

#: Named settings of :class:`SRHAugment` (``recipe=name``); explicit
#: arguments override single entries.
#:
#: * ``'default'``: this plugin's recipe (crop first for speed, then the
#:   flips at 0.5 and :data:`DEFAULT_OPS` at 0.3).
#: * ``'published'``: the published HLSS recipe: a bicubic resize of the
#:   whole patch to 224 x 224 (always), then :data:`PUBLISHED_OPS` in their
#:   order, each at 0.5.
RECIPES = {
    'default': dict(base_ops=('hflip', 'vflip'), base_prob=0.5,
                    ops=DEFAULT_OPS, rand_prob=0.3, crop_first=True),
    'published': dict(
        base_ops=(dict(type='resize', size=224, interpolation='bicubic',
                       antialias=False), ),
        base_prob=1.0, ops=PUBLISHED_OPS, rand_prob=0.5, crop_first=False),
}

#: Ops that change the spatial size (run with probability 1, or as the
#: crop-first crop) and whose ``size`` ``SRHAugment(crop_size=...)`` sets.
SIZE_OPS = ('random_resized_crop', 'resize')
