"""Render one synthetic two-channel SRH patch from morphological attributes.

The picture is built from a few vectorised layers and stays within numpy:

- a lipid-rich neuropil background with myelinated fibres (bright, thin,
  oriented streaks in CH2) and slow tissue heterogeneity,
- cells from a point process (uniform sheets, cohesive clusters, concentric
  whorls; thinned so nuclei barely overlap) with protein-rich cytoplasm (a
  Gaussian-blurred cell map in CH3) and elliptical nuclei (bright in CH3,
  lipid-poor in CH2) whose size, shape, orientation and brightness follow
  the attributes; cells may sit just outside the patch and show partly,
- fascicle and whorl textures of protein-rich cell processes in CH3,
- vessels as tubes along level lines of a smooth random field (dark lumen,
  protein-rich wall, elongated endothelial nuclei),
- necrosis as smooth, low-texture, acellular regions with nuclear debris,
- fine tissue speckle, a slide-wide gain from ``signal`` and camera noise.

CH2 (channel 0, 2845 cm^-1) is lipid-weighted and CH3 (channel 1,
2930 cm^-1) protein-weighted, as in OpenSRH. The pixel size is fixed (about
the OpenSRH scale), so ``size`` sets the field of view, not the zoom.

Random textures are white noise filtered in Fourier space; only the
frequencies a filter passes are drawn, which keeps a 300 x 300 patch at a
few milliseconds.
"""
from functools import lru_cache
from typing import Mapping, Tuple

import numpy as np

from .morphology import ATTRIBUTE_NAMES, as_vector

#: Channel index of the lipid-weighted CH2 image.
CH2 = 0
#: Channel index of the protein-weighted CH3 image.
CH3 = 1

_COUNTS_PER_UNIT = 20000.0  # relative intensity 1.0 -> counts at gain 1
_DARK_OFFSET = 1500.0  # detector offset in counts
_MARGIN = 12  # px beyond each patch edge where cells may sit
_MAX_SEMI_AXIS = 14.0  # px, caps the rare giant nuclei

Shape = Tuple[int, int]


