"""Attribute explanations: mapping, ground truth, top-k, aggregation, and
precision@k against hand computations (NumPy) on a fake model with known
head weights (raw ranking; the relative ranking is tested in
``test_relative_ranking.py``)."""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS
from torch import nn

import hlss_plugin  # noqa: F401  (registers heads and losses)
from hlss_plugin.interpret import (AttributeExplainer, ExplainError,
                                   aggregate_by_group, center_crop,
                                   chance_precision, precision_at_k,
                                   top_k_attributes, view_size_from_config)
from hlss_plugin.interpret.explain_config import (check_hlss_config,
                                                  eval_pipeline)
from hlss_plugin.interpret.explain_data import select_patches
from hlss_plugin.interpret.explain_driver import explain_level_items
from hlss_plugin.interpret.load_checkpoint import load_state_dict_strict
from hlss_plugin.models.heads import HierarchicalTextAlignedHead
from hlss_plugin.synthetic import ATTRIBUTE_NAMES, as_dict, class_profile
from hlss_plugin.synthetic.attribute_map import (ATTRIBUTE_MAP, UNMAPPED,
                                                 ground_truth_sets,
                                                 mapped_names)
from hlss_plugin.text import load_attributes

CONFIGS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))), 'configs', 'mmpretrain')

# ------------------------------------------------------------- the mapping


def test_every_mapped_name_exists_in_the_shipped_srh_file():
    shipped = load_attributes('srh')
    assert set(ATTRIBUTE_MAP) == {'patch', 'slide', 'patient'}
    for level, table in ATTRIBUTE_MAP.items():
        for attr, directions in table.items():
            assert attr in ATTRIBUTE_NAMES and attr not in UNMAPPED
            assert set(directions) == {'high', 'low'}
            for name in directions['high'] + directions['low']:
                assert name in shipped[level], (level, attr, name)
        assert set(mapped_names(level)) <= set(shipped[level])


def test_every_morphology_attribute_is_mapped_and_signal_is_not():
    mapped = {a for table in ATTRIBUTE_MAP.values() for a in table}
    assert mapped == set(ATTRIBUTE_NAMES) - {'signal'}
    assert UNMAPPED == ('signal', )


def _items(column, attr='cellularity', base='lgg'):
    items = []
    for value in column:
        values = as_dict(class_profile(base))
        values[attr] = value
        items.append(values)
    return items


def test_ground_truth_is_a_z_score_threshold_over_the_items():
    column = [0.1, 0.2, 0.3, 0.9]
    # by hand: mean 0.375, population std sqrt(0.3875 / 4) = 0.3112;
    # z = -0.88, -0.56, -0.24, 1.69
    items = _items(column)
    sets = ground_truth_sets(items, 'patient', threshold=0.5)
    assert sets == [['low overall cellularity'], ['low overall cellularity'],
                    [], ['high overall cellularity']]
    sets = ground_truth_sets(items, 'patient', threshold=0.6)
    assert sets == [['low overall cellularity'], [], [],
                    ['high overall cellularity']]
    # one attribute maps to two names; constant attributes give nothing
    slide = ground_truth_sets(_items(column, 'vascularity'), 'slide')
    assert slide[3] == ['high vascularity', 'microvascular proliferation']
    assert slide[0] == [] and slide[2] == []  # "low" maps to no name
    # the unmapped acquisition signal never counts
    assert ground_truth_sets(_items(column, 'signal'), 'patch') == [[]] * 4


def test_ground_truth_bad_input():
    with pytest.raises(ValueError, match='unknown level'):
        ground_truth_sets([], 'tissue')
    with pytest.raises(ValueError, match='threshold'):
        ground_truth_sets(_items([0.1, 0.2]), 'patch', threshold=0)
    with pytest.raises(ValueError,
                       match="no generator attribute 'pleomorphism'"):
        ground_truth_sets([dict(cellularity=0.2)], 'patient')


