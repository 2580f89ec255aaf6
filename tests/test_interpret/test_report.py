"""The console summary and the markdown / JSON report state, per level,
precision@k of the model, of the untrained model and of chance, and the
fraction of items with a distinct top-k set (fake results, no model)."""
import copy
import json

from hlss_plugin.interpret import markdown_lines, summary_lines, write_report


def _item(i, top, untrained, truth):
    # ranking scores 2, 1, ...; similarities 0.3, 0.2, ...
    return {'id': f'SYN000{i}', 'class': 'hgg' if i % 2 else 'lgg',
            'num_patches': 3,
            'top_k': [[n, 2.0 - j] for j, n in enumerate(top)],
            'similarity': [0.3 - 0.1 * j for j in range(len(top))],
            'untrained_top_k': untrained, 'ground_truth': truth}


def _result(synthetic=True, ranking='relative'):
    patch = [_item(0, ['a', 'b'], ['a', 'b'], ['a']),
             _item(1, ['b', 'a'], ['a', 'b'], ['c']),
             _item(2, ['c', 'd'], ['a', 'b'], ['d']),
             _item(3, ['d', 'e'], ['a', 'c'], [])]
    patient = [_item(4, ['a', 'b'], ['a', 'b'], ['a']),
               _item(5, ['a', 'b'], ['a', 'b'], ['b'])]
    levels = dict(
        patch=dict(attributes=list('abcde'), items=patch,
                   distinct_top_k=dict(trained=3, untrained=2),
                   precision_at_k=dict(trained=0.42, untrained=0.1,
                                       chance=0.04,
                                       items_with_ground_truth=3,
                                       items=4)),
        patient=dict(attributes=list('abcde'), items=patient,
                     distinct_top_k=dict(trained=1, untrained=1),
                     precision_at_k=dict(trained=0.5, untrained=0.5,
                                         chance=0.2,
                                         items_with_ground_truth=2,
                                         items=2)))
    if not synthetic:
        for entry in levels.values():
            entry['precision_at_k'] = None
            for item in entry['items']:
                item['ground_truth'] = None
    return dict(config='c.py', checkpoint='/ck/epoch_1.pth',
                data_root='/data', split='val', top_k=2, view_size=96,
                num_patches=10, synthetic=synthetic, threshold=0.5,
                ranking=ranking,
                reference=(dict(split='train', num_patches=168)
                           if ranking == 'relative' else None),
                levels=levels)


def test_summary_states_precision_and_distinct_fractions():
    lines = summary_lines(_result())
    assert lines[0] == (
        "explained 10 patches of split 'val' (/data), top-2, ranking "
        "relative (z-score per attribute over 168 patches of split "
        "'train')")
    assert lines[1] == (
        '  patch: precision@2 trained 0.420, untrained 0.100, chance 0.040 '
        '(3/4 items with ground truth); distinct top-2 sets / items: '
        'trained 3/4 = 0.750 (>= half: yes), untrained 2/4 = 0.500 '
        '(>= half: yes)')
    assert lines[2].endswith('distinct top-2 sets / items: trained 1/2 = '
                             '0.500 (>= half: yes), untrained 1/2 = 0.500 '
                             '(>= half: yes)')
    plain = summary_lines(_result(synthetic=False, ranking='raw'))
    assert plain[0].endswith('ranking raw (similarity)')
    assert plain[1] == ('  patch: 4 items, distinct top-2 sets / items: '
                        'trained 3/4 = 0.750 (>= half: yes), untrained 2/4 '
                        '= 0.500 (>= half: yes) (no ground truth: not '
                        'synthetic data)')


def test_markdown_table_has_precision_chance_and_distinct_columns():
    md = markdown_lines(_result())
    assert ('| level | precision@2 trained | untrained | chance | items with'
            ' truth | distinct top-2 sets trained | distinct top-2 sets '
            'untrained |') in md
    assert '|---|---|---|---|---|---|---|' in md
    assert ('| patch | 0.420 | 0.100 | 0.040 | 3/4 | 3/4 = 0.750 (>= half: '
            'yes) | 2/4 = 0.500 (>= half: yes) |') in md
    assert ('| patient | 0.500 | 0.500 | 0.200 | 2/2 | 1/2 = 0.500 (>= '
            'half: yes) | 1/2 = 0.500 (>= half: yes) |') in md
    text = '\n'.join(md)
    assert "- ranking: relative (z-score per attribute over 168 patches of " \
        "split 'train')" in text
    # example rows: z-score and similarity of every top attribute
    assert '| top-2 (z-score; similarity) | ground truth |' in text
    assert '| SYN0000 | lgg | a (+2.00; 0.30), b (+1.00; 0.20) | a |' in text
    assert '| SYN0003 | hgg | d (+2.00; 0.30), e (+1.00; 0.20) | (none) |' \
        in text


def test_markdown_without_ground_truth_or_with_raw_ranking():
    md = '\n'.join(markdown_lines(_result(synthetic=False), heading='##'))
    assert 'precision@' not in md and 'chance' not in md
    assert ('| level | distinct top-2 sets trained | distinct top-2 sets '
            'untrained |\n|---|---|---|\n| patch | 3/4 = 0.750 (>= half: '
            'yes) | 2/4 = 0.500 (>= half: yes) |') in md
    raw = '\n'.join(markdown_lines(_result(ranking='raw')))
    assert '- ranking: raw (similarity)' in raw
    assert '| top-2 (similarity) |' in raw
    assert '| SYN0000 | lgg | a (0.30), b (0.20) | a |' in raw
    # a level where fewer than half the items differ
    result = _result()
    result['levels']['patch']['distinct_top_k'] = dict(trained=1,
                                                       untrained=1)
    assert '| patch | 0.420 | 0.100 | 0.040 | 3/4 | 1/4 = 0.250 (>= half: ' \
        'no) | 1/4 = 0.250 (>= half: no) |' in markdown_lines(result)


def test_write_report_files(tmp_path):
    result = _result()
    md_path, json_path = write_report(copy.deepcopy(result),
                                      str(tmp_path / 'out'))
    md = open(md_path, encoding='utf-8').read()
    assert '| patch | 0.420 | 0.100 | 0.040 | 3/4 | 3/4 = 0.750' in md
    assert json.load(open(json_path, encoding='utf-8')) == result
