"""``center_crop_box``: the centre-crop rule of ``CenterCropTensor``."""
import pytest
import torch
import torchvision.transforms.functional as TF

from hlss_plugin.datasets.transforms import CenterCropTensor, center_crop_box


@pytest.mark.parametrize('height, width, size', [
    (300, 300, 224), (5, 4, (2, 2)), (7, 10, (3, 5)), (6, 6, 6),
    (9, 8, (4, 1))])
def test_box_matches_torchvision_and_the_transform(height, width, size):
    img = torch.arange(height * width, dtype=torch.float32).view(
        1, height, width)
    top, left, h, w = center_crop_box(height, width, size)
    crop = img[:, top:top + h, left:left + w]
    assert torch.equal(crop, TF.center_crop(img, list((h, w))))
    out = CenterCropTensor(size)(dict(img=img))['img']
    assert torch.equal(out, crop)


def test_too_large_or_bad_size_names_the_fix():
    with pytest.raises(ValueError, match='lower size'):
        center_crop_box(4, 4, 5)
    with pytest.raises(ValueError, match='center_crop_box: size'):
        center_crop_box(4, 4, 0)
