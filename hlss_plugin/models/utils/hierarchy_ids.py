"""Read the hierarchy ids of a batch from its data samples."""
from typing import Dict, List

import torch
from mmpretrain.structures import DataSample


def hierarchy_ids(data_samples: List[DataSample], id_keys: Dict[str, str],
                  device=None) -> Dict[str, torch.Tensor]:
    """Collect each level's integer group id from the data samples.

    Args:
        data_samples (list[DataSample]): ``N`` samples of a batch.
        id_keys (dict): ``{level: field}``, e.g. ``{'slide': 'slide_idx'}``;
            a field may be a data field (``PackInputs(algorithm_keys=...)``)
            or metainfo (``sample_idx``).
        device: Device of the returned tensors.

    Returns:
        dict[str, Tensor]: ``{level: (N,) int64}``.

    Raises:
        ValueError: If a sample lacks a field, naming the level and the fix.

    Example:
        >>> s = DataSample(metainfo=dict(sample_idx=3)).set_field(1, 'slide_idx')
        >>> hierarchy_ids([s], {'patch': 'sample_idx', 'slide': 'slide_idx'})
        {'patch': tensor([3]), 'slide': tensor([1])}
    """
    if not data_samples:
        raise ValueError('the batch has no data samples; HLSS needs them to '
                         'read the patient/slide/patch ids.')
    out = {}
    for level, key in id_keys.items():
        values = []
        for sample in data_samples:
            value = sample.get(key, None)
            if value is None:
                raise ValueError(
                    f'level {level!r} needs {key!r} in every data sample, '
                    f'but the batch has none. Use a hierarchical dataset '
                    f'(e.g. OpenSRHDataset) and PackInputs(algorithm_keys='
                    f'["patient", "slide", "patient_idx", "slide_idx"]), or '
                    f'remove the level from the model\'s heads.')
            values.append(int(value))
        out[level] = torch.tensor(values, dtype=torch.int64, device=device)
    return out
