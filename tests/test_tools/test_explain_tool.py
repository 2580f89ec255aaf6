"""tools/analysis_tools/explain.py end to end on a tiny synthetic set, and its bad input.

The model is ``hlss_srh_tiny.py`` with a narrow ResNet-18 (the embedded
MiniLM text tower, so the heads carry the real SRH attribute names).
Checkpoints are written here from a freshly built model: one in the layout
``tools/train.py`` writes (meta, state_dict, message_hub, optimizer,
param_schedulers; all plain, as PlainCheckpointHook leaves them) and a bare
``{'state_dict', 'meta'}``. ``hlss_srh_fast.py`` (raw ``uint16`` patches,
third channel and normalisation in ``SRHBatchAugmentPreprocessor``) is
explained from a checkpoint of one real training step.
"""
import importlib.util
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import hlss_plugin  # noqa: F401
from hlss_plugin.interpret import (explain, explain_driver, markdown_lines,
                                   summary_lines)
from hlss_plugin.synthetic import make_synthetic_srh

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'explain.py')
SIMCLR = osp.join(REPO, 'tests', 'test_tools', 'configs',
                  'simclr_tiny_srh.py')
TINY = f"""
_base_ = [{osp.join(REPO, 'configs', 'mmpretrain', 'hlss_srh_tiny.py')!r}]
model = dict(
    backbone=dict(base_channels=8, stem_channels=8), in_channels=64,
    heads=dict(patch=dict(), slide=dict(), patient=dict()))
"""
# hlss_srh_fast.py with the same narrow ResNet-18, 64 px views, 8-patch
# batches and no worker processes.
FAST = f"""
_base_ = [{osp.join(REPO, 'configs', 'mmpretrain', 'hlss_srh_fast.py')!r}]
model = dict(
    backbone=dict(depth=18, base_channels=8, stem_channels=8),
    in_channels=64, data_preprocessor=dict(augment=dict(crop_size=64)),
    heads=dict(patch=dict(), slide=dict(), patient=dict()))
train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                        pin_memory=False, sampler=dict(patients_per_batch=2))
"""
# 2 patients per class: 1 val patient per class -> 7 patients, 14 slides,
# 42 patches in the val split.
VAL = dict(patch=42, slide=14, patient=7)


def _load_tool():
    spec = importlib.util.spec_from_file_location('hlss_tools_explain', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


explain_tool = _load_tool()


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('explain')
    data = root / 'data'
    make_synthetic_srh(str(data), patients_per_class=2, slides=2, patches=3,
                       size=96)
    split_file = data / 'meta' / 'train_val_split.json'
    splits = json.loads(split_file.read_text())
    splits['empty'] = []
    split_file.write_text(json.dumps(splits))
    config = root / 'hlss_tiny_test.py'
    config.write_text(TINY)

    init_default_scope('mmpretrain')
    cfg = Config.fromfile(str(config))
    torch.manual_seed(0)  # explain()'s untrained model uses seed 0 too
    model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.state_dict()
    plain = root / 'plain.pth'
    torch.save({'state_dict': state, 'meta': {}}, str(plain))
    # a trained-looking model in the layout tools/train.py writes
    torch.manual_seed(1)
    trained = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point()
               else v for k, v in state.items()}
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    train_style = root / 'epoch_1.pth'
    torch.save({
        'meta': {'epoch': 1, 'iter': 1, 'cfg': cfg.pretty_text, 'seed': 0,
                 'experiment_name': 'test', 'time': 'now',
                 'mmengine_version': '0.10.7',
                 'dataset_meta': {'classes': ['hgg']}},
        'state_dict': trained,
        'message_hub': {'log_scalars': {}, 'runtime_info': {'epoch': 1},
                        'resumed_keys': {'epoch': True}},
        'optimizer': optim.state_dict(),
        'param_schedulers': [{'start_factor': 0.01, 'last_step': 0}],
    }, str(train_style))
    return dict(root=root, data=str(data), config=str(config),
                plain=str(plain), train_style=str(train_style), state=state)


