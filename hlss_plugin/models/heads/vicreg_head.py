"""VICReg loss (Lightly's ``VICRegLoss``) as an MMPretrain two-view head."""
import inspect
import math
from typing import Optional

import torch
from lightly.loss import VICRegLoss
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS

_WEIGHTS = ('lambda_param', 'mu_param', 'nu_param')


def _check_loss_cfg(loss: dict) -> dict:
    """Validate the keyword arguments of ``lightly.loss.VICRegLoss``."""
    if not isinstance(loss, dict):
        raise ValueError(f'VICRegHead: loss must be a dict of '
                         f'lightly.loss.VICRegLoss arguments, got {loss!r}.')
    legal = [name for name in inspect.signature(VICRegLoss).parameters]
    unknown = sorted(set(loss) - set(legal))
    if unknown:
        raise ValueError(f'VICRegHead: unknown loss argument(s) {unknown}; '
                         f'lightly.loss.VICRegLoss accepts {legal}.')
    for name in _WEIGHTS:
        if name in loss:
            value = loss[name]
            if isinstance(value, bool) or \
                    not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value < 0:
                raise ValueError(f'VICRegHead: loss.{name} must be a finite '
                                 f'number >= 0, got {value!r}.')
    if 'eps' in loss:
        eps = loss['eps']
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or \
                not math.isfinite(eps) or eps <= 0:
            raise ValueError(f'VICRegHead: loss.eps must be a finite number '
                             f'> 0 (it keeps the std differentiable at 0), '
                             f'got {eps!r}.')
    if not isinstance(loss.get('gather_distributed', False), bool):
        raise ValueError('VICRegHead: loss.gather_distributed must be True '
                         f'or False, got {loss["gather_distributed"]!r}.')
    return dict(loss)


@MODELS.register_module()
class VICRegHead(BaseModule):
    """Variance-Invariance-Covariance regularisation of two views.

    Bardes et al., "VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning", ICLR 2022
    (https://arxiv.org/abs/2105.04906). The loss is Lightly's
    ``lightly.loss.VICRegLoss`` (not re-implemented here); this head only
    validates its arguments and inputs, so it plugs into MMPretrain's
    generic two-view algorithm ``BarlowTwins``
    (``z1, z2 = neck(backbone(view_1))[0], neck(backbone(view_2))[0]``;
    ``loss = head.loss(z1, z2)``). For embeddings ``Z, Z'`` of shape
    ``(N, D)``::

        loss = lambda * mean((Z - Z')**2)
             + mu * (v(Z) + v(Z')) / 2
             + nu * (c(Z) + c(Z'))
        v(Z) = mean_j relu(1 - sqrt(Var_n(Z[:, j]) + eps))   (unbiased Var)
        c(Z) = sum_{i != j} Cov(Z)[i, j]**2 / D              (unbiased Cov)

    (the variance term is averaged over the two branches as in the authors'
    released code, which Lightly follows).

    **Distributed** (``gather_distributed=True`` with a process group of
    more than one rank): Lightly computes the invariance term on the local
    batch and gathers ``Z, Z'`` from all ranks (its gather's backward
    all-reduces the gradient) for the variance and covariance terms, so
    these are global. With equal per-rank batches, DDP's gradient averaging
    then gives the gradient of single-process training on the concatenated
    batch (checked by the 2-process gloo test); the returned *value* differs
    between ranks only through the local invariance term.

    Args:
        loss (dict): Keyword arguments of ``lightly.loss.VICRegLoss``:
            ``lambda_param`` (invariance weight, default 25),
            ``mu_param`` (variance weight, default 25), ``nu_param``
            (covariance weight, default 1), ``gather_distributed``
            (default False), ``eps`` (default 1e-4). Defaults to ``{}``.
        init_cfg (dict, optional): Unused (the head has no parameters).

    Attributes:
        method_name (str): ``'vicreg'``, the name ``HLSSAuxWrapper`` gives
            the loss (``loss_vicreg``).

    Shapes:
        - z1, z2: ``(N, D)`` (or ``(N, ..., D)``), ``N >= 2``, same shape.
        - output: scalar.

    Example:
        >>> head = VICRegHead(loss=dict(lambda_param=25, mu_param=25,
        ...                             nu_param=1))
        >>> head.loss(torch.randn(8, 16), torch.randn(8, 16)).shape
        torch.Size([])
    """

    #: The method this head turns its algorithm into: ``HLSSAuxWrapper``
    #: logs the inner loss as ``loss_vicreg`` (not ``loss_barlowtwins``,
    #: after the generic ``BarlowTwins`` algorithm type that runs it).
    method_name = 'vicreg'

    def __init__(self, loss: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.loss_module = VICRegLoss(**_check_loss_cfg(
            {} if loss is None else loss))

    def loss(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """VICReg loss of two views' embeddings.

        Args:
            z1 (Tensor): ``(N, D)`` embeddings of the first views.
            z2 (Tensor): ``(N, D)`` embeddings of the second views.

        Returns:
            Tensor: Scalar loss.
        """
        for name, z in (('z1', z1), ('z2', z2)):
            if not isinstance(z, torch.Tensor) or z.dim() < 2 or \
                    not z.is_floating_point():
                got = (tuple(z.shape), z.dtype) if isinstance(
                    z, torch.Tensor) else type(z).__name__
                raise ValueError(f'VICRegHead: {name} must be a floating '
                                 f'point tensor (N, D), got {got}.')
        if z1.shape != z2.shape:
            raise ValueError(f'VICRegHead: z1 and z2 must have the same '
                             f'shape, got {tuple(z1.shape)} and '
                             f'{tuple(z2.shape)}.')
        if z1.shape[0] < 2:
            raise ValueError(f'VICRegHead: the variance and covariance terms '
                             f'need a batch of N >= 2 embeddings, got '
                             f'N = {z1.shape[0]}; raise the batch size.')
        return self.loss_module(z1, z2)
