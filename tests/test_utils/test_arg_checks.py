"""hlss_plugin.utils.arg_checks: the shared int rule and argparse types."""
import argparse

import numpy as np
import pytest

from hlss_plugin.utils.arg_checks import (check_int, non_negative_int,
                                          positive_int)


@pytest.mark.parametrize('value,kwargs', [
    (1, dict(minimum=1)), (0, dict(minimum=0)), (5, dict(maximum=5)),
    (None, dict(allow_none=True)), (-3, {}), (3, dict(minimum=1, maximum=3))])
def test_legal_values_come_back_unchanged(value, kwargs):
    assert check_int('x', value, **kwargs) is value


@pytest.mark.parametrize('value,kwargs,message', [
    (0, dict(minimum=1), 'k must be an int >= 1, got 0.'),
    (True, dict(minimum=0), 'k must be an int >= 0, got True.'),
    (2.0, dict(minimum=1), 'k must be an int >= 1, got 2.0.'),
    ('3', {}, "k must be an int, got '3'."),
    (None, dict(minimum=1), 'k must be an int >= 1, got None.'),
    (9, dict(minimum=1, maximum=8), 'k must be an int in [1, 8], got 9.'),
    (9, dict(maximum=8, allow_none=True),
     'k must be an int <= 8 or None, got 9.'),
])
def test_illegal_values_name_key_range_and_value(value, kwargs, message):
    with pytest.raises(ValueError) as err:
        check_int('k', value, **kwargs)
    assert str(err.value) == message


def test_numpy_integers_come_back_as_python_ints():
    value = check_int('k', np.int64(3), minimum=1)
    assert value == 3 and type(value) is int
    with pytest.raises(ValueError, match=r'>= 1, got np.int32\(0\)'):
        check_int('k', np.int32(0), minimum=1)
    with pytest.raises(ValueError):
        check_int('k', np.float64(3.0))
    with pytest.raises(ValueError):
        check_int('k', np.bool_(True))


def test_owner_prefix():
    with pytest.raises(ValueError, match=r'^SRHAugment: crop_size must'):
        check_int('crop_size', 0, minimum=1, owner='SRHAugment')


def test_argparse_types():
    parser = argparse.ArgumentParser()
    parser.add_argument('--n', type=positive_int)
    parser.add_argument('--m', type=non_negative_int)
    args = parser.parse_args(['--n', '2', '--m', '0'])
    assert (args.n, args.m) == (2, 0)
    for bad in (['--n', '0'], ['--n', 'x'], ['--m', '-1']):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)