def render_srh_patch(attributes: Mapping[str, float],
                     rng: np.random.Generator,
                     size: int = 300) -> np.ndarray:
    """Render one synthetic SRH patch.

    Args:
        attributes (Mapping[str, float]): A value in ``[0, 1]`` for every
            name in :data:`~hlss_plugin.synthetic.morphology.ATTRIBUTE_NAMES`
            (see :data:`~hlss_plugin.synthetic.morphology.ATTRIBUTES`).
        rng (np.random.Generator): Source of randomness (cell positions,
            textures, noise). The same attributes and generator state give
            the same image.
        size (int): Height and width in pixels, at least 32. Defaults to 300
            (the OpenSRH patch size).

    Returns:
        np.ndarray: ``(2, size, size)`` uint16 image; channel 0 is CH2
        (lipid), channel 1 is CH3 (protein). Tissue lies between a few
        thousand and about 40000 counts.

    Raises:
        ValueError: If an attribute is missing, unknown or out of range, or
            ``size`` is not an integer >= 32.

    Example:
        >>> from hlss_plugin.synthetic.morphology import as_dict, class_profile
        >>> img = render_srh_patch(as_dict(class_profile('hgg')),
        ...                        np.random.default_rng(0), size=64)
        >>> img.shape, img.dtype
        ((2, 64, 64), dtype('uint16'))
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) \
            or size < 32:
        raise ValueError(f'size must be an integer >= 32 pixels, got '
                         f'{size!r}; OpenSRH patches use size=300.')
    size = int(size)
    v = dict(zip(ATTRIBUTE_NAMES, as_vector(attributes).tolist()))
    shape = (size, size)
    theta = float(rng.uniform(0, np.pi))  # main orientation of the tissue
    r_mean = 3.0 + 5.0 * v['nuclear_size']

    # Neuropil: lipid-rich background and myelinated fibres.
    tissue = _smooth_field(rng, shape, sigma=30.0)
    ch2 = (0.28 + 0.30 * v['fibres']) * (1 + 0.07 * tissue)
    ch3 = (0.26 + 0.04 * v['fibres']) * (1 + 0.07 * tissue)
    fibres = _streaks(
        rng, shape, theta, 1 - v['alignment'], period=6.0, length=14.0)
    fibres = np.maximum(fibres - 0.8, 0)
    ch2 += 0.40 * v['fibres'] * fibres
    ch3 += 0.06 * v['fibres'] * fibres

    # Protein-rich cell processes: fascicles and whorls.
    spindle = v['elongation'] * v['alignment']
    if spindle > 0.05:
        bands = _streaks(
            rng, shape, theta, 0.15, period=4.0 * r_mean, length=22.0)
        ch3 += 0.10 * spindle * np.maximum(bands, 0)
    whorl_centres = _whorl_centres(rng, v, size, r_mean)
    if len(whorl_centres):
        ch3 += 0.06 * v['whorls'] * _rings(
            shape, whorl_centres, period=2.2 * r_mean)

    lumen, wall, gradient = _vessels(rng, shape, v['vascularity'])
    necrotic = _necrosis(rng, shape, v['necrosis'])
    blocked = (lumen + wall > 0.5) | (necrotic > 0.5)

    # Cells: cytoplasm first (displaces lipid-rich neuropil), then nuclei.
    cx, cy, a, b, ang, amp = _cells(rng, v, size, theta, r_mean, whorl_centres,
                                    blocked)
    body = _cell_bodies(
        size, cx, cy, sigma=r_mean * (1.0 + 0.8 * v['cytoplasm']))
    ch2 *= 1 - 0.45 * body
    ch3 += 0.30 * (0.25 + 0.75 * v['cytoplasm']) * body
    nuclei = np.minimum(_splat_ellipses(shape, cx, cy, a, b, ang, amp), 1.8)
    ch3 += 0.42 * nuclei
    ch2 *= 1 - 0.30 * np.minimum(nuclei, 1)

    if wall.any():
        vessel = np.minimum(lumen + wall, 1)
        ch2 = ch2 * (1 - vessel) + 0.10 * lumen + 0.30 * wall
        ch3 = ch3 * (1 - vessel) + 0.17 * lumen + 0.45 * wall
        endo = _splat_ellipses(
            shape, *_endothelium(rng, wall, gradient, r_mean,
                                 v['vascularity']))
        ch3 += 0.40 * np.minimum(endo, 1.5)
        ch2 *= 1 - 0.25 * np.minimum(endo, 1)

    if necrotic.any():
        ch2 = ch2 * (1 - necrotic) + necrotic * 0.24 * (1 + 0.05 * tissue)
        ch3 = ch3 * (1 - necrotic) + necrotic * 0.36 * (1 + 0.05 * tissue)
        debris = _debris(rng, necrotic)
        ch3 += 0.35 * debris
        ch2 *= 1 - 0.2 * np.minimum(debris, 1)

    # Speckle (2 x 2 blurred) and camera noise share one uniform draw.
    white = rng.random((2, size + 1, size + 1), dtype=np.float32)
    white -= np.float32(0.5)
    white *= np.float32(np.sqrt(12.0))  # unit std
    speckle = white[:, 1:, 1:] + white[:, :-1, 1:]
    speckle += white[:, 1:, :-1]
    speckle += white[:, :-1, :-1]
    speckle *= np.float32(0.5)  # unit std
    calm = 1 - 0.7 * np.maximum(necrotic, lumen)
    ch2 += 0.04 * calm * speckle[0]
    ch3 += 0.05 * calm * speckle[1]
    gain = _COUNTS_PER_UNIT * (0.70 + 0.60 * v['signal'])
    counts = np.stack([ch2, ch3])
    np.maximum(counts, 0, out=counts)
    counts *= np.float32(gain)
    counts += np.float32(_DARK_OFFSET)
    counts += white[:, :-1, :-1] * (250.0 + 0.015 * counts)
    counts += np.float32(0.5)  # round half up when truncating to integers
    return np.clip(counts, 0, 65535, out=counts).astype(np.uint16)


# --------------------------------------------------------------- fields
def _fast_len(n: int) -> int:
    """Smallest 5-smooth integer >= n (a fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@lru_cache(maxsize=8)
def _frequencies(h: int, w: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(h, 1)`` and ``(1, w // 2 + 1)`` float32 rfft2 frequencies."""
    fy = np.fft.fftfreq(h).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(w).astype(np.float32)[None, :]
    return fy, fx


@lru_cache(maxsize=16)
def _gaussian_transfer(h: int, w: int, sigma: float) -> np.ndarray:
    """rfft2-layout transfer function of a Gaussian blur (read-only)."""
    fy, fx = _frequencies(h, w)
    transfer = np.exp(-2 * np.pi**2 * sigma**2 * (fx * fx + fy * fy))
    transfer.flags.writeable = False
    return transfer


def _filtered_noise(rng: np.random.Generator, shape: Shape,
                    transfer: np.ndarray) -> np.ndarray:
    """White noise shaped by ``transfer`` (rfft2 layout), zero mean, unit std.

    Only frequencies where the filter passes more than 1e-3 are drawn, and
    the inverse transform skips the all-zero high-frequency columns.
    """
    support = np.flatnonzero(transfer > 1e-3)
    re_im = rng.standard_normal((support.size, 2), dtype=np.float32)
    spectrum = np.zeros(transfer.shape, np.complex64)
    spectrum.flat[support] = (
        re_im.view(np.complex64)[:, 0] * transfer.flat[support])
    spectrum.flat[0] = 0  # zero mean
    cols = int((support % transfer.shape[1]).max()) + 1 if support.size else 1
    columns = np.fft.ifft(spectrum[:, :cols], axis=0)
    field = np.fft.irfft(columns, n=shape[1], axis=1)
    std = float(field.std())
    return field / std if std > 0 else field


def _smooth_field(rng: np.random.Generator, shape: Shape,
                  sigma: float) -> np.ndarray:
    """Gaussian random field with correlation length ``sigma`` px."""
    return _filtered_noise(rng, shape, _gaussian_transfer(*shape, sigma))


def _streaks(rng: np.random.Generator, shape: Shape, theta: float,
             spread: float, period: float, length: float) -> np.ndarray:
    """Unit-std field of parallel streaks running along angle ``theta``.

    Energy sits at spatial frequency ``1 / period`` across the streaks and
    below ``1 / length`` along them; ``spread`` in ``[0, 1]`` fans three
    orientations over up to 90 degrees (crossing, wavy fibres); below 0.15
    one orientation is used.
    """
    fy, fx = _frequencies(*shape)
    k0, bandwidth = 1.0 / period, 0.35 / period
    transfer = None
    fan = (-0.5, 0.0, 0.5) if spread > 0.15 else (0.0, )
    for offset in fan:
        angle = theta + spread * offset * np.pi / 2
        along = fx * np.float32(np.cos(angle)) + fy * np.float32(np.sin(angle))
        across = np.abs(fy * np.float32(np.cos(angle)) -
                        fx * np.float32(np.sin(angle)))
        part = np.exp(
            np.float32(-2 * np.pi**2 * length**2) * along * along -
            (across - np.float32(k0))**2 * np.float32(0.5 / bandwidth**2))
        transfer = part if transfer is None else np.maximum(transfer, part)
    return _filtered_noise(rng, shape, transfer)


def _rings(shape: Shape, centres: np.ndarray, period: float) -> np.ndarray:
    """Concentric onion-skin texture around each whorl centre, in [0, 1]."""
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    out = np.zeros(shape, np.float32)
    for x0, y0, radius in centres:
        rho = np.sqrt((xx - x0)**2 + (yy - y0)**2).astype(np.float32)
        envelope = np.exp(-(rho / np.float32(radius))**2)
        out += envelope * (0.5 +
                           0.5 * np.cos(rho * np.float32(2 * np.pi / period)))
    return np.minimum(out, 1)


def _vessels(rng: np.random.Generator, shape: Shape, vascularity: float):
    """Soft lumen and wall masks and the field gradient ``(gy, gx)``.

    Vessels follow the level line ``f = c`` of a smooth field ``f``: a lower
    level ``c`` at higher vascularity gives more and longer vessels, whose
    walls also thicken (microvascular proliferation).
    """
    field = _smooth_field(rng, shape, sigma=18.0)
    gy, gx = np.gradient(field)
    level = 3.2 - 3.0 * vascularity
    dist = np.abs(field - level) / (np.hypot(gx, gy) + 1e-3)  # px
    lumen_w = 1.0 + 3.0 * vascularity
    wall_w = 1.5 + 3.5 * vascularity
    lumen = _soft_below(dist, lumen_w)
    wall = _soft_below(dist, lumen_w + wall_w) - lumen
    return lumen, wall, (gy, gx)


def _necrosis(rng: np.random.Generator, shape: Shape,
              necrosis: float) -> np.ndarray:
    """Soft necrosis mask covering about ``0.6 * necrosis`` of the patch."""
    fraction = 0.6 * max(necrosis - 0.05, 0.0) / 0.95
    if fraction < 0.005:
        return np.zeros(shape, np.float32)
    field = _smooth_field(rng, shape, sigma=22.0)
    flat = field.ravel()
    k = int((1 - fraction) * (flat.size - 1))
    threshold = np.partition(flat, k)[k]
    return np.clip((field - threshold) * np.float32(1 / 0.3) + 0.5, 0, 1)


def _soft_below(x: np.ndarray, edge: float) -> np.ndarray:
    """1 where ``x < edge - 1``, 0 where ``x > edge + 1``, linear between."""
    return np.clip((np.float32(edge) - x) * np.float32(0.5) + 0.5, 0, 1)


# ---------------------------------------------------------------- cells
def _whorl_centres(rng: np.random.Generator, v: dict, size: int,
                   r_mean: float) -> np.ndarray:
    """``(K, 3)`` whorl centre x, y (patch px) and radius; K may be 0."""
    if v['whorls'] < 0.15:
        return np.zeros((0, 3))
    expected = _cell_density(v) * (size + 2 * _MARGIN)**2 * 0.85 * v['whorls']
    radius = 40.0
    per_whorl = 0.45 * radius**2 / r_mean**2
    count = max(1, int(rng.poisson(expected / per_whorl)))
    xy = rng.uniform(-_MARGIN, size + _MARGIN, size=(count, 2))
    radii = radius * rng.uniform(0.7, 1.3, size=(count, 1))
    return np.hstack([xy, radii])


def _cell_density(v: dict) -> float:
    """Cells per px^2 before thinning."""
    return (1.5 + 40.0 * v['cellularity']**1.5) / 1e4


def _cells(rng: np.random.Generator, v: dict, size: int, theta: float,
           r_mean: float, whorl_centres: np.ndarray, blocked: np.ndarray):
    """Sample cell centres and nuclear ellipses.

    Cells cover the patch plus a margin of ``_MARGIN`` px; cells in blocked
    areas (vessels, necrosis) are dropped.

    Returns:
        tuple: ``cx, cy`` (N,) centres in patch px, ``a, b`` (N,) semi-axes
        (px, ``a >= b``), ``ang`` (N,) major-axis angle (rad), ``amp`` (N,)
        chromatin brightness.
    """
    lo, hi = -_MARGIN, size + _MARGIN
    total = rng.poisson(_cell_density(v) * (hi - lo)**2)
    n_whorl = (
        rng.binomial(total, 0.85 * v['whorls']) if len(whorl_centres) else 0)
    n_cluster = rng.binomial(total - n_whorl, 0.9 * v['clustering'])
    n_sheet = total - n_whorl - n_cluster

    # Sheets: Poisson points, loosely oriented along theta.
    sx, sy = rng.uniform(lo, hi, size=(2, n_sheet))
    sang = theta + rng.normal(
        0, 0.15 + 1.6 * (1 - v['alignment']), size=n_sheet)

    # Cohesive clusters: Gaussian nests of about 30 cells.
    n_nests = max(1, int(round(n_cluster / 30)))
    nests = rng.uniform(lo, hi, size=(n_nests, 2))
    which = rng.integers(0, n_nests, size=n_cluster)
    spread = 0.8 * r_mean * np.sqrt(max(n_cluster / n_nests, 1.0))
    kx = nests[which, 0] + rng.normal(0, spread, size=n_cluster)
    ky = nests[which, 1] + rng.normal(0, spread, size=n_cluster)
    kang = rng.uniform(0, np.pi, size=n_cluster)

    # Whorls: cells wrapped tangentially around the whorl centres.
    if n_whorl:
        which = rng.integers(0, len(whorl_centres), size=n_whorl)
        x0, y0, radius = whorl_centres[which].T
        rho = radius * np.sqrt(rng.uniform(0.02, 1.0, size=n_whorl))
        phi = rng.uniform(0, 2 * np.pi, size=n_whorl)
        wx, wy = x0 + rho * np.cos(phi), y0 + rho * np.sin(phi)
        wang = phi + np.pi / 2 + rng.normal(0, 0.15, size=n_whorl)
    else:
        wx = wy = wang = np.zeros(0)

    kind = np.repeat([0, 1, 2], [n_sheet, n_cluster, wx.size])
    cx = np.concatenate([sx, kx, wx])
    cy = np.concatenate([sy, ky, wy])
    ang = np.concatenate([sang, kang, wang])
    n = cx.size
    pleo = v['pleomorphism']
    radius = r_mean * np.exp(rng.normal(0, 0.06 + 0.40 * pleo, size=n))
    aspect = (1 + 2.4 * v['elongation']) * np.exp(
        rng.normal(0, 0.05 + 0.25 * pleo, size=n))
    aspect = np.where(kind == 1, 1 + 0.3 * (aspect - 1), aspect)  # plump
    aspect = np.where(kind == 2, 1.6 * aspect, aspect)  # spindled
    aspect = np.maximum(aspect, 1.0)
    a = np.minimum(radius * np.sqrt(aspect), _MAX_SEMI_AXIS)
    b = np.minimum(radius / np.sqrt(aspect), a)
    amp = np.exp(rng.normal(0, 0.05 + 0.30 * pleo, size=n))

    keep = _matern_thinning(rng, cx, cy, 1.2 * r_mean)
    ix = np.clip(cx.astype(np.int64), 0, size - 1)
    iy = np.clip(cy.astype(np.int64), 0, size - 1)
    keep &= ~blocked[iy, ix]
    return cx[keep], cy[keep], a[keep], b[keep], ang[keep], amp[keep]


def _matern_thinning(rng: np.random.Generator, x: np.ndarray, y: np.ndarray,
                     min_dist: float) -> np.ndarray:
    """Keep points with no lower-marked neighbour closer than ``min_dist``."""
    mark = rng.uniform(size=x.size)
    if x.size < 2:
        return np.ones(x.size, bool)
    d2 = (x[:, None] - x[None, :])**2 + (y[:, None] - y[None, :])**2
    clash = (d2 < min_dist**2) & (mark[None, :] < mark[:, None])
    return ~clash.any(axis=1)


def _cell_bodies(size: int, cx: np.ndarray, cy: np.ndarray,
                 sigma: float) -> np.ndarray:
    """Cytoplasm map in [0, 1): Gaussian-blurred cell centres, saturating.

    The map is smooth (``sigma`` >= 3 px), so it is blurred on a padded
    half-resolution grid (no wrap-around from the far edge) and brought back
    to full resolution by linear interpolation.
    """
    if cx.size == 0:
        return np.zeros((size, size), np.float32)
    pad = 2 * int(np.ceil((_MARGIN + 2 * sigma) / 2))  # even, full-res px
    n = _fast_len((size + 2 * pad) // 2 + 2)  # half-res grid
    gx = np.clip(np.rint((cx + pad) / 2).astype(np.int64), 0, n - 1)
    gy = np.clip(np.rint((cy + pad) / 2).astype(np.int64), 0, n - 1)
    impulses = np.bincount(gy * n + gx, minlength=n * n).reshape(n, n)
    blurred = np.fft.irfft2(
        np.fft.rfft2(impulses.astype(np.float32)) *
        _gaussian_transfer(n, n, sigma / 2),
        s=(n, n))
    # Full-res pixel i sits at half-res coordinate (i + pad) / 2.
    m = size // 2 + 1
    low = blurred[pad // 2:pad // 2 + m, pad // 2:pad // 2 + m]
    low = np.maximum(low, 0) * np.float32(2 * np.pi * (sigma / 2)**2)
    up = np.empty((2 * m - 1, 2 * m - 1), np.float32)
    up[0::2, 0::2] = low
    up[1::2, 0::2] = 0.5 * (low[:-1] + low[1:])
    up[:, 1::2] = 0.5 * (up[:, 0:-1:2] + up[:, 2::2])
    return 1 - np.exp(-up[:size, :size])


def _splat_ellipses(shape: Shape, cx: np.ndarray, cy: np.ndarray,
                    a: np.ndarray, b: np.ndarray, ang: np.ndarray,
                    amp: np.ndarray) -> np.ndarray:
    """Sum of flat-topped elliptical blobs ``amp * exp(-q**2)``.

    ``q = (u / a)**2 + (t / b)**2`` in each ellipse's own axes, so a blob is
    about ``amp`` inside, ``amp / e`` on its edge and cut at ``q = 2.25``
    (1.5 x its semi-axes). Blobs are evaluated together on ``(N, w, w)``
    windows, grouped by size so small nuclei get small windows, and summed
    with ``bincount``; parts outside the patch are dropped.
    """
    h, w = shape
    out = np.zeros(h * w)
    if cx.size:
        half = np.ceil(1.5 * a).astype(np.int64)
        edges = np.unique(np.quantile(half, [0.5, 0.85, 1.0], method='higher'))
        lower = -1
        for edge in edges:
            group = (half > lower) & (half <= edge)
            lower = edge
            if group.any():
                out += _splat_group(shape, int(edge), cx[group], cy[group],
                                    a[group], b[group], ang[group], amp[group])
    return out.reshape(shape).astype(np.float32)


def _splat_group(shape: Shape, half: int, cx, cy, a, b, ang,
                 amp) -> np.ndarray:
    """Flat ``bincount`` of blobs whose window half-width is ``half`` px.

    ``q`` is evaluated as the quadratic form ``A dx^2 + B dx dy + C dy^2``;
    window rows and columns outside the patch get ``q = inf``.
    """
    h, w = shape
    f32 = np.float32
    offs = np.arange(-half, half + 1)
    ix = np.floor(cx).astype(np.int64)
    iy = np.floor(cy).astype(np.int64)
    px = ix[:, None] + offs  # (N, w) window columns
    py = iy[:, None] + offs  # (N, w) window rows
    dx = px - cx[:, None]
    dy = py - cy[:, None]
    cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]
    inv_a2, inv_b2 = 1 / a[:, None]**2, 1 / b[:, None]**2
    col_term = (cos**2 * inv_a2 + sin**2 * inv_b2) * dx**2
    row_term = (sin**2 * inv_a2 + cos**2 * inv_b2) * dy**2
    col_term[(px < 0) | (px >= w)] = np.inf
    row_term[(py < 0) | (py >= h)] = np.inf
    cross = (2 * cos * sin * (inv_a2 - inv_b2)).astype(f32)[:, :, None]
    q = dy.astype(f32)[:, :, None] * dx.astype(f32)[:, None, :]
    q *= cross
    q += row_term.astype(f32)[:, :, None]
    q += col_term.astype(f32)[:, None, :]
    valid = q < 2.25
    flat = (py * w)[:, :, None] + px[:, None, :]
    qv = q[valid]
    val = np.broadcast_to(amp.astype(f32)[:, None, None],
                          q.shape)[valid] * np.exp(-qv * qv)
    return np.bincount(flat[valid], weights=val, minlength=h * w)


def _endothelium(rng: np.random.Generator, wall: np.ndarray,
                 gradient: Tuple[np.ndarray, np.ndarray], r_mean: float,
                 vascularity: float):
    """Elongated endothelial nuclei lying along the vessel walls.

    The vessel runs across the gradient of its level-line field, so each
    nucleus's major axis is the gradient direction turned by 90 degrees.
    """
    idx = np.flatnonzero(wall > 0.5)
    count = int(rng.poisson(idx.size * (0.004 + 0.02 * vascularity)))
    if count == 0:
        empty = np.zeros(0)
        return empty, empty, empty, empty, empty, empty
    pick = rng.choice(idx, size=count)
    cy, cx = np.divmod(pick, wall.shape[1])
    radius = 0.8 * r_mean * np.exp(rng.normal(0, 0.1, count))
    a = np.minimum(radius * 1.6, _MAX_SEMI_AXIS)
    along = np.arctan2(gradient[0].ravel()[pick],
                       gradient[1].ravel()[pick]) + np.pi / 2
    return (cx + rng.uniform(0, 1, count), cy + rng.uniform(0, 1, count), a,
            radius / 1.6, along, np.exp(rng.normal(0, 0.1, count)))


def _debris(rng: np.random.Generator, necrotic: np.ndarray) -> np.ndarray:
    """Small bright nuclear fragments (karyorrhexis) inside necrosis."""
    idx = np.flatnonzero(necrotic > 0.5)
    count = int(rng.poisson(idx.size * 0.003))
    if count == 0:
        return np.zeros(necrotic.shape, np.float32)
    pick = rng.choice(idx, size=count)
    cy, cx = np.divmod(pick, necrotic.shape[1])
    r = rng.uniform(0.8, 2.0, count)
    return _splat_ellipses(necrotic.shape, cx + rng.uniform(0, 1, count),
                           cy + rng.uniform(0, 1, count), r, r,
                           np.zeros(count), np.full(count, 0.7))
