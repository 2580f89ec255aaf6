"""Our batched augmentation ops against kornia's, with the same parameters.

For every op of :mod:`hlss_plugin.augmentation.ops` that kornia (>= 0.9)
can run with given per-sample parameters, this draws the parameters once
with our op's ``sample`` (a seeded generator), applies our batched
``apply`` and the kornia function to the same ``(B, C, S, S)`` batch, and
reports

* ``max_abs``: the largest absolute difference of the two outputs (and
  ``frac_diff``, the fraction of values that differ by more than 1e-5),
* ``ours_ms`` / ``kornia_ms``: wall time per batch on the CPU (best of
  ``--repeats`` rounds, ours and kornia in turn, after one warm-up call
  each), for each ``--threads`` setting.

Kornia calls (all with explicit parameters, nothing drawn inside kornia):

=======================  ==============================================
our op                   kornia
=======================  ==============================================
``resize`` (bicubic)     ``geometry.transform.resize``
``hflip`` / ``vflip``    ``geometry.transform.hflip`` / ``vflip``
``gaussian_noise``       ``RandomGaussianNoise.apply_transform`` + clamp
                         (ours clips to ``[0, 1]``)
jitter brightness        ``enhance.adjust_brightness_accumulative``
jitter contrast          ``enhance.adjust_contrast_with_mean_subtraction``
jitter saturation        ``enhance.adjust_saturation_with_gray_subtraction``
jitter hue               ``enhance.adjust_hue`` (shift x 2 pi radians)
``autocontrast``         ``RandomAutoContrast.apply_transform``
``solarize``             ``enhance.solarize``
``sharpness``            ``enhance.sharpness``
``gaussian_blur``        ``filters.gaussian_blur2d`` (reflect border)
``affine`` (nearest)     ``geometry.transform.affine`` (same matrix)
``random_resized_crop``  ``geometry.transform.crop_by_indices``
``erasing``              ``RandomErasing.apply_transform``
=======================  ==============================================

Usage (the record in docs/augmentation.md)::

    nice python tools/benchmarks/benchmark_kornia_augment.py \\
        --batch 64 --sizes 224 64 --threads 1 2 --repeats 3

``--check-only`` runs the equivalence check alone (no timing). Needs
kornia: ``pip install -e '.[kornia]'`` (an optional extra of hlss_plugin).
"""
import argparse
import json
import math
import os.path as osp
import platform
import sys
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

with warnings.catch_warnings(record=True) as _startup:
    warnings.simplefilter('always')
    from hlss_plugin.apis import filter_startup_warnings
filter_startup_warnings(_startup)

import torch  # noqa: E402

from hlss_plugin.augmentation import ops as A  # noqa: E402

#: Values differing by more than this count in ``frac_diff``.
DIFF_TOL = 1e-5


def _corners(box: torch.Tensor) -> torch.Tensor:
    """``(B, 4)`` ``[top, left, h, w]`` -> kornia ``(B, 4, 2)`` inclusive
    ``(x, y)`` corners TL, TR, BR, BL."""
    top, left, bh, bw = box.float().unbind(1)
    right, bottom = left + bw - 1, top + bh - 1
    return torch.stack((torch.stack((left, top), 1),
                        torch.stack((right, top), 1),
                        torch.stack((right, bottom), 1),
                        torch.stack((left, bottom), 1)), 1)


def _affine_matrix(params: Dict[str, torch.Tensor], h: int,
                   w: int) -> torch.Tensor:
    """Forward ``(B, 2, 3)`` pixel matrix of our ``affine`` params.

    Ours maps output to input as ``in - c = A (out - c - t)`` with
    ``A = [[cos, sin], [-sin, cos]]`` and ``c`` the image centre, so the
    forward map is ``out = A^-1 in + (c - A^-1 c + t)``.
    """
    rad = torch.deg2rad(params['angle'].double())
    cos, sin = torch.cos(rad), torch.sin(rad)
    tx, ty = params['translate'].double().unbind(1)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    # A^-1 = [[cos, -sin], [sin, cos]]
    ox = cx - (cos * cx - sin * cy) + tx
    oy = cy - (sin * cx + cos * cy) + ty
    return torch.stack((torch.stack((cos, -sin, ox), 1),
                        torch.stack((sin, cos, oy), 1)), 1).float()


