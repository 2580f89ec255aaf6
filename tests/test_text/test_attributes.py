"""Shipped attribute files and every error path of the attribute validator."""
import json
import re
from collections import Counter

import pytest

from hlss_plugin.synthetic.attribute_map import ATTRIBUTE_MAP, mapped_names
from hlss_plugin.synthetic.morphology import ATTRIBUTE_NAMES
from hlss_plugin.text import (ATTRIBUTE_LEVELS, SHIPPED_ATTRIBUTE_FILES,
                              attribute_file_path, load_attributes,
                              validate_attributes)
from hlss_plugin.text.attributes import (SHIPPED_ATTRIBUTES_PER_LEVEL,
                                         SHIPPED_DESCRIPTIONS_PER_ATTRIBUTE)

LEVELS = ('patch', 'slide', 'patient')


def _norm(text):
    return ' '.join(text.split()).casefold()


# ------------------------------------------------------------ shipped files
def test_shipped_sizes_are_the_hlss_recipe():
    assert SHIPPED_ATTRIBUTES_PER_LEVEL == 128
    assert SHIPPED_DESCRIPTIONS_PER_ATTRIBUTE == 4


@pytest.mark.parametrize('source', ['srh', 'he'])
def test_shipped_files_meet_counts(source):
    """The HLSS recipe: 128 attributes per level, 4 descriptions each."""
    attrs = load_attributes(source)
    assert tuple(attrs) == LEVELS == ATTRIBUTE_LEVELS
    for level in LEVELS:
        assert len(attrs[level]) == 128, (source, level, len(attrs[level]))
        for name, descriptions in attrs[level].items():
            assert len(descriptions) >= 4, (source, level, name)
            for text in descriptions:
                # Short sentence fragments: about 5 to 15 words.
                assert 4 <= len(text.split()) <= 15, text
                assert len(text) < 160, text


@pytest.mark.parametrize('source', ['srh', 'he'])
def test_shipped_files_have_no_duplicate_descriptions_anywhere(source):
    attrs = load_attributes(source)
    texts = [
        _norm(t) for level in attrs.values() for ds in level.values()
        for t in ds
    ]
    repeated = [t for t, c in Counter(texts).items() if c > 1]
    assert not repeated


@pytest.mark.parametrize('source', ['srh', 'he'])
def test_shipped_files_have_no_duplicate_raw_keys(source):
    """Raw JSON check, independent of the loader's duplicate-key hook."""
    pairs_seen = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        pairs_seen.append(keys)
        return dict(pairs)

    with open(attribute_file_path(source), encoding='utf-8') as f:
        json.load(f, object_pairs_hook=hook)
    for keys in pairs_seen:
        assert len(keys) == len(set(keys)), keys


@pytest.mark.parametrize('source', ['srh', 'he'])
def test_shipped_files_cover_the_synthetic_ground_truth(source):
    """Each morphological attribute the synthetic generator draws (apart
    from the acquisition ``signal``) has a matching attribute name."""
    attrs = load_attributes(source)
    names = ' | '.join(n.lower() for lv in attrs.values() for n in lv)
    patterns = {
        'cellularity': r'cell density|cellularity',
        'nuclear_size': r'enlarged nuclei',
        'pleomorphism': r'pleomorphism',
        'elongation': r'spindle',
        'alignment': r'aligned nuclei',
        'fibres': r'myelin',
        'necrosis': r'necro',
        'vascularity': r'vascular',
        'clustering': r'cohesive epithelioid',
        'whorls': r'whorl|concentric',
        'cytoplasm': r'cytoplasm',
    }
    assert set(patterns) == set(ATTRIBUTE_NAMES) - {'signal'}
    for gt_name, pattern in patterns.items():
        assert re.search(pattern, names), (source, gt_name)
    assert re.search('monotonous round', names)
    assert re.search('spindle-cell fascicles', names)


@pytest.mark.parametrize('level', LEVELS)
def test_srh_file_keeps_every_name_of_the_synthetic_attribute_map(level):
    """``hlss_plugin/synthetic/attribute_map.py`` names SRH attributes; a
    rename in the JSON would silently drop ground truth."""
    names = set(load_attributes('srh')[level])
    wanted = mapped_names(level)
    assert wanted, level
    assert [n for n in wanted if n not in names] == []
    assert set(ATTRIBUTE_MAP) == set(LEVELS)


