"""HierarchicalKNNMetric (alone, through mmengine's Evaluator, under 2 gloo
processes), and the data side that feeds it: HierarchicalKNNDataset and
CenterCropTensor."""
import json
import os.path as osp
import warnings

import pytest
import torch
from mmengine.dataset import DefaultSampler
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmpretrain.registry import DATASETS, METRICS
from mmpretrain.structures import DataSample

import hlss_plugin  # noqa: F401
import hlss_plugin.datasets.hierarchical_knn_dataset  # noqa: F401
import hlss_plugin.evaluation  # noqa: F401
from hlss_plugin.datasets.transforms.center_crop_tensor import \
    CenterCropTensor
from hlss_plugin.evaluation import HierarchicalKNNMetric
from hlss_plugin.evaluation.functional import (hierarchical_metrics,
                                               knn_scores)
from hlss_plugin.synthetic import make_synthetic_srh
from tests.dist_helpers import run_distributed

CLASSES = ('a', 'b', 'c')
KEYS = [f'{lv}/{k}' for lv in ('patch', 'slide', 'patient')
        for k in ('acc', 'top2', 'top3', 'mca', 'map')]


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    init_default_scope('mmpretrain')  # Evaluator builds from the registry


def make_sample(i, num_bank=40, as_datasample=False, label_of=None):
    """Sample ``i`` as the model's predict output: bank for i < num_bank.

    Patients of 4 patches (2 slides of 2), class = patient % 3; features
    are a class direction plus noise seeded by ``i`` (so every process
    builds the same sample).
    """
    patient = i // 4
    label = patient % 3 if label_of is None else label_of(patient)
    g = torch.Generator().manual_seed(1000 + i)
    feats = torch.randn(8, generator=g)
    feats[label] += 2.0
    fields = dict(feats=feats, slide_idx=i // 2, patient_idx=patient,
                  knn_role='bank' if i < num_bank else 'query', knn_id=i,
                  patient=f'P{patient}', slide=f'P{patient}/{i // 2 % 2}')
    sample = DataSample().set_gt_label(label)
    for key, value in fields.items():
        sample.set_field(value, key)
    sample.set_metainfo(dict(img_path=f'/x/{i}.tif'))
    return sample if as_datasample else sample.to_dict()


def evaluate(samples, classes=CLASSES, **kwargs):
    metric = HierarchicalKNNMetric(**dict(dict(k=5), **kwargs))
    metric.dataset_meta = dict(classes=classes)
    metric.process(None, samples)
    return metric, metric.evaluate(len(samples))


def test_metric_matches_the_functional_pipeline():
    n, num_bank = 70, 40
    samples = [make_sample(i, num_bank, as_datasample=True)
               for i in range(n)]
    evaluator = Evaluator([dict(type='HierarchicalKNNMetric', k=5,
                                temperature=0.1)])
    evaluator.dataset_meta = dict(classes=CLASSES)
    evaluator.process(samples[:33])
    evaluator.process(samples[33:])
    metrics = evaluator.evaluate(n)
    assert sorted(metrics) == sorted(KEYS)

    dicts = [s.to_dict() for s in samples]
    feats = torch.stack([d['feats'] for d in dicts])
    labels = torch.tensor([int(d['gt_label']) for d in dicts])
    q = slice(num_bank, n)
    scores = knn_scores(feats[q], feats[:num_bank], labels[:num_bank], 3,
                        k=5, temperature=0.1)
    ref = hierarchical_metrics(
        scores, labels[q], torch.tensor([d['slide_idx'] for d in dicts])[q],
        torch.tensor([d['patient_idx'] for d in dicts])[q], 3)
    for key in KEYS:
        level, name = key.split('/')
        assert metrics[key] == pytest.approx(ref[level][name]), key

    metric = evaluator.metrics[0]
    last = metric.last_results
    assert last['classes'] == list(CLASSES)
    assert last['missing_classes'] == []
    assert last['levels']['patient']['confusion'] == \
        ref['patient']['confusion']
    assert last['query_scores'].shape == (n - num_bank, 3)
    assert last['ids'].tolist() == list(range(n))
    assert last['img_path'][3] == '/x/3.tif' and last['patient'][3] == 'P0'
    assert last['roles'].count('bank') == num_bank


