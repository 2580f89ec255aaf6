"""Benchmark presets: flag > preset > default, with sources; seeds; the
--make-data spec; errors that name the fix."""
import pytest

from hlss_plugin.benchmark.presets import (DEFAULT_DATA, DEFAULTS,
                                                 PRESETS, data_spec,
                                                 resolve_seeds,
                                                 resolve_settings)

FAKE = dict(fast=dict(crop_size=48, budget=3, eval_every=1,
                      data=dict(patches=4)))


def test_precedence_flag_preset_default():
    values, sources = resolve_settings(
        dict(crop_size=32, k=None, budget=None), 'fast', FAKE)
    assert (values['crop_size'], sources['crop_size']) == (32, 'flag')
    assert (values['budget'], sources['budget']) == (3, 'preset fast')
    assert (values['eval_every'], sources['eval_every']) == (1,
                                                             'preset fast')
    assert (values['k'], sources['k']) == (DEFAULTS['k'], 'default')
    assert values['data'] == dict(patches=4)
    assert set(values) == set(DEFAULTS) | {'data'}
    # without a preset: defaults, no data
    values, sources = resolve_settings({}, None, FAKE)
    assert {k: values[k] for k in DEFAULTS} == DEFAULTS
    assert set(sources.values()) == {'default'} and 'data' not in values
    # zero is a value given (e.g. --eval-every 0 turns a preset's off)
    values, _ = resolve_settings(dict(eval_every=0), 'fast', FAKE)
    assert values['eval_every'] == 0


def test_values_are_copies():
    values, _ = resolve_settings({}, 'fast', FAKE)
    values['data']['patches'] = 99
    values['seeds'].append(5)
    assert FAKE['fast']['data']['patches'] == 4 and DEFAULTS['seeds'] == [0]


def test_cpu_preset_is_complete_and_valid():
    cpu = PRESETS['cpu']
    for key in ('backbone', 'crop_size', 'patients_per_batch', 'budget',
                'k', 'workers', 'eval_every'):
        assert key in cpu, key
    values, sources = resolve_settings({}, 'cpu')
    assert sources['budget'] == 'preset cpu' and values['budget'] >= 1
    assert set(data_spec(values)) == set(DEFAULT_DATA)


def test_errors():
    with pytest.raises(ValueError, match="unknown preset 'gpu'; valid "
                       "presets: fast"):
        resolve_settings({}, 'gpu', FAKE)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['lr'\]"):
        resolve_settings(dict(lr=0.1), None, FAKE)
    with pytest.raises(ValueError, match=r"preset 'bad' sets unknown "
                       r"key\(s\) \['epochs'\].*benchmark/presets.py"):
        resolve_settings({}, 'bad', dict(bad=dict(epochs=3)))


def test_seeds():
    assert resolve_seeds(1) == [0]
    assert resolve_seeds(3) == [0, 1, 2]
    assert resolve_seeds([4, 2]) == [4, 2]
    for bad, match in ((0, 'must be >= 1'), ([], 'empty'),
                       ([1, -1], 'integers >= 0'), ([1, 1], 'given twice'),
                       (True, 'count >= 1')):
        with pytest.raises(ValueError, match=match):
            resolve_seeds(bad)


def test_data_spec():
    assert data_spec({}) == DEFAULT_DATA
    spec = data_spec(dict(data=dict(patches=3, size=64)))
    assert spec == dict(DEFAULT_DATA, patches=3, size=64)
