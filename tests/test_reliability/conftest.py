"""Tiny synthetic OpenSRH sets shared by the reliability tests."""
import shutil

import pytest

from hlss_plugin.synthetic import make_synthetic_srh


@pytest.fixture(scope='session')
def tiny_srh(tmp_path_factory):
    """4 patients (2 train, 2 val, classes hgg / normal), 1 slide of 2
    patches each, 32 px: a kNN bank and a query set of 4 patches each."""
    root = str(tmp_path_factory.mktemp('tiny_srh') / 'srh')
    make_synthetic_srh(root, patients_per_class=2, slides=1, patches=2,
                       size=32, classes=['hgg', 'normal'])
    return root


@pytest.fixture
def tiny_srh_copy(tiny_srh, tmp_path):
    """A private copy of :func:`tiny_srh`, free to corrupt."""
    root = str(tmp_path / 'srh_copy')
    shutil.copytree(tiny_srh, root)
    return root


@pytest.fixture(scope='session')
def train_srh(tmp_path_factory):
    """The set tests/test_tools/test_train.py trains on: 14 train and 7 val
    patients (7 classes), 2 slides x 4 patches, 48 px."""
    root = str(tmp_path_factory.mktemp('train_srh') / 'srh')
    make_synthetic_srh(root, patients_per_class=3, patches=4, size=48)
    return root