def _check_result(result, top_k, num_attributes=None):
    assert set(result['levels']) == {'patch', 'slide', 'patient'}
    assert result['synthetic'] is True
    for level, entry in result['levels'].items():
        names = entry['attributes']
        for item in entry['items']:
            assert {'id', 'class', 'num_patches', 'top_k', 'similarity',
                    'untrained_top_k', 'ground_truth'} <= set(item)
            assert len(item['top_k']) == len(item['similarity']) == top_k
            assert all(n in names for n, _ in item['top_k'])
            scores = [s for _, s in item['top_k']]
            assert scores == sorted(scores, reverse=True)
            if result['ranking'] == 'raw':
                assert item['similarity'] == scores
            assert set(item['ground_truth']) <= set(names)
        d = entry['distinct_top_k']
        assert d['items'] == len(entry['items'])
        for model in ('trained', 'untrained'):
            assert 1 <= d[model] <= d['items']
            assert d['fraction'][model] == d[model] / d['items']
            assert d['at_least_half'][model] == (d[model] >= d['items'] / 2)
        p = entry['precision_at_k']
        for key in ('trained', 'untrained', 'chance'):
            assert 0.0 <= p[key] <= 1.0, (level, key, p)
        assert 0 < p['items_with_ground_truth'] <= p['items']
        assert p['items'] == len(entry['items'])