# ---------------------------------------------------- pure tensor helpers


def test_center_crop_by_slicing():
    img = torch.arange(2 * 5 * 6.).reshape(2, 5, 6)
    out = center_crop(img, 3)
    # offsets round(margin / 2), half to even: round(1.0) = 1, round(1.5) = 2
    assert torch.equal(out, img[:, 1:4, 2:5])
    assert torch.equal(center_crop(img, (2, 4)), img[:, 2:4, 1:5])
    assert torch.equal(center_crop(img, (4, 5)), img[:, 0:4, 0:5])  # 0.5->0
    assert torch.equal(center_crop(img, (5, 6)), img)
    with pytest.raises(ValueError, match='smaller than the 6x6 crop'):
        center_crop(img, 6)


@pytest.mark.parametrize('hw', [(7, 9), (9, 7), (11, 11), (8, 13)])
@pytest.mark.parametrize('size', [2, 3, 4, (3, 6), (5, 2)])
def test_explanation_crop_is_the_evaluation_crop(hw, size):
    """Odd and even margins: the crop explain_data applies equals the one
    the kNN evaluation pipeline (CenterCropTensor) and torchvision give."""
    from torchvision.transforms.functional import center_crop as tv_crop

    from hlss_plugin.datasets.transforms import CenterCropTensor
    img = torch.arange(3 * hw[0] * hw[1], dtype=torch.float32).reshape(3, *hw)
    evaluation = CenterCropTensor(size)(dict(img=img.clone()))['img']
    explanation = center_crop(img, size)
    assert torch.equal(explanation, evaluation)
    pair = [size, size] if isinstance(size, int) else list(size)
    assert torch.equal(explanation, tv_crop(img, pair))


def test_aggregate_and_top_k_match_numpy():
    gen = torch.Generator().manual_seed(0)
    scores = torch.rand(7, 5, generator=gen)
    groups = ['b', 'a', 'b', 'c', 'a', 'b', 'c']
    keys, means = aggregate_by_group(scores, groups)
    assert keys == ['b', 'a', 'c']
    ref = scores.numpy()
    for key, row in zip(keys, means.numpy()):
        members = [i for i, g in enumerate(groups) if g == key]
        np.testing.assert_allclose(row, ref[members].mean(0), rtol=1e-6)
    names = list('vwxyz')
    top = top_k_attributes(means, names, 3)
    for row, ranked in zip(means.numpy(), top):
        order = sorted(range(5), key=lambda a: -row[a])[:3]
        assert [n for n, _ in ranked] == [names[a] for a in order]
        np.testing.assert_allclose([s for _, s in ranked], row[order],
                                   rtol=1e-6)
    # ties keep attribute order
    tied = top_k_attributes(torch.tensor([[0.5, 0.9, 0.5, 0.5]]), 'abcd', 3)
    assert [n for n, _ in tied[0]] == ['b', 'a', 'c']
    with pytest.raises(ValueError, match='k=6'):
        top_k_attributes(means, names, 6)


def test_precision_at_k_hand_worked():
    top = [['a', 'b', 'c'], ['d', 'e', 'f'], ['a', 'x', 'y'], ['q', 'r', 's']]
    truth = [{'a', 'c', 'z'}, set(), {'x', 'y', 'a', 'b'}, {'t'}]
    # item 0: 2/3, item 1: no truth (left out), item 2: 3/3, item 3: 0/3
    p, n = precision_at_k(top, truth, k=3)
    assert n == 3 and p == pytest.approx((2 / 3 + 1 + 0) / 3)
    # only the first k of a longer ranking count
    p1, _ = precision_at_k(top, truth, k=1)
    assert p1 == pytest.approx((1 + 1 + 0) / 3)
    assert precision_at_k([['a']], [None], k=1) == (None, 0)
    # random ranking: |truth| / A averaged over items with truth
    names = list('abcdefghijxyz')
    assert chance_precision(truth, names) == pytest.approx(
        (3 / 13 + 4 / 13 + 0 / 13) / 3)
    with pytest.raises(ValueError):
        precision_at_k(top, truth[:2], k=3)