def test_duplicates_and_order_do_not_change_metrics():
    samples = [make_sample(i) for i in range(61)]
    _, base = evaluate(samples)
    padded = samples + samples[:3] + samples[45:47]  # DDP-style padding
    shuffled = padded[::-1]
    metric, again = evaluate(shuffled)
    assert again == base
    assert len(metric.last_results['ids']) == 61


def test_prefix_and_levels():
    samples = [make_sample(i) for i in range(60)]
    _, metrics = evaluate(samples, prefix='knn', levels=('patient', ),
                          topk=(1, 5))
    assert sorted(metrics) == ['knn/patient/acc', 'knn/patient/map',
                               'knn/patient/mca', 'knn/patient/top5']


def test_query_class_missing_from_the_bank_warns():
    # bank: patients 0..9 (classes 0, 1 only); queries: patients 10..14
    samples = [make_sample(i, label_of=lambda p: p % 2 if p < 10 else p % 3)
               for i in range(60)]
    with pytest.warns(UserWarning, match=r"query class\(es\) \['c'\]"):
        metric, metrics = evaluate(samples)
    assert metric.last_results['missing_classes'] == ['c']
    assert sorted(metrics) == sorted(KEYS)


@pytest.mark.parametrize('role,match', [
    ('bank', r'the query \(val\) split is empty'),
    ('query', 'the bank split is empty'),
])
def test_empty_split_is_an_error(role, match):
    samples = [make_sample(i) for i in range(20)]
    for s in samples:
        s['knn_role'] = role
    with pytest.raises(ValueError, match=match):
        evaluate(samples)


@pytest.mark.parametrize('key, named', [
    (None, 'k=13 (val_evaluator.k in training, test_evaluator.k in '
           'tools/test.py)'),
    ('val_evaluator', 'val_evaluator.k=13'),
    ('test_evaluator', 'test_evaluator.k=13'),
])
def test_k_larger_than_bank_is_clipped_with_a_warning(key, named):
    """One rule (training, tools/test.py, tools/benchmarks/benchmark.py): k is clipped
    to the bank size, with a warning naming the key actually in use."""
    samples = [make_sample(i, num_bank=12) for i in range(20)]
    metric = HierarchicalKNNMetric(k=13)
    metric.evaluator_key = key
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process(None, samples)
    with pytest.warns(UserWarning) as record:
        clipped = metric.evaluate(len(samples))
    msg = str(record[0].message)
    assert msg.startswith(f'HierarchicalKNNMetric: {named} is larger than '
                          f'the kNN bank (12 patches); using k=12')
    assert f'--cfg-options {key or "val_evaluator"}.k=12' in msg
    assert metric.last_results['k'] == 12
    # k = bank size gives the very same metrics, without a warning
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        exact_metric, exact = evaluate(samples, k=12)
    assert clipped == exact and exact_metric.last_results['k'] == 12
    assert metric.effective_k(12) == 12 and metric.effective_k(99) == 13


def test_bad_samples_and_arguments():
    broken = make_sample(0)
    del broken['knn_id']
    with pytest.raises(ValueError, match=r"lacks \['knn_id'\].*PackInputs"):
        HierarchicalKNNMetric().process(None, [broken])
    with pytest.raises(ValueError, match='levels'):
        HierarchicalKNNMetric(levels=('tile', ))
    with pytest.raises(ValueError, match='k must be'):
        HierarchicalKNNMetric(k=0)
    assert isinstance(METRICS.build(dict(type='HierarchicalKNNMetric')),
                      HierarchicalKNNMetric)


# ------------------------------------------------------------ distributed
N_DDP = 23  # odd: DefaultSampler pads rank 1 with a repeat of sample 0