def test_cli_writes_report_for_a_train_style_checkpoint(setup):
    out = setup['root'] / 'out'
    run = subprocess.run(
        [sys.executable, TOOL, setup['config'], setup['train_style'],
         '--data-root', setup['data'], '--split', 'val', '--top-k', '3',
         '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'patch: precision@3 trained' in run.stdout
    assert 'ranking relative (z-score per attribute over 42 patches of ' \
        "split 'train')" in run.stdout
    assert 'distinct top-3 sets / items: trained' in run.stdout
    result = json.loads((out / 'explain.json').read_text())
    _check_result(result, 3)
    levels = result['levels']
    assert {lv: len(e['items']) for lv, e in levels.items()} == VAL
    assert result['num_patches'] == 42 and result['view_size'] == 96
    assert {it['num_patches'] for it in levels['slide']['items']} == {3}
    assert {it['num_patches'] for it in levels['patient']['items']} == {6}
    # slides belong to their patient; ids are the dataset's
    for item in levels['slide']['items']:
        patient = item['id'].split('/')[0]
        assert patient in {it['id'] for it in levels['patient']['items']}
    md = (out / 'explain.md').read_text()
    for heading in ('## patch (42 items', '## slide (14 items',
                    '## patient (7 items', '| level | precision@3 trained',
                    'distinct top-3 sets trained | distinct top-3 sets '
                    'untrained |', '| top-3 (z-score; similarity) |'):
        assert heading in md
    for level, entry in levels.items():
        d, p = entry['distinct_top_k'], entry['precision_at_k']
        assert (f'| {level} | {p["trained"]:.3f} | {p["untrained"]:.3f} | '
                f'{p["chance"]:.3f} | ') in md
        assert (f'{d["trained"]}/{d["items"]} = '
                f'{d["fraction"]["trained"]:.3f}') in md
    assert md.count('| SYN') >= 8  # example rows of slides and patients


def test_untrained_equals_a_checkpoint_of_the_seed_0_init(setup):
    # the plain checkpoint is the seed-0 init itself, so both rankings agree
    result = explain(setup['config'], setup['plain'],
                     data_root=setup['data'], top_k=2, max_patches=10)
    _check_result(result, 2)
    assert result['num_patches'] == 10
    for level, entry in result['levels'].items():
        for item in entry['items']:
            assert [n for n, _ in item['top_k']] == item['untrained_top_k']
        p = entry['precision_at_k']
        assert p['trained'] == p['untrained']
    assert sum(it['num_patches']
               for it in result['levels']['patient']['items']) == 10


def test_relative_ranking_is_item_specific_where_raw_is_not(setup):
    # the real SRH attribute heads: raw similarities rank the same few
    # attributes first for (almost) every item; against the train split's
    # statistics every level gets distinct top-5 sets for most items
    raw = explain(setup['config'], setup['train_style'],
                  data_root=setup['data'], ranking='raw')
    relative = explain(setup['config'], setup['train_style'],
                       data_root=setup['data'],
                       max_reference_patches=30)
    _check_result(raw, 5)
    _check_result(relative, 5)
    assert raw['reference'] is None
    assert relative['reference'] == dict(split='train', num_patches=30)
    for level in ('patch', 'slide', 'patient'):
        d_raw = raw['levels'][level]['distinct_top_k']
        d_rel = relative['levels'][level]['distinct_top_k']
        for model in ('trained', 'untrained'):
            assert d_rel['at_least_half'][model], (level, model, d_rel)
            assert d_rel[model] > d_raw[model], (level, model)
        # the same similarities underneath: only the order changes
        for it_raw, it_rel in zip(raw['levels'][level]['items'],
                                  relative['levels'][level]['items']):
            assert it_raw['id'] == it_rel['id']
            assert max(it_rel['similarity']) <= it_raw['top_k'][0][1] + 1e-6
    assert raw['levels']['patch']['distinct_top_k']['trained'] <= 3


def test_without_ground_truth_only_rankings_are_reported(setup, tmp_path):
    # the same patches, but no meta/synthetic_attributes.json
    plain_root = tmp_path / 'srh'
    (plain_root / 'meta').mkdir(parents=True)
    for name in ('opensrh.json', 'train_val_split.json'):
        shutil.copy(osp.join(setup['data'], 'meta', name),
                    plain_root / 'meta' / name)
    os.symlink(osp.join(setup['data'], 'studies'), plain_root / 'studies')
    result = explain(setup['config'], setup['plain'],
                     data_root=str(plain_root), top_k=2, max_patches=6)
    assert result['synthetic'] is False
    for entry in result['levels'].values():
        assert entry['precision_at_k'] is None
        assert all(it['ground_truth'] is None for it in entry['items'])
        assert all(len(it['top_k']) == 2 for it in entry['items'])
    md = '\n'.join(markdown_lines(result, heading='##'))
    assert md.startswith('## Attribute explanations')
    assert 'precision@' not in md and '### patient' in md
    assert 'no ground truth' in '\n'.join(summary_lines(result))


def _tool_error(argv):
    with pytest.raises(SystemExit) as exc:
        explain_tool.main(argv)
    return str(exc.value.code)


def test_checkpoint_not_matching_config_lists_keys(setup):
    state = dict(setup['state'])
    state.pop('heads.slide.attribute_proj.bias')
    state['heads.tissue.weight'] = torch.zeros(2)
    path = setup['root'] / 'mismatch.pth'
    torch.save({'state_dict': state}, str(path))
    msg = _tool_error([setup['config'], str(path), '--data-root',
                       setup['data']])
    assert "missing keys: ['heads.slide.attribute_proj.bias']" in msg
    assert "unexpected keys: ['heads.tissue.weight']" in msg


def test_empty_split_non_hlss_config_and_large_top_k(setup):
    msg = _tool_error([setup['config'], setup['plain'], '--data-root',
                       setup['data'], '--split', 'empty'])
    assert "split 'empty'" in msg and 'no patches' in msg
    msg = _tool_error([SIMCLR, setup['plain'], '--data-root', setup['data']])
    assert 'explain needs HLSS text-aligned heads' in msg
    assert 'SimCLR' in msg
    msg = _tool_error([setup['config'], setup['plain'], '--data-root',
                       setup['data'], '--max-reference-patches', '1'])
    assert 'max_reference_patches must be an int >= 2' in msg
    msg = _tool_error([setup['config'], setup['plain'], '--data-root',
                       setup['data'], '--reference-split', 'empty'])
    assert "split 'empty'" in msg and 'no patches' in msg
    msg = _tool_error([setup['config'], setup['plain'], '--data-root',
                       setup['data'], '--top-k', '129'])
    assert 'top_k=129 is larger than the number of attributes' in msg
    assert "'slide': 128" in msg


@pytest.fixture(scope='module')
def fast(setup):
    """A tiny hlss_srh_fast.py config and a checkpoint after one training
    step through SRHBatchAugmentPreprocessor (its augmentation step is
    saved in ``data_preprocessor._extra_state``)."""
    config = setup['root'] / 'hlss_fast_test.py'
    config.write_text(FAST)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(str(config))
    cfg.train_dataloader.dataset.data_root = setup['data']
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train_step(next(iter(loader)), optim)
    path = setup['root'] / 'fast_epoch_1.pth'
    torch.save({'meta': {'epoch': 1}, 'state_dict': model.state_dict()},
               str(path))
    return dict(config=str(config), checkpoint=str(path), cfg=cfg)


def test_fast_config_views_are_the_preprocessors_eval_output(
        setup, fast, tmp_path, monkeypatch):
    # record what the backbones of explain's two models receive
    seen, build_models = {}, explain_driver.build_models

    def spy(*args, **kwargs):
        trained, untrained, meta = build_models(*args, **kwargs)
        for name, model in (('trained', trained), ('untrained', untrained)):
            seen[name] = dict(model=model, inputs=[])
            model.backbone.register_forward_pre_hook(
                lambda _, args, store=seen[name]['inputs']: store.append(
                    args[0].detach().clone()))
        return trained, untrained, meta

    monkeypatch.setattr(explain_driver, 'build_models', spy)
    out = tmp_path / 'out'
    result = explain_tool.main([
        fast['config'], fast['checkpoint'], '--data-root', setup['data'],
        '--top-k', '3', '--max-patches', '10', '--out', str(out)])
    assert (out / 'explain.md').is_file() and (out / 'explain.json').is_file()
    _check_result(result, 3)
    assert result['num_patches'] == 10 and result['view_size'] == 64

    # independently: the raw TIFFs, a central 64 px window of the 96 px
    # patches, then the preprocessor's own evaluation path
    patches = result['levels']['patch']['items']
    raw = np.stack([tifffile.imread(osp.join(setup['data'], it['id']))
                    for it in patches])[:, :, 16:80, 16:80]
    assert raw.dtype == np.uint16 and raw.shape == (10, 2, 64, 64)
    pre_cfg = fast['cfg'].model.data_preprocessor
    pre = MODELS.build(pre_cfg)
    want = pre(dict(inputs=torch.from_numpy(raw), data_samples=None),
               training=False)['inputs']
    for name in ('trained', 'untrained'):
        # the 10 explained patches, then the relative ranking's reference
        # bank: the 42 patches of the train split
        got = torch.cat(seen[name]['inputs'])
        assert got.shape == (10 + 42, 3, 64, 64)
        assert torch.equal(got[:10], want), name
    assert result['ranking'] == 'relative'
    assert result['reference'] == dict(split='train', num_patches=42)
    # ... which is the SRH third channel, then mean / std normalisation
    ch2, ch3 = raw[:, 0].astype(np.float64), raw[:, 1].astype(np.float64)
    unit = np.clip(np.stack([ch3 - ch2 + 5000, ch2, ch3], 1) / 65535, 0, 1)
    mean = np.array(pre_cfg.mean)[None, :, None, None]
    std = np.array(pre_cfg.std)[None, :, None, None]
    np.testing.assert_allclose(want.numpy(), (unit - mean) / std, atol=1e-5)
    # the reported patch similarities come from those views, the ranking
    # scores are their z-scores against the bank's views
    model = seen['trained']['model']
    head = model.heads['patch']
    bank_views = torch.cat(seen['trained']['inputs'])[10:]
    with torch.no_grad():
        sims, bank = (head(model.extract_feat(x))[1][:, :head.num_attributes]
                      .double().numpy() for x in (want, bank_views))
    z = (sims - bank.mean(0)) / bank.std(0)
    column = {n: a for a, n in enumerate(
        result['levels']['patch']['attributes'])}
    top1 = [column[it['top_k'][0][0]] for it in patches]
    np.testing.assert_allclose([it['similarity'][0] for it in patches],
                               sims[range(10), top1], atol=1e-5)
    np.testing.assert_allclose([it['top_k'][0][1] for it in patches],
                               z.max(1), rtol=1e-4, atol=1e-4)


def test_cfg_options_reach_the_explained_config(monkeypatch, tmp_path):
    """--cfg-options is merged into the config before explain() runs, as
    in tools/train.py; without it the path is passed on unchanged."""
    import hlss_plugin.interpret as interpret
    seen = []

    def fake_explain(cfg, checkpoint, **kwargs):
        seen.append(cfg)
        raise interpret.ExplainError('stop here')

    monkeypatch.setattr(interpret, 'explain', fake_explain)
    config = osp.join(REPO, 'configs', 'mmpretrain', 'hlss_srh_tiny.py')
    msg = _tool_error([config, 'ckpt.pth', '--cfg-options',
                       'train_dataloader.dataset.split_file=meta/x.json'])
    assert msg.endswith('error: stop here')
    cfg = seen[-1]
    assert cfg.train_dataloader.dataset.split_file == 'meta/x.json'
    assert cfg.filename == config
    _tool_error([config, 'ckpt.pth'])
    assert seen[-1] == config
    msg = _tool_error([str(tmp_path / 'none.py'), 'ckpt.pth',
                       '--cfg-options', 'a=1'])
    assert "config file" in msg and 'none.py' in msg and 'not found' in msg
