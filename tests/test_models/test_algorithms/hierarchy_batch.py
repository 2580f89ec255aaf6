"""A P x S x K hierarchical batch for the algorithm tests."""
import torch
from mmpretrain.structures import DataSample


def grid_batch(P=2, S=2, K=2, V=2, size=32, offset=0):
    """Views and data samples of a P x S x K batch (ids from the grid)."""
    samples = []
    for p in range(P):
        for s in range(S):
            for k in range(K):
                sample = DataSample(metainfo=dict(
                    sample_idx=offset + (p * S + s) * K + k))
                sample.set_field(offset + p, 'patient_idx')
                sample.set_field(offset + p * S + s, 'slide_idx')
                samples.append(sample)
    gen = torch.Generator().manual_seed(1)
    views = [torch.rand(P * S * K, 3, size, size, generator=gen)
             for _ in range(V)]
    return views, samples
