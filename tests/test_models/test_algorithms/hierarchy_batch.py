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


def sgd_first_last_loss(model, steps=5, lr=0.05):
    """Train ``model`` with SGD on one :func:`grid_batch` for ``steps``
    steps (through its data preprocessor); the first and last total loss."""
    views, samples = grid_batch()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        data = model.data_preprocessor(dict(inputs=views,
                                            data_samples=samples), True)
        loss = sum(model(**data, mode='loss').values())
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    return first, loss.item()