def build_cases(kornia) -> List[dict]:
    """One dict per compared op: ``name``, ``op`` (ours), ``fn(x, params)``
    (ours batched), ``kornia(x, params)``, ``resizes`` (input is larger
    than the output), ``params(op, gen, n, shape)`` (defaults to
    ``op.sample``)."""
    KT = kornia.geometry.transform
    KE = kornia.enhance
    KA = kornia.augmentation

    noise_mod = KA.RandomGaussianNoise(p=1.0)
    auto_mod = KA.RandomAutoContrast(p=1.0)
    erase_mod = KA.RandomErasing(p=1.0)

    def jitter(part: str, kfn: Callable, scale: float = 1.0) -> dict:
        op = A.ColorJitter(**{k: (0.2 if k == part else 0)
                              for k in ('brightness', 'contrast',
                                        'saturation')},
                           hue=0.1 if part == 'hue' else 0)
        ours = {'brightness': A.adjust_brightness,
                'contrast': A.adjust_contrast,
                'saturation': A.adjust_saturation,
                'hue': A.adjust_hue}[part]
        return dict(name=f'color_jitter.{part}', op=op,
                    fn=lambda x, p: ours(x, p[part]),
                    kornia=lambda x, p: kfn(x, p[part] * scale))

    def erase(x, p):
        top, left, bh, bw = p['box'].unbind(1)
        kp = dict(xs=left, ys=top, widths=bw, heights=bh,
                  values=torch.zeros(x.shape[0]))
        return erase_mod.apply_transform(x, kp, erase_mod.flags)

    crop = A.RandomResizedCrop(size=1)  # size set per run
    resize = A.Resize(size=1, interpolation='bicubic')
    return [
        dict(name='resize', op=resize, resizes=True,
             fn=lambda x, p: resize.apply(x, p),
             kornia=lambda x, p: KT.resize(
                 x, resize.size, interpolation='bicubic',
                 align_corners=False, antialias=False)),
        dict(name='hflip', op=A.HorizontalFlip(),
             fn=lambda x, p: A.HorizontalFlip().apply(x, p),
             kornia=lambda x, p: KT.hflip(x)),
        dict(name='vflip', op=A.VerticalFlip(),
             fn=lambda x, p: A.VerticalFlip().apply(x, p),
             kornia=lambda x, p: KT.vflip(x)),
        dict(name='gaussian_noise', op=A.GaussianNoise(),
             fn=lambda x, p: A.GaussianNoise().apply(x, p),
             kornia=lambda x, p: noise_mod.apply_transform(
                 x, {'gaussian_noise': p['noise']},
                 noise_mod.flags).clamp_(0.0, 1.0)),
        jitter('brightness', KE.adjust_brightness_accumulative),
        jitter('contrast', KE.adjust_contrast_with_mean_subtraction),
        jitter('saturation', KE.adjust_saturation_with_gray_subtraction),
        jitter('hue', KE.adjust_hue, scale=2 * math.pi),
        dict(name='autocontrast', op=A.RandomAutocontrast(),
             fn=lambda x, p: A.RandomAutocontrast().apply(x, p),
             kornia=lambda x, p: auto_mod.apply_transform(x, {},
                                                          auto_mod.flags)),
        dict(name='solarize', op=A.RandomSolarize(0.2),
             fn=lambda x, p: A.RandomSolarize(0.2).apply(x, p),
             kornia=lambda x, p: KE.solarize(x, 0.2)),
        dict(name='sharpness', op=A.RandomSharpness(2.0),
             fn=lambda x, p: A.RandomSharpness(2.0).apply(x, p),
             kornia=lambda x, p: KE.sharpness(x, p['factor'])),
        dict(name='gaussian_blur', op=A.GaussianBlur(5, (0.5, 2.0)),
             fn=lambda x, p: A.GaussianBlur(5, (0.5, 2.0)).apply(x, p),
             kornia=lambda x, p: kornia.filters.gaussian_blur2d(
                 x, (5, 5), p['sigma'].view(-1, 1).expand(-1, 2),
                 border_type='reflect')),
        dict(name='affine', op=A.RandomAffine(10.0, (0.1, 0.1)),
             fn=lambda x, p: A.RandomAffine(10.0, (0.1, 0.1)).apply(x, p),
             kornia=lambda x, p: KT.affine(
                 x, _affine_matrix(p, *x.shape[-2:]), mode='nearest',
                 padding_mode='zeros', align_corners=False)),
        dict(name='random_resized_crop', op=crop, resizes=True,
             fn=lambda x, p: crop.apply(x, p),
             kornia=lambda x, p: KT.crop_by_indices(
                 x, _corners(p['box']), size=crop.size,
                 interpolation='bilinear', align_corners=False,
                 antialias=False)),
        dict(name='erasing', op=A.RandomErasing(),
             fn=lambda x, p: A.RandomErasing().apply(x, p), kornia=erase),
    ]


def best_ms(fns: Sequence[Callable], repeats: int) -> List[float]:
    """Best wall time in ms of each of ``fns`` over ``repeats`` rounds.

    The functions run in turn within each round (after one warm-up call
    each), in reversed order every other round, so that a load change on a
    shared machine, or running first, hits both sides alike.
    """
    for fn in fns:
        fn()
    best = [float('inf')] * len(fns)
    for r in range(repeats):
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            start = time.perf_counter()
            fns[i]()
            best[i] = min(best[i], time.perf_counter() - start)
    return [t * 1e3 for t in best]