def _ddp_worker(rank, world_size, out_dir):
    init_default_scope('mmpretrain')
    dataset = list(range(N_DDP))
    sampler = DefaultSampler(dataset, shuffle=False, seed=0)
    mine = list(sampler)
    assert len(mine) == -(-N_DDP // world_size)
    results = {}
    # size=N_DDP: mmengine's collect_results drops the padding itself;
    # size=padded total: the padding reaches compute_metrics, which must
    # count every knn_id once.
    for name, size in (('mmengine', N_DDP),
                       ('padded', len(mine) * world_size)):
        evaluator = Evaluator([dict(type='HierarchicalKNNMetric', k=4)])
        evaluator.dataset_meta = dict(classes=CLASSES)
        for start in range(0, len(mine), 4):
            evaluator.process([make_sample(i, num_bank=12, as_datasample=True)
                               for i in mine[start:start + 4]])
        results[name] = evaluator.evaluate(size)
    assert results['mmengine'] == results['padded']
    if rank == 0:
        with open(osp.join(out_dir, f'ws{world_size}.json'), 'w') as f:
            json.dump(results['mmengine'], f)


def test_one_and_two_processes_give_identical_metrics(tmp_path):
    run_distributed(_ddp_worker, 1, str(tmp_path))
    run_distributed(_ddp_worker, 2, str(tmp_path))
    with open(tmp_path / 'ws1.json') as f:
        one = json.load(f)
    with open(tmp_path / 'ws2.json') as f:
        two = json.load(f)
    assert sorted(one) == sorted(KEYS)
    assert one == two
    _, direct = evaluate([make_sample(i, num_bank=12) for i in range(N_DDP)],
                         k=4)
    assert one == pytest.approx(direct)


# --------------------------------------------------------------- data side
@pytest.fixture(scope='module')
def srh_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('knn_data'))
    make_synthetic_srh(root, patients_per_class=2, slides=2, patches=2,
                       size=40, seed=0)
    return root


def _knn_dataset(root, **query):
    return DATASETS.build(dict(
        type='HierarchicalKNNDataset',
        bank=dict(type='OpenSRHDataset', data_root=root, split='train'),
        query=dict(dict(type='OpenSRHDataset', data_root=root, split='val'),
                   **query),
        pipeline=[dict(type='LoadSRHPatch'), dict(type='SRHThirdChannel'),
                  dict(type='CenterCropTensor', size=32),
                  dict(type='PackInputs', algorithm_keys=[
                      'patient', 'slide', 'patient_idx', 'slide_idx',
                      'knn_role', 'knn_id'])]))


def test_knn_dataset_concatenates_bank_then_query(srh_root):
    ds = _knn_dataset(srh_root)
    bank = DATASETS.build(dict(type='OpenSRHDataset', data_root=srh_root,
                               split='train'))
    query = DATASETS.build(dict(type='OpenSRHDataset', data_root=srh_root,
                                split='val'))
    assert len(ds) == len(bank) + len(query)
    assert ds.split_names == {'bank': 'train', 'query': 'val'}
    assert ds.metainfo['classes'] == bank.metainfo['classes']
    items = [ds.get_data_info(i) for i in range(len(ds))]
    assert [it['knn_id'] for it in items] == list(range(len(ds)))
    assert [it['knn_role'] for it in items] == \
        ['bank'] * len(bank) + ['query'] * len(query)
    assert [it['img_path'] for it in items] == \
        [bank.get_data_info(i)['img_path'] for i in range(len(bank))] + \
        [query.get_data_info(i)['img_path'] for i in range(len(query))]
    # patient / slide ids are unique over both splits
    for key, name in (('patient_idx', 'patient'), ('slide_idx', 'slide')):
        pairs = {(it[key], it[name]) for it in items}
        assert len({p[0] for p in pairs}) == len({p[1] for p in pairs})
    packed = ds[len(ds) - 1]
    assert packed['inputs'].shape == (3, 32, 32)
    sample = packed['data_samples']
    assert sample.knn_role == 'query' and sample.knn_id == len(ds) - 1
    assert sample.patient_idx == items[-1]['patient_idx']


def test_knn_dataset_refuses_different_classes(srh_root):
    with pytest.raises(ValueError, match='different classes'):
        _knn_dataset(srh_root, metainfo=dict(
            classes=['hgg', 'lgg', 'mening', 'metast', 'normal', 'pitui',
                     'schwan', 'extra']))
    with pytest.raises(ValueError, match='dataset config dict'):
        DATASETS.build(dict(type='HierarchicalKNNDataset', bank='train',
                            query=dict(type='OpenSRHDataset')))


def test_center_crop_tensor_matches_torchvision():
    from torchvision.transforms.functional import center_crop
    img = torch.rand(3, 11, 8)
    for size in (4, (5, 3), (11, 8)):
        out = CenterCropTensor(size)(dict(img=img))
        hw = (size, size) if isinstance(size, int) else size
        assert torch.equal(out['img'], center_crop(img, list(hw)))
        assert out['img_shape'] == hw
    with pytest.raises(ValueError, match='cannot crop .* of size 11x8'):
        CenterCropTensor(9)(dict(img=img))
    with pytest.raises(ValueError, match='size must be'):
        CenterCropTensor(0)