def test_select_patches_is_even_and_bounded():
    assert select_patches(5, None) == [0, 1, 2, 3, 4]
    assert select_patches(5, 9) == [0, 1, 2, 3, 4]
    assert select_patches(100, 5) == [0, 25, 50, 74, 99]


# ------------------------------------------------ fake model, known heads
TEXT = {
    'patch': torch.tensor([[1., 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]]),
    'slide': torch.tensor([[1., 1, 1], [1, -1, 0], [0, 0, 1]]),
    'patient': torch.tensor([[0., 1, 1], [1, 0, -1], [-1, 0, 0]]),
}
MEAN, STD = 0.5, 0.25


class FakeHLSS(nn.Module):
    """HLSS stand-in: features = per-channel image means (C = 3 = text
    dim, so the heads have no bridge); real text-aligned heads with two
    free outputs each, which must not be reported.

    Args:
        text (dict): ``{level: (A, 3)}`` attribute text embeddings.
    """

    def __init__(self, text=TEXT):
        super().__init__()
        init_default_scope('mmpretrain')
        self.data_preprocessor = MODELS.build(dict(
            type='SelfSupDataPreprocessor', mean=[MEAN] * 3, std=[STD] * 3))
        self.levels = tuple(text)
        self.heads = nn.ModuleDict({
            lv: HierarchicalTextAlignedHead(
                t, in_channels=3, num_outputs=len(t) + 2, level=lv,
                attribute_names=[f'{lv}{i}' for i in range(len(t))],
                hvc_loss=dict(type='HierarchicalSupConLoss'), ha_loss=None)
            for lv, t in text.items()})

    def extract_feat(self, x):
        return x.mean(dim=(2, 3))


def _images():
    gen = torch.Generator().manual_seed(3)
    return torch.rand(6, 3, 4, 4, generator=gen)


def _hand_similarities(images, level):
    feats = (images.numpy().mean(axis=(2, 3)) - MEAN) / STD
    z = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    text = TEXT[level].numpy()
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    return z @ text.T


def test_similarities_are_the_named_rows_of_the_heads():
    explainer = AttributeExplainer(FakeHLSS(), batch_size=4)  # 2 batches
    images = _images()
    sims = explainer.similarities(images)
    for level in TEXT:
        assert sims[level].shape == (6, len(TEXT[level]))
        np.testing.assert_allclose(sims[level].numpy(),
                                   _hand_similarities(images, level),
                                   atol=1e-5)


RECORDS = [  # slides interleaved; slide '1' exists for both patients
    dict(id='p0', patient='A', slide='A/1', cls='hgg'),
    dict(id='p1', patient='B', slide='B/1', cls='lgg'),
    dict(id='p2', patient='A', slide='A/1', cls='hgg'),
    dict(id='p3', patient='A', slide='A/2', cls='hgg'),
    dict(id='p4', patient='B', slide='B/1', cls='lgg'),
    dict(id='p5', patient='B', slide='B/2', cls='lgg'),
]
MEMBERS = {'A/1': [0, 2], 'B/1': [1, 4], 'A/2': [3], 'B/2': [5],
           'A': [0, 2, 3], 'B': [1, 4, 5]}


def _hand_top(scores, names, k):
    order = np.argsort(-scores, kind='stable')[:k]
    return [names[a] for a in order], scores[order]


