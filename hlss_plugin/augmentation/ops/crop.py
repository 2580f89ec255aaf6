"""Random resized crop with torchvision's box sampling, batched."""
from typing import Tuple, Union

import torch
import torch.nn.functional as F

from .augment_op import AugmentOp, as_batch, unbatch
from .op_args import Range, number_pair, op_size
from .random_draws import generator_device, randint_below, sample_boxes


class RandomResizedCrop(AugmentOp):
    """Crop a random area/aspect box and resize it to a fixed ``size``.

    Box sampling follows torchvision's ``RandomResizedCrop`` (10 tries of
    area fraction in ``scale`` and log-uniform aspect in ``ratio``; if none
    fits, the centre crop of the clamped aspect). Resizing is bilinear with
    ``align_corners=False`` and **no antialiasing** (identical to
    ``F.interpolate(crop, size, mode='bilinear')``). Params: ``box``
    ``(n, 4)`` int ``[top, left, height, width]``.

    :meth:`sample_plain` gives plain ``size`` crops (random position or
    centre, no resizing); ``SRHAugment`` uses them when the op does not
    fire, so every view has the same size.

    Args:
        size (int | tuple): Output ``(h, w)``. Defaults to 224.
        scale (tuple): Area fraction range. Defaults to ``(0.08, 1.0)``.
        ratio (tuple): Aspect (w / h) range. Defaults to ``(3/4, 4/3)``.

    Example:
        >>> op = RandomResizedCrop(size=32)
        >>> x = torch.rand(2, 3, 64, 64)
        >>> op.apply(x, op.sample(None, 2, x.shape[1:])).shape
        torch.Size([2, 3, 32, 32])
    """

    name = 'random_resized_crop'

    def __init__(self, size: Union[int, Tuple[int, int]] = 224,
                 scale: Range = (0.08, 1.0),
                 ratio: Range = (3.0 / 4.0, 4.0 / 3.0)):
        self.size = op_size(size, 'random_resized_crop size')
        self.scale = number_pair(scale, 'random_resized_crop scale', low=1e-8)
        if self.scale[1] > 1:
            raise ValueError(f'random_resized_crop scale must lie in (0, 1], '
                             f'got {scale!r}.')
        self.ratio = number_pair(ratio, 'random_resized_crop ratio', low=1e-8)

    def output_shape(self, shape):
        return (shape[0], ) + self.size

    def sample(self, generator, n, shape):
        h, w = shape[-2:]
        bh, bw, found = sample_boxes(generator, n, h, w, self.scale,
                                     self.ratio)
        # fallback: centre crop with the aspect clamped into ``ratio``
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = w, int(round(w / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            fh, fw = h, int(round(h * self.ratio[1]))
        else:
            fh, fw = h, w
        bh = torch.where(found, bh, torch.full_like(bh, fh))
        bw = torch.where(found, bw, torch.full_like(bw, fw))
        top = randint_below(generator, h - bh + 1)
        left = randint_below(generator, w - bw + 1)
        top = torch.where(found, top, torch.full_like(top, (h - fh) // 2))
        left = torch.where(found, left, torch.full_like(left, (w - fw) // 2))
        return {'box': torch.stack((top, left, bh, bw), dim=1)}

    def sample_plain(self, generator, n, shape, random_position=True):
        """Boxes of exactly ``size`` (random position or centre).

        When the image is smaller than ``size`` in a dimension, the box
        spans that whole dimension (and ``apply`` upsamples).
        """
        h, w = shape[-2:]
        dev = generator_device(generator)
        bh, bw = min(self.size[0], h), min(self.size[1], w)
        if random_position:
            top = randint_below(generator, torch.full((n, ), h - bh + 1,
                                                      device=dev))
            left = randint_below(generator, torch.full((n, ), w - bw + 1,
                                                       device=dev))
        else:
            top = torch.full((n, ), (h - bh) // 2, device=dev)
            left = torch.full((n, ), (w - bw) // 2, device=dev)
        return {'box': torch.stack(
            (top, left, torch.full_like(top, bh), torch.full_like(top, bw)),
            dim=1)}

    def apply(self, img, params):
        x, single = as_batch(img)
        boxes = params['box']
        if boxes.shape[0] != x.shape[0]:
            raise ValueError(f'random_resized_crop: {boxes.shape[0]} boxes '
                             f'for {x.shape[0]} images.')
        oh, ow = self.size
        if x.shape[0] == 1:
            t, l, bh, bw = boxes[0].tolist()
            out = x[..., t:t + bh, l:l + bw]
            if (bh, bw) != (oh, ow):
                out = F.interpolate(out, size=(oh, ow), mode='bilinear',
                                    align_corners=False, antialias=False)
            else:
                out = out.clone()
            return unbatch(out, single)
        return unbatch(self._grid_crop(x, boxes), single)

    def apply_dense(self, img, params):
        """:meth:`apply` with no host reads: always the batched
        ``grid_sample`` crop, also for ``n = 1`` (where :meth:`apply` slices
        the box read on the host and calls ``interpolate``; the two agree up
        to float rounding, about 3e-5). For ``n > 1`` identical to
        :meth:`apply`.

        Example:
            >>> op = RandomResizedCrop(size=4)
            >>> x = torch.rand(3, 8, 8)
            >>> box = torch.tensor([[2, 2, 4, 4]])  # exactly 4 x 4: a copy
            >>> torch.allclose(op.apply_dense(x, {'box': box}),
            ...                x[:, 2:6, 2:6], atol=1e-6)
            True
        """
        x, single = as_batch(img)
        boxes = params['box']
        if boxes.shape[0] != x.shape[0]:
            raise ValueError(f'random_resized_crop: {boxes.shape[0]} boxes '
                             f'for {x.shape[0]} images.')
        return unbatch(self._grid_crop(x, boxes), single)

    def _grid_crop(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Batched crop+resize with grid_sample, matching ``interpolate``.

        Source pixel (crop-local) ``s = (d + 0.5) * box / out - 0.5``,
        clamped to ``[0, box - 1]`` as ``interpolate`` does at the edges.
        """
        b, c, h, w = x.shape
        oh, ow = self.size
        boxes = boxes.to(device=x.device, dtype=x.dtype)
        top, left, bh, bw = boxes.unbind(1)

        def coords(start, length, out, full):
            d = torch.arange(out, device=x.device, dtype=x.dtype) + 0.5
            s = d.view(1, -1) * (length / out).view(-1, 1) - 0.5
            s = torch.minimum(s.clamp(min=0.0), (length - 1).view(-1, 1))
            return (2.0 * (s + start.view(-1, 1)) + 1.0) / full - 1.0

        gy = coords(top, bh, oh, h)  # (B, oh)
        gx = coords(left, bw, ow, w)  # (B, ow)
        grid = torch.stack((gx.view(b, 1, ow).expand(b, oh, ow),
                            gy.view(b, oh, 1).expand(b, oh, ow)), dim=-1)
        return F.grid_sample(x, grid, mode='bilinear', padding_mode='border',
                             align_corners=False)