# ------------------------------------------------------------ aggregation
def _crafted_samples():
    """Bank and queries whose kNN votes (k=9) are known exactly.

    Bank: 4 x u (class 0), 5 x u (class 1), 9 x v (class 2), 9 x w
    (class 0). Queries: slide 0 of patient 0 (class 2) holds v (votes only
    class 2) and u twice (votes 4:5 for classes 0:1); slide 1 of patient 1
    (class 0) holds w. Summed L1 votes put slide 0 in class 1, the
    published softmax-of-L1 votes in class 2.
    """
    u, v, w = torch.eye(3)
    bank = [(u, 0)] * 4 + [(u, 1)] * 5 + [(v, 2)] * 9 + [(w, 0)] * 9
    queries = [(v, 2, 0), (u, 2, 0), (u, 2, 0), (w, 0, 1)]
    samples = []
    for i, (feats, label) in enumerate(bank):
        samples.append((feats, label, 100 + i, 'bank'))
    for feats, label, patient in queries:
        samples.append((feats, label, patient, 'query'))
    out = []
    for i, (feats, label, patient, role) in enumerate(samples):
        sample = DataSample().set_gt_label(label)
        for key, value in dict(feats=feats, slide_idx=patient,
                               patient_idx=patient, knn_role=role,
                               knn_id=i).items():
            sample.set_field(value, key)
        out.append(sample)
    return out


def test_published_aggregation_end_to_end():
    samples = _crafted_samples()
    metrics, lasts = {}, {}
    for aggregation in ('sum', 'published'):
        evaluator = Evaluator([dict(type='HierarchicalKNNMetric', k=9,
                                    temperature=0.07,
                                    aggregation=aggregation)])
        evaluator.dataset_meta = dict(classes=CLASSES)
        evaluator.process(samples[:20])
        evaluator.process(samples[20:])
        metrics[aggregation] = evaluator.evaluate(len(samples))
        lasts[aggregation] = evaluator.metrics[0].last_results
    # the patch votes are exact: (0, 0, 9e^{1/T}), (4, 5, 0) e^{1/T}, ...
    scores = lasts['published']['query_scores']
    norm = scores / scores.sum(1, keepdim=True)
    expected = torch.tensor([[0., 0., 1.], [4 / 9, 5 / 9, 0.],
                             [4 / 9, 5 / 9, 0.], [1., 0., 0.]],
                            dtype=norm.dtype)
    assert torch.allclose(norm, expected, atol=1e-12)
    for aggregation, group_acc in (('sum', 50.0), ('published', 100.0)):
        m = metrics[aggregation]
        assert m['patch/acc'] == 50.0
        assert m['slide/acc'] == group_acc and m['patient/acc'] == group_acc
        assert lasts[aggregation]['aggregation'] == aggregation
    assert lasts['sum']['levels']['slide']['confusion'][2] == [0, 1, 0]
    assert lasts['published']['levels']['slide']['confusion'][2] == \
        [0, 0, 1]

    # and the metric equals the functional pipeline in 'published' mode
    dicts = [s.to_dict() for s in samples]
    is_query = torch.tensor([d['knn_role'] == 'query' for d in dicts])
    feats = torch.stack([d['feats'] for d in dicts])
    labels = torch.tensor([int(d['gt_label']) for d in dicts])
    groups = torch.tensor([d['slide_idx'] for d in dicts])
    ref_scores = knn_scores(feats[is_query], feats[~is_query],
                            labels[~is_query], 3, k=9, temperature=0.07)
    ref = hierarchical_metrics(ref_scores, labels[is_query],
                               groups[is_query], groups[is_query], 3,
                               aggregation='published')
    for key in KEYS:
        level, name = key.split('/')
        assert metrics['published'][key] == pytest.approx(
            ref[level][name]), key


def test_unknown_aggregation_is_refused():
    with pytest.raises(ValueError, match=r"HierarchicalKNNMetric: "
                       r"aggregation must be one of \('sum', 'published'\), "
                       r"got 'softmax'"):
        HierarchicalKNNMetric(aggregation='softmax')
    assert HierarchicalKNNMetric().aggregation == 'sum'