def run(batch: int = 64, sizes: Sequence[int] = (224, 64),
        channels: int = 3, threads: Sequence[int] = (1, 2),
        repeats: int = 3, seed: int = 0, time_it: bool = True,
        only: Optional[Sequence[str]] = None) -> List[dict]:
    """Compare every case for each size; one result row per (op, size).

    Args:
        batch (int): Batch size ``B``. Defaults to 64.
        sizes (Sequence[int]): Output sizes ``S`` (inputs of the resizing
            ops are ``round(S * 300 / 224)``). Defaults to ``(224, 64)``.
        channels (int): ``C`` (3: the colour ops need RGB). Defaults to 3.
        threads (Sequence[int]): ``torch.set_num_threads`` settings to time.
        repeats (int): Timed runs per measurement (best is kept).
        seed (int): Seed of the parameter / image generator.
        time_it (bool): Also time the ops. Defaults to True.
        only (Sequence[str], optional): Case names to run.

    Returns:
        list[dict]: ``op``, ``size``, ``max_abs``, ``frac_diff`` and, when
        timed, ``ours_ms_t{n}`` / ``kornia_ms_t{n}`` per thread count.

    Example:
        >>> rows = run(batch=2, sizes=(16,), time_it=False)  # doctest: +SKIP
        >>> rows[0]['op'], rows[0]['max_abs']  # doctest: +SKIP
        ('resize', 0.0)
    """
    import kornia
    rows = []
    threads_before = torch.get_num_threads()
    try:
        for size in sizes:
            for case in build_cases(kornia):
                if only and case['name'] not in only:
                    continue
                op = case['op']
                if case.get('resizes'):
                    op.size = (size, size)
                in_size = round(size * 300 / 224) if case.get(
                    'resizes') else size
                gen = torch.Generator().manual_seed(seed)
                x = torch.rand(batch, channels, in_size, in_size,
                               generator=gen)
                params = op.sample(gen, batch, x.shape[1:])
                ours = case['fn'](x, params)
                theirs = case['kornia'](x, params)
                diff = (ours - theirs).abs()
                row = dict(op=case['name'], size=size,
                           max_abs=float(diff.max()),
                           frac_diff=float((diff > DIFF_TOL).float().mean()))
                if time_it:
                    for n in threads:
                        torch.set_num_threads(n)
                        ours_ms, kornia_ms = best_ms(
                            (lambda: case['fn'](x, params),
                             lambda: case['kornia'](x, params)), repeats)
                        row[f'ours_ms_t{n}'] = ours_ms
                        row[f'kornia_ms_t{n}'] = kornia_ms
                rows.append(row)
    finally:
        torch.set_num_threads(threads_before)
    return rows


def format_table(rows: List[dict], threads: Sequence[int]) -> str:
    """A Markdown table of :func:`run`'s rows."""
    head = ['op', 'S', 'max abs diff', 'frac > 1e-5']
    for n in threads:
        head += [f'ours ms ({n}t)', f'kornia ms ({n}t)']
    lines = ['| ' + ' | '.join(head) + ' |',
             '|' + '---|' * len(head)]
    for r in rows:
        cells = [r['op'], str(r['size']), f'{r["max_abs"]:.2e}',
                 f'{r["frac_diff"]:.1e}']
        for n in threads:
            if f'ours_ms_t{n}' in r:
                cells += [f'{r[f"ours_ms_t{n}"]:.1f}',
                          f'{r[f"kornia_ms_t{n}"]:.1f}']
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=int, default=64)
    parser.add_argument('--sizes', type=int, nargs='+', default=[224, 64])
    parser.add_argument('--channels', type=int, default=3)
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--ops', nargs='+', default=None,
                        help='only these cases (names as in the table)')
    parser.add_argument('--check-only', action='store_true',
                        help='equivalence only, no timing')
    parser.add_argument('--json', default=None,
                        help='also write the rows to this JSON file')
    args = parser.parse_args(argv)
    for name in ('batch', 'channels', 'repeats'):
        if getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import kornia
    except ImportError:
        print('benchmark_kornia_augment: kornia is not installed; run '
              '`pip install -c requirements/constraints.txt kornia==0.9.0`.',
              file=sys.stderr)
        return 1
    rows = run(args.batch, args.sizes, args.channels, args.threads,
               args.repeats, args.seed, not args.check_only, args.ops)
    print(f'# torch {torch.__version__}, kornia {kornia.__version__}, '
          f'{platform.processor() or platform.machine()}, B={args.batch}, '
          f'C={args.channels}, best of {args.repeats}')
    print(format_table(rows, [] if args.check_only else args.threads))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
