"""on_bad_patch policy of hierarchical datasets."""
import pytest

from hlss_plugin.datasets.opensrh_dataset import OpenSRHDataset
from hlss_plugin.errors import BadPatchError

from .test_opensrh_dataset import small_meta, write_meta


class FailOn:
    """Pipeline step that fails for paths containing any of ``bad``."""

    def __init__(self, *bad):
        self.bad = bad
        self.calls = 0

    def __call__(self, results):
        self.calls += 1
        if any(b in results['img_path'] for b in self.bad):
            raise BadPatchError(results['img_path'], 'corrupt TIFF')
        return results


def build(tmp_path, step, **kwargs):
    write_meta(str(tmp_path), small_meta())
    return OpenSRHDataset(str(tmp_path), split=['P1', 'P2'],
                          pipeline=[step], **kwargs)


def index_of(ds, name):
    return next(i for i in range(len(ds))
                if ds.get_data_info(i)['img_path'].endswith(name))


def test_raise_names_file_and_fix(tmp_path):
    ds = build(tmp_path, FailOn('P1-1-0.tif'))
    with pytest.raises(BadPatchError, match=r'P1-1-0.tif: corrupt TIFF.*'
                       r"slide 'P1/1'.*on_bad_patch=\"skip\""):
        ds[index_of(ds, 'P1-1-0.tif')]


def test_skip_uses_same_slide_and_counts(tmp_path):
    ds = build(tmp_path, FailOn('P1-1-0.tif'), on_bad_patch='skip')
    for _ in range(5):
        out = ds[index_of(ds, 'P1-1-0.tif')]
        assert out['slide'] == 'P1/1'
        assert not out['img_path'].endswith('P1-1-0.tif')
    assert ds.num_skipped >= 5


def test_skip_is_bounded(tmp_path):
    step = FailOn('P1-1-')  # every patch of slide P1/1 is bad
    ds = build(tmp_path, step, on_bad_patch='skip', max_bad_patch_retries=4)
    with pytest.raises(BadPatchError, match=r"4 patches of slide 'P1/1' "
                       r'failed to load.*max_bad_patch_retries'):
        ds[index_of(ds, 'P1-1-2.tif')]
    assert step.calls == 4
    assert ds.num_skipped == 4
    # other slides are unaffected
    assert ds[index_of(ds, 'P2-1-0.tif')]['slide'] == 'P2/1'


@pytest.mark.parametrize('kwargs, match', [
    (dict(on_bad_patch='ignore'), 'on_bad_patch=.ignore. is not one of'),
    (dict(max_bad_patch_retries=0), 'max_bad_patch_retries must be >= 1'),
])
def test_bad_policy_args(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build(tmp_path, FailOn(), **kwargs)