def test_slide_and_patient_aggregate_their_own_patches():
    model = FakeHLSS()
    explainer = AttributeExplainer(model, ranking='raw')
    images = _images()
    trained = explainer.similarities(images)
    untrained = {lv: -s for lv, s in trained.items()}  # a different model
    explainers = dict(trained=explainer, untrained=explainer)
    sims = dict(trained=trained, untrained=untrained)
    for level, ids in (('slide', ['A/1', 'B/1', 'A/2', 'B/2']),
                       ('patient', ['A', 'B'])):
        hand = _hand_similarities(images, level)
        names = explainer.attribute_names(level)
        out = explain_level_items(level, explainers, sims, RECORDS, None, 2)
        assert [it['id'] for it in out['items']] == ids
        assert out['precision_at_k'] is None
        for item in out['items']:
            rows = MEMBERS[item['id']]
            assert item['num_patches'] == len(rows)
            assert item['class'] == ('hgg' if item['id'][0] == 'A'
                                     else 'lgg')
            want, values = _hand_top(hand[rows].mean(0), names, 2)
            assert [n for n, _ in item['top_k']] == want
            np.testing.assert_allclose([s for _, s in item['top_k']], values,
                                       atol=1e-5)
            np.testing.assert_allclose(item['similarity'], values,
                                       atol=1e-5)
            want_u, _ = _hand_top(-hand[rows].mean(0), names, 2)
            assert item['untrained_top_k'] == want_u
    # patch level: every patch is its own item
    out = explain_level_items('patch', explainers, sims, RECORDS, None, 1)
    hand = _hand_similarities(images, 'patch')
    assert [it['id'] for it in out['items']] == [r['id'] for r in RECORDS]
    for row, item in zip(hand, out['items']):
        assert item['top_k'][0][0] == _hand_top(row, ['patch0', 'patch1',
                                                     'patch2', 'patch3'],
                                                1)[0][0]


def test_precision_of_a_level_uses_each_items_truth():
    explainer = AttributeExplainer(FakeHLSS(), ranking='raw')
    images = _images()
    trained = explainer.similarities(images)
    sims = dict(trained=trained, untrained={k: -v for k, v in
                                            trained.items()})
    hand = _hand_similarities(images, 'patient')
    names = explainer.attribute_names('patient')
    top_a = _hand_top(hand[MEMBERS['A']].mean(0), names, 2)[0]
    truth = {'patient': {'A': [top_a[0], 'other'], 'B': []}}
    out = explain_level_items('patient', dict(trained=explainer,
                                              untrained=explainer),
                              sims, RECORDS, truth, 2)
    p = out['precision_at_k']
    # only A counts: one of its two top attributes is in its truth
    assert p['items_with_ground_truth'] == 1 and p['items'] == 2
    assert p['trained'] == pytest.approx(0.5)
    assert p['chance'] == pytest.approx(1 / 3)  # 'other' is not an attribute
    assert out['items'][1]['ground_truth'] == []


def test_explainer_refuses_models_without_named_heads():
    with pytest.raises(ExplainError, match='HLSS'):
        AttributeExplainer(nn.Linear(2, 2))
    model = FakeHLSS()
    model.heads['slide'].attribute_names = []
    with pytest.raises(ExplainError, match='slide head has no attribute'):
        AttributeExplainer(model)


# ------------------------------------------------------ config, checkpoint


def test_non_hlss_config_is_refused():
    init_default_scope('mmpretrain')
    cfg = Config(dict(model=dict(type='SimCLR')))
    with pytest.raises(ExplainError, match='explain needs HLSS text-aligned'):
        check_hlss_config(cfg)
    check_hlss_config(Config(dict(model=dict(type='HLSS'))))
    check_hlss_config(Config(dict(model=dict(type='HLSSAuxWrapper'))))


def test_view_size_and_pipeline_from_the_configs():
    tiny = Config.fromfile(osp.join(CONFIGS, 'hlss_srh_tiny.py'))
    full = Config.fromfile(osp.join(CONFIGS, 'hlss_srh.py'))
    assert view_size_from_config(tiny) == 96
    assert view_size_from_config(full) == 224  # SRHAugment's default crop
    assert [t['type'] for t in eval_pipeline(tiny)] == ['LoadSRHPatch',
                                                        'SRHThirdChannel']
    assert view_size_from_config(Config(dict())) is None