def test_srh_file_uses_srh_language():
    with open(attribute_file_path('srh'), encoding='utf-8') as f:
        raw = f.read()
    for word in ('CH2', 'CH3', 'lipid', 'myelin'):
        assert word in raw


def test_shipped_names_and_path_source_agree(tmp_path):
    assert set(SHIPPED_ATTRIBUTE_FILES) == {'srh', 'he'}
    copy = tmp_path / 'copy.json'
    copy.write_text(open(attribute_file_path('he')).read())
    assert load_attributes(str(copy)) == load_attributes('he')


# --------------------------------------------------------------- validator
def _doc(**levels):
    base = {lv: {'dense': ['many nuclei', 'crowded cells']} for lv in LEVELS}
    base.update(levels)
    return {'modality': 'test', 'levels': base}


def _write(tmp_path, text):
    path = tmp_path / 'attrs.json'
    path.write_text(text, encoding='utf-8')
    return str(path)


def test_valid_file_round_trips_in_order_and_strips(tmp_path):
    doc = _doc(patch={'b attr': [' first  ', 'second'], 'a attr': ['third']})
    out = load_attributes(_write(tmp_path, json.dumps(doc)))
    assert list(out['patch']) == ['b attr', 'a attr']
    assert out['patch']['b attr'] == ['first', 'second']
    assert list(out) == list(LEVELS)


def test_duplicate_attribute_key_in_json(tmp_path):
    level = ('{"dense": ["many nuclei"], "sparse": ["few nuclei"], '
             '"dense": ["crowded cells"]}')
    others = '{"x": ["y z"]}'
    text = (f'{{"levels": {{"patch": {level}, "slide": {others}, '
            f'"patient": {others}}}}}')
    path = _write(tmp_path, text)
    with pytest.raises(ValueError,
                       match=r"attrs\.json: level 'patch': duplicate "
                       r"attribute names \['dense'\].*Merge or rename"):
        load_attributes(path)
    # Plain json.load would have silently kept the last value.
    assert json.loads(text)['levels']['patch']['dense'] == ['crowded cells']


def test_duplicate_level_key_in_json(tmp_path):
    lv = '{"x": ["y z"]}'
    text = (f'{{"levels": {{"patch": {lv}, "slide": {lv}, "patient": {lv}, '
            f'"slide": {lv}}}}}')
    with pytest.raises(ValueError, match=r'duplicate levels \[.slide.\]'):
        load_attributes(_write(tmp_path, text))


def test_names_differing_only_in_case_are_duplicates(tmp_path):
    doc = _doc(slide={'Dense': ['a b'], 'dense ': ['c d']})
    with pytest.raises(ValueError,
                       match=r"attrs\.json: level 'slide', attribute "
                       r"'dense' duplicates attribute 'Dense'.*merge or "
                       r'rename'):
        load_attributes(_write(tmp_path, json.dumps(doc)))


@pytest.mark.parametrize('name', ['', '   '])
def test_empty_attribute_name(tmp_path, name):
    doc = _doc(patient={'dense': ['a b'], name: ['c d']})
    with pytest.raises(ValueError,
                       match=r"attrs\.json: level 'patient' has an empty "
                       r'attribute name .*\(attribute 1 of the level\); '
                       r'give the attribute a name'):
        load_attributes(_write(tmp_path, json.dumps(doc)))


def test_empty_description_list(tmp_path):
    doc = _doc(patch={'dense': ['a b'], 'necrosis': []})
    with pytest.raises(ValueError,
                       match=r"attrs\.json: level 'patch', attribute "
                       r"'necrosis' has an empty description list; give it "
                       r'at least one description'):
        load_attributes(_write(tmp_path, json.dumps(doc)))


@pytest.mark.parametrize('text', ['', ' \t\n'])
def test_empty_or_whitespace_description(tmp_path, text):
    doc = _doc(slide={'necrosis': ['dead tissue', text]})
    with pytest.raises(ValueError,
                       match=r"attrs\.json: level 'slide', attribute "
                       r"'necrosis', description 1 is empty or only "
                       r'whitespace; write a description or remove'):
        load_attributes(_write(tmp_path, json.dumps(doc)))


