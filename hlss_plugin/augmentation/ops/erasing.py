"""Random erasing with torchvision's box sampling, batched."""
import torch

from .augment_op import AugmentOp, as_batch, unbatch
from .op_args import Range, number_pair
from .random_draws import randint_below, sample_boxes


class RandomErasing(AugmentOp):
    """Set a random rectangle to ``value`` (torchvision ``RandomErasing``).

    Box area fraction uniform in ``scale`` and log-uniform aspect in
    ``ratio``; up to 10 tries for a box strictly smaller than the image,
    otherwise nothing is erased. Params: ``box`` ``(n, 4)`` int
    ``[top, left, height, width]`` (height 0 = no erasing).

    Args:
        scale (tuple): Erased area fraction. Defaults to ``(0.02, 0.33)``.
        ratio (tuple): Aspect range. Defaults to ``(0.3, 3.3)``.
        value (float): Fill value. Defaults to 0.

    Example:
        >>> op = RandomErasing()
        >>> box = torch.tensor([[1, 1, 2, 2]])
        >>> op.apply(torch.ones(1, 4, 4), {'box': box})[0, 1:3, 1:3]
        tensor([[0., 0.],
                [0., 0.]])
    """

    name = 'erasing'

    def __init__(self, scale: Range = (0.02, 0.33),
                 ratio: Range = (0.3, 3.3), value: float = 0.0):
        self.scale = number_pair(scale, 'erasing scale')
        if self.scale[1] > 1:
            raise ValueError(f'erasing scale must lie in [0, 1], got '
                             f'{scale!r}.')
        self.ratio = number_pair(ratio, 'erasing ratio', low=1e-8)
        self.value = float(value)

    def sample(self, generator, n, shape):
        h, w = shape[-2:]
        bh, bw, found = sample_boxes(generator, n, h, w, self.scale,
                                     self.ratio, erasing=True)
        bh = torch.where(found, bh, torch.zeros_like(bh))
        bw = torch.where(found, bw, torch.zeros_like(bw))
        top = randint_below(generator, h - bh + 1)
        left = randint_below(generator, w - bw + 1)
        return {'box': torch.stack((top, left, bh, bw), dim=1)}

    def apply(self, img, params):
        x, single = as_batch(img)
        boxes = params['box']
        if boxes.shape[0] != x.shape[0]:
            raise ValueError(f'erasing: {boxes.shape[0]} boxes for '
                             f'{x.shape[0]} images.')
        out = x.clone()
        if x.shape[0] == 1:
            t, l, bh, bw = boxes[0].tolist()
            out[..., t:t + bh, l:l + bw] = self.value
            return unbatch(out, single)
        return unbatch(self._mask_erase(out, boxes), single)

    def apply_dense(self, img, params):
        """:meth:`apply` with no host reads: the batched mask fill also for
        ``n = 1`` (bit-exact with :meth:`apply`).

        Example:
            >>> op = RandomErasing()
            >>> box = torch.tensor([[0, 0, 1, 2]])
            >>> op.apply_dense(torch.ones(1, 2, 2), {'box': box})
            tensor([[[0., 0.],
                     [1., 1.]]])
        """
        x, single = as_batch(img)
        boxes = params['box']
        if boxes.shape[0] != x.shape[0]:
            raise ValueError(f'erasing: {boxes.shape[0]} boxes for '
                             f'{x.shape[0]} images.')
        return unbatch(self._mask_erase(x.clone(), boxes), single)

    def _mask_erase(self, out: torch.Tensor,
                    boxes: torch.Tensor) -> torch.Tensor:
        """Fill ``boxes`` ``(B, 4)`` of ``out`` ``(B, C, H, W)`` in place."""
        h, w = out.shape[-2:]
        boxes = boxes.to(out.device)
        top, left, bh, bw = (v.view(-1, 1) for v in boxes.unbind(1))
        rows = torch.arange(h, device=out.device).view(1, -1)
        cols = torch.arange(w, device=out.device).view(1, -1)
        in_r = (rows >= top) & (rows < top + bh)  # (B, H)
        in_c = (cols >= left) & (cols < left + bw)  # (B, W)
        mask = (in_r.unsqueeze(2) & in_c.unsqueeze(1)).unsqueeze(1)
        return out.masked_fill_(mask, self.value)