def test_fast_config_keeps_raw_patches_and_the_preprocessors_view_size():
    # hlss_srh_fast.py: raw uint16 patches; the view size is the one of the
    # SRHAugment inside model.data_preprocessor (default ops: 224 px)
    fast = Config.fromfile(osp.join(CONFIGS, 'hlss_srh_fast.py'))
    assert [t['type'] for t in eval_pipeline(fast)] == ['LoadSRHPatchRaw']
    assert view_size_from_config(fast) == 224

    def batched(augment):
        return Config(dict(model=dict(type='HLSS', data_preprocessor=dict(
            type='SRHBatchAugmentPreprocessor', augment=augment))))

    assert view_size_from_config(batched(None)) == 224
    assert view_size_from_config(batched(dict(crop_size=64))) == 64
    assert view_size_from_config(batched(dict(ops=[dict(
        type='random_resized_crop', size=(48, 32))]))) == (48, 32)
    assert view_size_from_config(batched(dict(ops=[dict(
        type='hflip')]))) is None
    # a pre-crop in the train pipeline is kept, augmentation is not
    cfg = Config(dict(train_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadSRHPatchRaw'), dict(type='CenterCropTensor', size=8),
        dict(type='MultiView', num_views=2, transforms=[]),
        dict(type='PackInputs')]))))
    assert eval_pipeline(cfg) == [dict(type='LoadSRHPatchRaw'),
                                  dict(type='CenterCropTensor', size=8)]


def test_checkpoint_keys_must_match(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    good = model.state_dict()
    # mmengine layout with meta, and a DDP prefix
    path = tmp_path / 'ok.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': {
        f'module.{k}': v + 1 for k, v in good.items()}}, str(path))
    assert load_state_dict_strict(model, str(path)) == {'epoch': 1}
    assert torch.equal(model[0].bias, good['0.bias'])  # loaded (+1 above)
    # a bare state dict
    torch.save({k: v * 0 for k, v in good.items()}, str(path))
    load_state_dict_strict(model, str(path))
    assert not model[1].weight.any()
    bad = dict(good)
    bad.pop('1.bias')
    bad['head.weight'] = torch.zeros(1)
    bad['0.weight'] = torch.zeros(5, 5)
    torch.save({'state_dict': bad}, str(path))
    with pytest.raises(ExplainError) as err:
        load_state_dict_strict(model, str(path))
    msg = str(err.value)
    assert "1 missing keys: ['1.bias']" in msg
    assert "1 unexpected keys: ['head.weight']" in msg
    assert '0.weight (5, 5) vs (2, 3)' in msg
    # the augmentation step (_extra_state) of the fast config's preprocessor
    # is optional: checkpoints written before it existed load
    from hlss_plugin.models.data_preprocessors import \
        SRHBatchAugmentPreprocessor
    model.data_preprocessor = SRHBatchAugmentPreprocessor(seed=3)
    assert 'data_preprocessor._extra_state' in model.state_dict()
    torch.save({'state_dict': dict(good)}, str(path))
    load_state_dict_strict(model, str(path))
    assert torch.equal(model[1].weight, good['1.weight'])
    (tmp_path / 'junk.pth').write_text('not a checkpoint')
    with pytest.raises(ExplainError,
                       match='cannot be read weights-only: it is not a '
                       'file written'):
        load_state_dict_strict(model, str(tmp_path / 'junk.pth'))
    with pytest.raises(ExplainError, match='no such file'):
        load_state_dict_strict(model, str(tmp_path / 'missing.pth'))


def test_fake_head_rows_start_as_text():
    # guards the hand formula above: named rows = normalised text, bias 0
    head = FakeHLSS().heads['slide']
    np.testing.assert_allclose(head.attribute_proj.weight[:3].detach(),
                               F.normalize(TEXT['slide'], dim=1), atol=1e-6)
    assert not head.attribute_proj.bias.any()