def test_duplicate_description_within_attribute(tmp_path):
    doc = _doc(patch={'necrosis': ['dead tissue', 'other', 'Dead  tissue']})
    with pytest.raises(ValueError,
                       match=r"attrs\.json: level 'patch', attribute "
                       r"'necrosis': description 2 'Dead  tissue' repeats "
                       r'description 0 .*remove or reword it'):
        load_attributes(_write(tmp_path, json.dumps(doc)))


def test_description_shared_by_two_attributes_of_a_level(tmp_path):
    doc = _doc(slide={
        'necrosis': ['dead tissue', 'no nuclei left'],
        'haemorrhage': ['pools of blood', 'No  nuclei LEFT'],
    })
    with pytest.raises(ValueError,
                       match=r"attrs\.json: level 'slide', attribute "
                       r"'haemorrhage': description 1 'No  nuclei LEFT' is "
                       r"also a description of attribute 'necrosis'.*"
                       r'reword it or keep it in one attribute'):
        load_attributes(_write(tmp_path, json.dumps(doc)))


def test_levels_may_share_a_description(tmp_path):
    """The cross-attribute check is per level: the patch and slide views of
    one concept may use the same words."""
    doc = _doc(patch={'necrosis': ['dead tissue']},
               slide={'necrosis': ['dead tissue']})
    out = load_attributes(_write(tmp_path, json.dumps(doc)))
    assert out['patch'] == out['slide'] == {'necrosis': ['dead tissue']}


def test_missing_level(tmp_path):
    doc = _doc()
    del doc['levels']['slide']
    with pytest.raises(ValueError, match=r"missing levels \['slide'\]"):
        load_attributes(_write(tmp_path, json.dumps(doc)))


def test_missing_levels_key(tmp_path):
    with pytest.raises(ValueError, match='missing "levels"'):
        load_attributes(_write(tmp_path, '{"modality": "srh"}'))


def test_unknown_level(tmp_path):
    doc = _doc(tile={'a': ['b c']})
    with pytest.raises(ValueError, match=r"unknown levels \['tile'\]"):
        load_attributes(_write(tmp_path, json.dumps(doc)))


def test_unknown_top_level_key(tmp_path):
    doc = _doc()
    doc['patch'] = {}
    with pytest.raises(
            ValueError,
            match=r"attrs\.json: unknown top-level keys \['patch'\]"):
        load_attributes(_write(tmp_path, json.dumps(doc)))


WRONG_TYPES = [
    ([1, 2], 'expected a JSON object'),
    (dict(levels=[]), '"levels" must be an object'),
    (dict(modality=3, levels={}), '"modality" must be a string'),
    (_doc(patch=['a']), "level 'patch' must map"),
    (_doc(patch={}), "level 'patch' has no attributes"),
    (_doc(patch=dict(a='b c')), "attribute 'a': expected a list"),
    (_doc(patch=dict(a=['b c', 3])),
     'description 1: expected a string, got int; write the description'),
]


@pytest.mark.parametrize('doc, match', WRONG_TYPES)
def test_wrong_types(tmp_path, doc, match):
    with pytest.raises(ValueError, match=match):
        load_attributes(_write(tmp_path, json.dumps(doc)))


def test_validate_attributes_on_a_dict_names_where():
    with pytest.raises(ValueError, match=r'^my config: missing levels'):
        only_patch = dict(levels=dict(patch=dict(a=['b c'])))
        validate_attributes(only_patch, where='my config')
    out = validate_attributes(_doc())
    assert out['slide'] == {'dense': ['many nuclei', 'crowded cells']}


def test_bad_json_and_bad_source(tmp_path):
    with pytest.raises(ValueError, match=r'attrs\.json: not valid JSON'):
        load_attributes(_write(tmp_path, '{"levels": '))
    with pytest.raises(ValueError,
                       match=r"neither a shipped attribute set "
                       r"\(\['he', 'srh'\]\)"):
        load_attributes(str(tmp_path / 'nope.json'))
    with pytest.raises(ValueError, match='non-empty string'):
        load_attributes('')
