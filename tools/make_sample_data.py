#!/usr/bin/env python
"""Generate normcli's ``sample_data/`` with numpy and Pillow only.

Usage::

    python tools/make_sample_data.py             # (re)write sample_data/ (README.md included)
    python tools/make_sample_data.py --check     # regenerate into a temporary folder and
                                                 # compare byte for byte with sample_data/
    python tools/make_sample_data.py --out DIR   # write somewhere else

Everything is deterministic: fixed seeds (``numpy.random.RandomState``, whose streams numpy keeps
frozen), no wall-clock time, no FFT (whose rounding differs between numpy versions), and a fixed
summation order in the convolution.  Rendered images are quantized to 8 bits and filter weights
and feature values to a binary grid before they are used or saved, so that last-bit differences in
``exp``/``sin``/``cos`` between platforms almost never reach the files.

The seed examples' expected values in ``sample_data/README.md`` are computed here, by the plain
reference implementations below (exact fractions where the parameters allow), and checked against
hand-derived numbers with ``assert`` before anything is written.
"""

from __future__ import annotations

import argparse
import filecmp
import io
import math
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "sample_data"

FEATURE_SIZE = 80  # rendered test images are 80x80; 2x2 max pooling gives 40x40 maps
IMAGE_SIZE = 128  # the PNGs in images/

# ---------------------------------------------------------------------------------------------
# Reference implementations (slow, obviously correct; the seed convention)
# ---------------------------------------------------------------------------------------------


def lrn_inter_ref(a, *, k, alpha, beta, n, lo=None, hi=None, alpha_div=1):
    """Inter-channel LRN of a (C, H, W) array; window channels [i-lo, i+hi], clipped.

    Seed convention: lo = hi = n // 2, alpha used as is.  Works on numpy floats or on
    object arrays of Fractions (exact arithmetic when beta == 1).
    """
    lo = n // 2 if lo is None else lo
    hi = n // 2 if hi is None else hi
    c = a.shape[0]
    out = np.empty_like(a)
    for i in range(c):
        s = sum(a[j] * a[j] for j in range(max(0, i - lo), min(c - 1, i + hi) + 1))
        d = k + alpha * s / alpha_div
        out[i] = a[i] / d if beta == 1 else a[i] / d**beta
    return out


def lrn_intra_ref(a, *, k, alpha, beta, n):
    """Intra-channel LRN (seed convention) of a (H, W) map: (n+1)x(n+1) square for even n,
    i.e. rows x-n//2 .. x+n//2 and columns y-n//2 .. y+n//2, clipped at the borders."""
    r = n // 2
    h, w = a.shape
    out = np.empty_like(a)
    for x in range(h):
        for y in range(w):
            win = a[max(0, x - r) : x + r + 1, max(0, y - r) : y + r + 1]
            s = sum(v * v for v in win.ravel())
            d = k + alpha * s
            out[x, y] = a[x, y] / d if beta == 1 else a[x, y] / d**beta
    return out


def bn_per_activation_ref(batch, *, eps):
    """x_hat over the batch axis (axis 0), biased variance, float64."""
    x = batch.astype(np.float64)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    return (x - mu) / np.sqrt(var + eps), mu, var


def bn_per_channel_ref(batch, *, eps):
    """x_hat over batch and spatial axes of a (N, C, H, W) batch, biased variance, float64."""
    x = batch.astype(np.float64)
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = ((x - mu) ** 2).mean(axis=(0, 2, 3), keepdims=True)
    return (x - mu) / np.sqrt(var + eps), mu.ravel(), var.ravel()


def as_fractions(a):
    return np.vectorize(lambda v: Fraction(int(v)), otypes=[object])(a)


def fmt_frac(f: Fraction) -> str:
    if f.denominator == 1:
        return str(f.numerator)
    return f"{f.numerator}/{f.denominator} = {float(f):.6g}"


# ---------------------------------------------------------------------------------------------
# 1-3. The seed's worked examples
# ---------------------------------------------------------------------------------------------

# seed_inter[:, y, x] is the channel vector at spatial position (y, x).
SEED_INTER_COLUMNS = {
    (0, 0): [1, 1, 1, 1],
    (0, 1): [1, 1, 0, 2],
    (0, 2): [2, 2, 2, 2],
    (1, 0): [1, 2, 2, 1],
    (1, 1): [3, 4, 0, 1],
    (1, 2): [1, 0, 0, 1],
    (2, 0): [0, 1, 1, 0],
    (2, 1): [1, 2, 3, 4],
    (2, 2): [-4, 3, 0, 5],
}

SEED_INTRA = [
    [1, 0, 2, 0, 1],
    [0, 1, 0, 0, 0],
    [3, 0, 1, 0, 2],
    [0, 0, 0, 1, 0],
    [1, 2, 0, 0, 3],
]


def make_seed_inter() -> np.ndarray:
    a = np.zeros((4, 3, 3), dtype=np.float32)
    for (y, x), col in SEED_INTER_COLUMNS.items():
        a[:, y, x] = col
    return a


def make_seed_intra() -> np.ndarray:
    return np.array(SEED_INTRA, dtype=np.float32)


def make_seed_batch() -> list[np.ndarray]:
    """Three (4, 4, 4) activations with integer values and a spread at every position.

    Position q = 16*c + 4*y + x gets a base b = (q % 7) - 3 + 2*c and a step d = 1 + q % 3.
    Even q: the three samples hold a permutation of (b - d, b, b + d)
            -> mean b, biased variance 2*d*d/3, x_hat = -sqrt(3/2), 0, +sqrt(3/2) (eps = 0).
    Odd q:  a permutation of (b, b, b + 3*d)
            -> mean b + d, biased variance 2*d*d, x_hat = -1/sqrt(2), -1/sqrt(2), +sqrt(2).
    The permutation cycles through all six orders with q, so no sample is always the largest.
    """
    perms = [(0, 1, 2), (2, 0, 1), (1, 2, 0), (2, 1, 0), (0, 2, 1), (1, 0, 2)]
    acts = np.zeros((3, 4, 4, 4), dtype=np.float32)
    for c in range(4):
        for y in range(4):
            for x in range(4):
                q = 16 * c + 4 * y + x
                b = (q % 7) - 3 + 2 * c
                d = 1 + q % 3
                vals = (b - d, b, b + d) if q % 2 == 0 else (b, b, b + 3 * d)
                p = perms[(q // 2) % 6]
                for m in range(3):
                    acts[m, c, y, x] = vals[p[m]]
    return [acts[m] for m in range(3)]


# ---------------------------------------------------------------------------------------------
# Procedural rendering helpers (RGB float64 in [0, 1], shape (S, S, 3))
# ---------------------------------------------------------------------------------------------


def grid(s):
    """Pixel-centre coordinates in [0, 1): (yy, xx), each (s, s)."""
    t = (np.arange(s) + 0.5) / s
    return np.meshgrid(t, t, indexing="ij")


def smoothstep(e0, e1, x):
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def value_noise(rng, s, cells):
    """Smoothly interpolated random lattice values on an s x s grid, `cells` cells across."""
    lat = rng.random_sample((cells + 2, cells + 2))
    t = (np.arange(s) + 0.5) / s * cells
    i = np.floor(t).astype(int)
    f = t - i
    f = f * f * (3.0 - 2.0 * f)
    iy, ix = np.meshgrid(i, i, indexing="ij")
    fy, fx = np.meshgrid(f, f, indexing="ij")
    top = lat[iy, ix] * (1 - fx) + lat[iy, ix + 1] * fx
    bot = lat[iy + 1, ix] * (1 - fx) + lat[iy + 1, ix + 1] * fx
    return top * (1 - fy) + bot * fy


def fbm(rng, s, base=4, octaves=5, gain=0.5):
    """Fractal (roughly 1/f) noise in [0, 1] from octaves of value noise."""
    total = np.zeros((s, s))
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        total += amp * value_noise(rng, s, base * 2**o)
        norm += amp
        amp *= gain
    total /= norm
    return (total - total.min()) / (total.max() - total.min())


def profile_1d(rng, s, base=3, octaves=6, gain=0.55):
    """A 1-D fractal curve in [0, 1] (mountain ridges, horizons)."""
    total = np.zeros(s)
    amp, norm = 1.0, 0.0
    x = (np.arange(s) + 0.5) / s
    for o in range(octaves):
        cells = base * 2**o
        lat = rng.random_sample(cells + 2)
        t = x * cells
        i = np.floor(t).astype(int)
        f = t - i
        f = f * f * (3.0 - 2.0 * f)
        total += amp * (lat[i] * (1 - f) + lat[i + 1] * f)
        norm += amp
        amp *= gain
    total /= norm
    return (total - total.min()) / (total.max() - total.min())


def disk(yy, xx, cy, cx, r, soft):
    d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    return np.clip((r - d) / soft + 0.5, 0.0, 1.0)


def rect(yy, xx, y0, x0, y1, x1, soft):
    a = np.clip((yy - y0) / soft + 0.5, 0, 1) * np.clip((y1 - yy) / soft + 0.5, 0, 1)
    return a * np.clip((xx - x0) / soft + 0.5, 0, 1) * np.clip((x1 - xx) / soft + 0.5, 0, 1)


def lerp(img, colour, mask):
    """Paint `colour` (RGB or (S, S, 3)) over img with coverage `mask` (S, S)."""
    return img * (1 - mask[..., None]) + np.asarray(colour) * mask[..., None]


def vgrad(yy, top, bottom):
    t = yy[..., None]
    return np.asarray(top) * (1 - t) + np.asarray(bottom) * t


# ---------------------------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------------------------


def scene_landscape(rng, s):
    """Mountains at dusk over a lake, with a low sun and clouds."""
    yy, xx = grid(s)
    img = vgrad(yy / 0.55, (0.22, 0.36, 0.66), (0.98, 0.74, 0.52))
    glow = np.exp(-((yy - 0.40) ** 2 + (xx - 0.68) ** 2) / 0.02)
    img = img + 0.35 * glow[..., None] * np.array([1.0, 0.75, 0.45])
    img = lerp(img, (1.0, 0.95, 0.80), disk(yy, xx, 0.40, 0.68, 0.055, 1.5 / s))
    clouds = fbm(rng, s, base=3, octaves=5)
    cloud_mask = smoothstep(0.55, 0.80, clouds) * smoothstep(0.5, 0.1, yy)
    img = lerp(img, (0.98, 0.90, 0.88), 0.8 * cloud_mask)
    x1 = (np.arange(s) + 0.5) / s
    far = 0.30 + 0.16 * profile_1d(rng, s) + 0.05 * x1
    near = 0.42 + 0.14 * profile_1d(rng, s, base=2)
    tex = fbm(rng, s, base=8, octaves=4)
    far_mask = np.clip((yy - far[None, :]) * s + 0.5, 0, 1)
    img = lerp(
        img,
        vgrad(yy, (0.45, 0.45, 0.62), (0.35, 0.38, 0.55)) * (0.9 + 0.2 * tex[..., None]),
        far_mask,
    )
    near_mask = np.clip((yy - near[None, :]) * s + 0.5, 0, 1)
    img = lerp(img, np.array([0.16, 0.26, 0.16]) * (0.7 + 0.6 * tex[..., None]), near_mask)
    # lake: mirror the rows above the waterline, darken, add ripples
    wl = int(round(0.66 * s))
    above = img[2 * wl - s : wl][::-1] if 2 * wl >= s else img[:wl][::-1]
    rows = np.arange(s - wl)
    ripple = 0.06 * np.sin(rows[:, None] * 1.7 + 9.0 * xx[wl:] + 3.0 * fbm(rng, s)[wl:])
    lake = above[: s - wl] * 0.65 + np.array([0.02, 0.05, 0.10])
    img[wl:] = lake * (1.0 + ripple[..., None])
    img[wl : wl + 1] *= 0.8
    return np.clip(img, 0, 1)


def scene_dead_leaves(rng, s):
    """The 'dead leaves' model: occluding disks with power-law sizes (natural-image statistics)."""
    yy, xx = grid(s)
    palette = np.array(
        [
            [0.55, 0.35, 0.15],
            [0.75, 0.55, 0.20],
            [0.35, 0.45, 0.18],
            [0.60, 0.20, 0.12],
            [0.85, 0.70, 0.40],
            [0.25, 0.30, 0.12],
        ]
    )
    img = np.full((s, s, 3), 0.25) * np.array([1.0, 0.85, 0.6])
    for _ in range(420):
        r = 0.02 / (rng.random_sample() ** 0.6 + 0.08)
        r = min(r, 0.22)
        cy, cx = rng.random_sample(2) * 1.2 - 0.1
        col = palette[rng.randint(len(palette))] * (0.75 + 0.5 * rng.random_sample())
        shade = 1.0 - 0.35 * np.clip(((yy - cy) + (xx - cx)) / (2 * r), -1, 1)
        img = lerp(img, np.clip(col * shade[..., None], 0, 1), disk(yy, xx, cy, cx, r, 1.2 / s))
    return np.clip(img, 0, 1)


def scene_city(rng, s):
    """Buildings with lit windows against an evening sky."""
    yy, xx = grid(s)
    img = vgrad(yy, (0.10, 0.14, 0.35), (0.85, 0.50, 0.35))
    x = 0.0
    while x < 1.0:
        w = 0.08 + 0.12 * rng.random_sample()
        top = 0.25 + 0.45 * rng.random_sample()
        base_col = np.array([0.18, 0.18, 0.22]) * (0.7 + 0.6 * rng.random_sample())
        m = rect(yy, xx, top, x, 1.2, x + w, 1.0 / s)
        side = smoothstep(x + w * 0.75, x + w, xx)
        img = lerp(img, base_col * (1 - 0.4 * side[..., None]), m)
        wy = ((yy - top) * s / 4.0) % 1.0
        wx = ((xx - x) * s / 3.5) % 1.0
        lit = (wy > 0.45) & (wx > 0.4) & (yy > top + 0.03) & (xx > x + 0.01) & (xx < x + w - 0.015)
        on = value_noise(rng, s, 24) > 0.45
        img = lerp(img, (1.0, 0.85, 0.45), (lit & on).astype(float) * m * 0.9)
        x += w + 0.01 * rng.random_sample()
    return np.clip(img, 0, 1)


def sphere_shade(yy, xx, cy, cx, r, light=(-0.5, -0.6, 0.62)):
    """Lambert + specular shading of a sphere; returns (coverage, diffuse, specular)."""
    dy, dx = (yy - cy) / r, (xx - cx) / r
    z = np.sqrt(np.clip(1 - dy * dy - dx * dx, 0, 1))
    lv = np.array(light) / np.linalg.norm(light)
    ndl = np.clip(dx * lv[0] + dy * lv[1] + z * lv[2], 0, 1)
    spec = np.clip(2 * ndl * z - lv[2], 0, 1) ** 30
    return disk(yy, xx, cy, cx, r, 1.5 / yy.shape[0]), ndl, spec


def scene_fruit(rng, s):
    """Shaded spheres (fruit) on a wooden table in front of a wall."""
    yy, xx = grid(s)
    img = vgrad(yy, (0.80, 0.78, 0.70), (0.60, 0.58, 0.52))
    grain = fbm(rng, s, base=3, octaves=4)
    wood = 0.5 + 0.5 * np.sin(60 * yy + 6 * grain + 2 * xx)
    table = np.stack([0.55 + 0.12 * wood, 0.33 + 0.08 * wood, 0.16 + 0.04 * wood], -1)
    img = lerp(img, table, np.clip((yy - 0.55) * s + 0.5, 0, 1))
    fruit = [
        ((0.62, 0.28), 0.16, (0.85, 0.15, 0.10)),
        ((0.66, 0.62), 0.14, (0.95, 0.60, 0.10)),
        ((0.72, 0.45), 0.12, (0.55, 0.75, 0.15)),
        ((0.55, 0.80), 0.10, (0.50, 0.10, 0.35)),
    ]
    for (cy, cx), r, _col in fruit:  # shadows first
        sh = np.exp(-(((yy - cy - r * 0.8) / (0.35 * r)) ** 2 + ((xx - cx - 0.3 * r) / r) ** 2))
        img = img * (1 - 0.45 * sh[..., None])
    for (cy, cx), r, col in fruit:
        cov, ndl, spec = sphere_shade(yy, xx, cy, cx, r)
        colour = np.asarray(col) * (0.25 + 0.75 * ndl[..., None]) + 0.8 * spec[..., None]
        img = lerp(img, colour, cov)
    return np.clip(img, 0, 1)


def scene_wood(rng, s):
    """Wood grain: distorted growth rings with a knot."""
    yy, xx = grid(s)
    turb = fbm(rng, s, base=3, octaves=5)
    knot = 0.08 / (np.sqrt((yy - 0.6) ** 2 + ((xx - 0.35) * 2.5) ** 2) + 0.08)
    rings = np.sin(2 * np.pi * (9 * yy + 2.5 * turb + 1.5 * knot + 0.4 * xx))
    t = 0.5 + 0.5 * np.sign(rings) * np.abs(rings) ** 0.6
    fine = fbm(rng, s, base=16, octaves=2)
    light = np.array([0.80, 0.58, 0.35])
    dark = np.array([0.50, 0.30, 0.15])
    return np.clip(dark + (light - dark) * (t * 0.85 + 0.15 * fine)[..., None], 0, 1)


def scene_bricks(rng, s):
    """A brick wall with mortar and per-brick colour."""
    yy, xx = grid(s)
    rows = 8
    bh = 1.0 / rows
    row = np.floor(yy / bh)
    xs = xx + (row % 2) * 0.125
    bw = 0.25
    col_i = np.floor(xs / bw)
    fy = (yy / bh) % 1.0
    fx = (xs / bw) % 1.0
    mortar = np.minimum(np.minimum(fy, 1 - fy) / 0.12, np.minimum(fx, 1 - fx) * bw / bh / 0.12)
    brick = smoothstep(0.6, 1.0, mortar)
    tint = rng.random_sample((rows + 1, 8))
    v = tint[row.astype(int), col_i.astype(int) % 8]
    base = np.stack([0.55 + 0.2 * v, 0.22 + 0.08 * v, 0.15 + 0.05 * v], -1)
    grit = fbm(rng, s, base=12, octaves=3)
    img = base * (0.8 + 0.35 * grit[..., None])
    mort = np.array([0.72, 0.70, 0.66]) * (0.85 + 0.2 * grit[..., None])
    img = img * brick[..., None] + mort * (1 - brick[..., None])
    img *= (1.0 - 0.25 * xx)[..., None]  # light falls off to the right
    return np.clip(img, 0, 1)


def scene_clouds(rng, s):
    """Cumulus clouds in a blue sky."""
    yy, xx = grid(s)
    sky = vgrad(yy, (0.20, 0.42, 0.80), (0.62, 0.78, 0.95))
    c = fbm(rng, s, base=3, octaves=6, gain=0.55)
    dens = smoothstep(0.42, 0.75, c)
    shade = 0.75 + 0.25 * smoothstep(0.3, 0.9, fbm(rng, s, base=4, octaves=3))
    return np.clip(lerp(sky, np.stack([shade, shade, shade * 1.02], -1), dens), 0, 1)


def scene_checker_floor(rng, s):
    """A chessboard floor in perspective with a shiny ball."""
    yy, xx = grid(s)
    img = vgrad(yy, (0.55, 0.62, 0.70), (0.85, 0.85, 0.82))
    hor = 0.40
    below = yy > hor
    depth = 0.35 / np.maximum(yy - hor, 1e-3)
    u = (xx - 0.5) * depth * 2.2 + 0.3
    v = depth * 1.3
    chk = ((np.floor(u) + np.floor(v)) % 2).astype(float)
    fade = np.clip((yy - hor) * 4, 0, 1)
    tile = 0.25 + 0.6 * chk * fade + 0.3 * (1 - fade)
    floor = np.stack([tile, tile * 0.95, tile * 0.9], -1)
    img = np.where(below[..., None], floor, img)
    sh = np.exp(-(((yy - 0.83) / 0.04) ** 2 + ((xx - 0.55) / 0.17) ** 2))
    img = img * (1 - 0.6 * sh[..., None])
    cov, ndl, spec = sphere_shade(yy, xx, 0.66, 0.52, 0.17)
    ball = np.array([0.15, 0.35, 0.85]) * (0.2 + 0.8 * ndl[..., None]) + spec[..., None]
    return np.clip(lerp(img, ball, cov), 0, 1)


def scene_marble(rng, s):
    """Veined marble."""
    yy, xx = grid(s)
    turb = fbm(rng, s, base=2, octaves=5, gain=0.5)
    veins = np.abs(np.sin(2 * np.pi * (1.2 * xx + 0.6 * yy + 2.2 * turb)))
    t = smoothstep(0.0, 0.35, veins) ** 0.8
    tint = fbm(rng, s, base=3, octaves=3)[..., None]
    light = np.array([0.94, 0.92, 0.88]) * (0.93 + 0.07 * tint)
    vein = np.array([0.38, 0.40, 0.45])
    return np.clip(vein + (light - vein) * t[..., None], 0, 1)


def scene_cells(rng, s):
    """Stained tissue: Voronoi cells with purple nuclei on pink cytoplasm (H&E-like)."""
    yy, xx = grid(s)
    n = 28
    pts = rng.random_sample((n, 2))
    d = np.sqrt((yy[..., None] - pts[:, 0]) ** 2 + (xx[..., None] - pts[:, 1]) ** 2)
    ds = np.sort(d, axis=-1)
    edge = smoothstep(0.0, 0.02, ds[..., 1] - ds[..., 0])
    near = np.argmin(d, axis=-1)
    img = np.ones((s, s, 3)) * np.array([0.96, 0.88, 0.92])
    cyto = np.array([0.90, 0.55, 0.70]) * (0.9 + 0.2 * rng.random_sample(n)[near][..., None])
    img = lerp(img, cyto, edge)
    nuc_r = 0.025 + 0.02 * rng.random_sample(n)
    nucleus = np.clip((nuc_r[near] - ds[..., 0]) * s / 1.2 + 0.5, 0, 1)
    speck = fbm(rng, s, base=16, octaves=2)
    img = lerp(img, np.array([0.35, 0.20, 0.55]) * (0.8 + 0.4 * speck[..., None]), nucleus)
    return np.clip(img, 0, 1)


def scene_sunset_sea(rng, s):
    """Sun setting over the sea with glitter on the water."""
    yy, xx = grid(s)
    img = vgrad(yy / 0.5, (0.35, 0.20, 0.45), (1.0, 0.55, 0.25))
    img = lerp(img, (1.0, 0.92, 0.65), disk(yy, xx, 0.44, 0.45, 0.08, 1.5 / s))
    hz = 0.5
    sea_t = np.clip((yy - hz) / (1 - hz), 0, 1)
    sea = vgrad(sea_t, (0.45, 0.25, 0.25), (0.08, 0.10, 0.22))
    waves = np.sin(
        2 * np.pi * np.clip(yy - hz, 0, None) ** 0.6 * 40 + 4 * fbm(rng, s, base=6, octaves=3)
    )
    glitter = np.exp(-(((xx - 0.45) / (0.05 + 0.25 * sea_t)) ** 2)) * smoothstep(0.6, 1.0, waves)
    sea = sea + glitter[..., None] * np.array([1.0, 0.75, 0.4]) * 0.8
    img = np.where((yy > hz)[..., None], sea, img)
    return np.clip(img, 0, 1)


def scene_forest(rng, s):
    """Tree trunks in a misty forest."""
    yy, xx = grid(s)
    img = vgrad(yy, (0.75, 0.82, 0.78), (0.45, 0.52, 0.35))
    for layer in range(3):
        haze = 0.55 - 0.22 * layer
        for _ in range(5 + 2 * layer):
            cx = rng.random_sample()
            w = (0.008 + 0.012 * rng.random_sample()) * (1 + 0.8 * layer)
            wob = 0.01 * np.sin(12 * yy + 6 * rng.random_sample())
            m = np.clip((w - np.abs(xx - cx - wob)) * s + 0.5, 0, 1)
            bark = 0.8 + 0.4 * value_noise(rng, s, 20)
            col = np.array([0.22, 0.16, 0.10]) * bark[..., None] * (1 - haze)
            col = col + haze * np.array([0.70, 0.78, 0.74])
            img = lerp(img, col, m)
        leaves = smoothstep(0.55, 0.7, fbm(rng, s, base=5, octaves=4)) * smoothstep(0.6, 0.2, yy)
        lc = np.array([0.15, 0.35, 0.12]) * (1 - haze) + haze * np.array([0.70, 0.78, 0.74])
        img = lerp(img, lc, leaves * 0.9)
    return np.clip(img, 0, 1)


SCENES = [
    ("landscape", scene_landscape),
    ("dead_leaves", scene_dead_leaves),
    ("city", scene_city),
    ("fruit", scene_fruit),
    ("wood", scene_wood),
    ("bricks", scene_bricks),
    ("clouds", scene_clouds),
    ("checker_floor", scene_checker_floor),
    ("marble", scene_marble),
    ("cells", scene_cells),
    ("sunset_sea", scene_sunset_sea),
    ("forest", scene_forest),
]


def to_uint8(img):
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# 4. Feature maps: a fixed conv1-like filter bank, ReLU, 2x2 max pooling
# ---------------------------------------------------------------------------------------------

KSIZE = 21  # all kernels live in a 21x21 support (radius 10)
LUMA = np.array([0.299, 0.587, 0.114])
GABOR_WAVELENGTHS = (4.0, 8.0)
GABOR_ORIENTATIONS = 6


def quantize(a, bits):
    """Round to a multiple of 2**-bits (float64)."""
    return np.round(a * 2.0**bits) / 2.0**bits


def filter_bank():
    """(16, 3, 21, 21) float64 kernels over RGB, and their descriptions.

    0-5  Gabor, wavelength 4 px, orientations 0, 30, ..., 150 degrees (on luminance)
    6-11 Gabor, wavelength 8 px, same orientations
    12   difference of Gaussians, on-centre (sigma 1 / 2.5)
    13   difference of Gaussians, off-centre
    14   red-green opponent (Gaussian sigma 1.5 on R - G)
    15   blue-yellow opponent (Gaussian sigma 1.5 on B - (R + G) / 2)
    """
    r = KSIZE // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    kernels, names = [], []

    def unit(k):
        return k / np.sqrt((k * k).sum())

    for lam in GABOR_WAVELENGTHS:
        sigma = 0.5 * lam
        for o in range(GABOR_ORIENTATIONS):
            th = np.pi * o / GABOR_ORIENTATIONS
            xr = x * np.cos(th) + y * np.sin(th)
            yr = -x * np.sin(th) + y * np.cos(th)
            env = np.exp(-(xr**2 + (0.7 * yr) ** 2) / (2 * sigma**2))
            g = env * np.cos(2 * np.pi * xr / lam)
            g = g - env * (g.sum() / env.sum())  # zero mean: no response to flat regions
            kernels.append(np.einsum("c,yx->cyx", LUMA, unit(g)))
            names.append(f"Gabor wavelength {lam:g} px, {round(np.degrees(th))} deg")
    g1 = np.exp(-(x**2 + y**2) / (2 * 1.0**2))
    g2 = np.exp(-(x**2 + y**2) / (2 * 2.5**2))
    dog = unit(g1 / g1.sum() - g2 / g2.sum())
    kernels.append(np.einsum("c,yx->cyx", LUMA, dog))
    names.append("DoG on-centre")
    kernels.append(np.einsum("c,yx->cyx", LUMA, -dog))
    names.append("DoG off-centre")
    g15 = np.exp(-(x**2 + y**2) / (2 * 1.5**2))
    g15 = g15 / g15.sum()
    kernels.append(np.einsum("c,yx->cyx", np.array([1.0, -1.0, 0.0]), g15))
    names.append("red-green opponent")
    kernels.append(np.einsum("c,yx->cyx", np.array([-0.5, -0.5, 1.0]), g15))
    names.append("blue-yellow opponent")
    return quantize(np.stack(kernels), 24), names


def conv_same(img_chw, bank):
    """Cross-correlate (3, H, W) with (F, 3, K, K), reflect padding, output (F, H, W).

    Accumulates tap by tap in a fixed order (elementwise float64 arithmetic only), so the result
    does not depend on BLAS or FFT implementations.
    """
    f, c, k, _ = bank.shape
    r = k // 2
    _, h, w = img_chw.shape
    pad = np.pad(img_chw, ((0, 0), (r, r), (r, r)), mode="reflect")
    out = np.zeros((f, h, w))
    for ci in range(c):
        for dy in range(k):
            for dx in range(k):
                wts = bank[:, ci, dy, dx]
                if not wts.any():
                    continue
                out += wts[:, None, None] * pad[ci, dy : dy + h, dx : dx + w][None]
    return out


FEATURE_GAIN = 8.0  # input pixels in 0..255 / 255 * gain: activations of a few units, peaks ~10+
FEATURE_BIAS = 0.25  # ReLU threshold, as a trained conv layer's negative bias would give


def features_from_rgb(rgb_u8, bank):
    x = rgb_u8.astype(np.float64).transpose(2, 0, 1) / 255.0
    resp = conv_same(x, bank) * FEATURE_GAIN
    act = np.maximum(resp - FEATURE_BIAS, 0.0)
    f, h, w = act.shape
    pooled = act.reshape(f, h // 2, 2, w // 2, 2).max(axis=(2, 4))
    return quantize(pooled, 16).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# 5. Images
# ---------------------------------------------------------------------------------------------


def image_gray8(s):
    """A still life in grey: the fruit scene rendered in luminance."""
    rgb = scene_fruit(np.random.RandomState(501), s)
    return np.clip(np.round((rgb @ LUMA) * 255.0), 0, 255).astype(np.uint8)


def image_gray16(s):
    """A fluorescence-microscopy-like 16-bit image: stained nuclei of varied brightness with
    chromatin texture and bright nucleoli on a dim, uneven background, using most of 0..65535."""
    rng = np.random.RandomState(502)
    yy, xx = grid(s)
    img = 1400 + 900 * fbm(rng, s, base=3, octaves=4) + 500 * (1 - yy)
    chromatin = fbm(rng, s, base=20, octaves=3)
    placed = []
    for _ in range(400):  # rejection sampling: nuclei may touch but hardly overlap
        cy, cx = rng.random_sample(2) * 1.1 - 0.05
        ry, rx = 0.035 + 0.03 * rng.random_sample(2)
        if all(
            (cy - py) ** 2 + (cx - px) ** 2 > (max(ry, rx) + pr) ** 2 * 0.85
            for py, px, pr in placed
        ):
            placed.append((cy, cx, max(ry, rx)))
            if len(placed) == 30:
                break
        else:
            continue
        th = np.pi * rng.random_sample()
        dy, dx = yy - cy, xx - cx
        u = (dx * np.cos(th) + dy * np.sin(th)) / rx
        v = (-dx * np.sin(th) + dy * np.cos(th)) / ry
        rr = np.sqrt(u * u + v * v)
        peak = 8000 + 40000 * rng.random_sample() ** 1.3
        body = 1.0 / (1.0 + np.exp((rr - 1.0) * 14.0))  # soft edge
        tex = 0.7 + 0.45 * chromatin + 0.1 * (1 - rr**2)
        blur = 0.06 * np.exp(-(rr**2) / 3.0)  # out-of-focus glow
        nuc = peak * (body * tex + blur)
        for _ in range(rng.randint(1, 4)):  # nucleoli: small bright spots inside
            a, b = (rng.random_sample(2) - 0.5) * 0.9
            spot = np.exp(-((u - a) ** 2 + (v - b) ** 2) / 0.02)
            nuc = nuc + 0.35 * peak * spot * body
        img = np.maximum(img, img * 0.3 + nuc)
    img = img * (60000.0 / img.max())  # brightest nucleus just below saturation
    img = img + 300 * (rng.random_sample((s, s)) - 0.5)  # sensor noise
    return np.clip(np.round(img), 0, 65535).astype(np.uint16)


def save_png(path, arr, mode=None):
    if mode == "I;16":
        im = Image.frombytes("I;16", (arr.shape[1], arr.shape[0]), arr.astype("<u2").tobytes())
    else:
        im = Image.fromarray(arr)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=9)
    path.write_bytes(buf.getvalue())


# ---------------------------------------------------------------------------------------------
# Checks of the seed examples (hand-derived numbers) and README text
# ---------------------------------------------------------------------------------------------


def check_and_describe_seed(inter, intra, batch):
    """Assert hand-derived values; return the README fragments that list expected outputs."""
    F = Fraction
    # --- inter-channel, (k, alpha, beta, n) = (0, 1, 1, 2): exact fractions
    ex = lrn_inter_ref(as_fractions(inter), k=0, alpha=1, beta=1, n=2)
    hand = {
        (0, 0): [F(1, 2), F(1, 3), F(1, 3), F(1, 2)],
        (0, 1): [F(1, 2), F(1, 2), 0, F(1, 2)],
        (0, 2): [F(1, 4), F(1, 6), F(1, 6), F(1, 4)],
        (1, 0): [F(1, 5), F(2, 9), F(2, 9), F(1, 5)],
        (1, 1): [F(3, 25), F(4, 25), 0, 1],
        (1, 2): [1, 0, 0, 1],
        (2, 0): [0, F(1, 2), F(1, 2), 0],
        (2, 1): [F(1, 5), F(1, 7), F(3, 29), F(4, 25)],
        (2, 2): [F(-4, 25), F(3, 25), 0, F(1, 5)],
    }
    for (y, x), want in hand.items():
        assert list(ex[:, y, x]) == want, ((y, x), list(ex[:, y, x]), want)
    assert ex[0, 0, 0] == F(1, 2)  # the seed's worked example 1
    fl = lrn_inter_ref(inter.astype(np.float64), k=0, alpha=1, beta=1, n=2)
    assert np.all(np.isfinite(fl))
    assert np.allclose(fl, ex.astype(np.float64), rtol=0, atol=1e-15)

    # same input, default seed parameters (n=5, k=2, alpha=1e-4, beta=0.75): used by the pipeline
    dflt = lrn_inter_ref(inter.astype(np.float64), k=2.0, alpha=1e-4, beta=0.75, n=5)
    # alpha = 0: x / k**beta (worked example 3)
    a0 = lrn_inter_ref(inter.astype(np.float64), k=2.0, alpha=0.0, beta=1.0, n=2)
    assert np.array_equal(a0, inter / 2.0)
    # other conventions, even window n = 2, alpha divided by n (k=0, alpha=1, beta=1)
    # (only at columns (0, 0) and (2, 1): with k = 0 their shorter windows meet all-zero
    # neighbourhoods elsewhere, e.g. channels 1-2 at (1, 2), and 0 / 0 is NaN)
    fr = as_fractions(inter[:, [0, 2], [0, 1]])  # (4, 2): columns (0, 0) and (2, 1)
    pt = lrn_inter_ref(fr, k=0, alpha=1, beta=1, n=2, lo=1, hi=0, alpha_div=2)  # pytorch
    ox = lrn_inter_ref(fr, k=0, alpha=1, beta=1, n=2, lo=0, hi=1, alpha_div=2)  # onnx / cudnn
    assert list(pt[:, 0]) == [2, 1, 1, 1] and list(ox[:, 0]) == [1, 1, 1, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        nan_pt = lrn_inter_ref(
            inter.astype(np.float64), k=0, alpha=1, beta=1, n=2, lo=1, hi=0, alpha_div=2
        )
        nan_ox = lrn_inter_ref(
            inter.astype(np.float64), k=0, alpha=1, beta=1, n=2, lo=0, hi=1, alpha_div=2
        )
    nan_pos = {
        "pytorch": [tuple(map(int, p)) for p in np.argwhere(np.isnan(nan_pt))],
        "onnx": [tuple(map(int, p)) for p in np.argwhere(np.isnan(nan_ox))],
    }

    # --- intra-channel, n = 2 (3x3 window, clipped), (k, alpha, beta) = (0, 1, 1)
    exi = lrn_intra_ref(as_fractions(intra), k=0, alpha=1, beta=1, n=2)
    hand_i = {
        (0, 0): F(1, 2),  # corner, 2x2 window {1,0,0,1}
        (0, 4): F(1),  # corner, {0,1,0,0}
        (4, 0): F(1, 5),  # corner, {0,0,1,2}: 1/(1+4)
        (4, 4): F(3, 10),  # corner, {1,0,0,3}: 3/(1+9)
        (0, 2): F(2, 5),  # top edge, 2x3 window {0,2,0,1,0,0}
        (2, 0): F(3, 10),  # left edge, 3x2 window {0,1,3,0,0,0}
        (2, 4): F(2, 5),  # right edge, {0,0,0,2,1,0}: 2/(4+1)
        (2, 2): F(1, 3),  # interior, 3x3 {1,0,0,0,1,0,0,0,1}
        (1, 1): F(1, 16),  # interior, {1,0,2,0,1,0,3,0,1}: 1/(1+4+1+9+1)
    }
    for pos, want in hand_i.items():
        assert exi[pos] == want, (pos, exi[pos], want)
    fli = lrn_intra_ref(intra.astype(np.float64), k=0, alpha=1, beta=1, n=2)
    assert np.all(np.isfinite(fli))
    dflt_i = lrn_intra_ref(intra.astype(np.float64), k=2.0, alpha=1e-4, beta=0.75, n=2)

    # --- batch
    stack = np.stack(batch)
    assert stack.shape == (3, 4, 4, 4) and stack.dtype == np.float32
    assert not np.array_equal(batch[0], batch[1]) and not np.array_equal(batch[1], batch[2])
    xh, mu, var = bn_per_activation_ref(stack, eps=1e-5)
    assert np.all(var > 0)
    xh0, _, _ = bn_per_activation_ref(stack, eps=0.0)
    for q in range(64):
        c, y, x = q // 16, (q // 4) % 4, q % 4
        got = sorted(xh0[:, c, y, x])
        want = (
            [-math.sqrt(1.5), 0.0, math.sqrt(1.5)]
            if q % 2 == 0
            else [-math.sqrt(0.5), -math.sqrt(0.5), math.sqrt(2.0)]
        )
        assert np.allclose(got, want, rtol=0, atol=1e-12), (q, got, want)
    # gamma = sqrt(var + eps), beta = mean gives the input back (the seed's point)
    back = xh * np.sqrt(var + 1e-5) + mu
    assert np.allclose(back, stack, rtol=0, atol=1e-9)
    xc, muc, varc = bn_per_channel_ref(stack, eps=1e-5)

    return {
        "inter_exact": ex,
        "inter_default": dflt,
        "pytorch": pt,
        "onnx": ox,
        "nan_pos": nan_pos,
        "intra_exact": exi,
        "intra_default": dflt_i,
        "bn": (xh, mu, var),
        "bn_channel": (xc, muc, varc),
    }


def md_matrix(a, fmt="{:g}"):
    return "\n".join("    " + "  ".join(fmt.format(v).rjust(4) for v in row) for row in a)


def write_readme(out, inter, intra, batch, res, feats, feat_names, bank_names, images):
    ex = res["inter_exact"]
    lines = []
    w = lines.append
    w("# normcli sample data")
    w("")
    w("Everything here is generated by `python tools/make_sample_data.py` (numpy and Pillow only,")
    w("fixed seeds). Rerunning it rewrites byte-identical files, this README included; run")
    w("`python tools/make_sample_data.py --check` to confirm without touching anything.")
    w("**Do not edit this file by hand**: change the script and rerun it.")
    w("")
    w("Arrays are channels-first, as normcli reads them by default: (H, W) one channel,")
    w("(C, H, W) one sample. All `.npy` files are little-endian float32, saved with `numpy.save`.")
    w("Expected values below were computed by the slow reference implementations in the script")
    w("(exact fractions where the parameters allow) and asserted against hand-derived numbers.")
    w("Positions are written (channel, row, column).")
    w("")
    w("| path | shape | dtype | what |")
    w("|---|---|---|---|")
    w(
        "| `seed_inter.npy` | (4, 3, 3) | float32 | the seed's"
        " inter-channel example, small integers |"
    )
    w("| `seed_intra.npy` | (5, 5) | float32 | the seed's intra-channel example, small integers |")
    w(
        "| `seed_batch/act0.npy`, `act1.npy`, `act2.npy` | (4, 4, 4) each | float32 |"
        " the seed's mini-batch of three activations, integers |"
    )
    fshape = feats[0].shape
    w(
        f"| `features/img00_conv1.npy` … `img{len(feats) - 1:02d}_conv1.npy` | {fshape} each |"
        " float32 | conv1-like feature maps of rendered test images (ReLU, max-pooled) |"
    )
    for name, shape, dtype, desc in images:
        w(f"| `images/{name}` | {shape} | {dtype} | {desc} |")
    w("| `models/cnn_norms.prototxt` | – | text | the normalization layers of a Caffe "
      "`deploy.prototxt`: AlexNet's `norm1`/`norm2` LRN and a BatchNorm + Scale pair "
      "(for `normcli layers`, `--from-caffe`) |")
    w("")

    # ---------------- seed_inter
    w("## `seed_inter.npy`: inter-channel LRN (seed worked example 1)")
    w("")
    w("Channel vectors `a[:, row, col]` at the nine spatial positions:")
    w("")
    w("| (row, col) | a[0..3] | b[0..3] for (k, α, β, n) = (0, 1, 1, 2) |")
    w("|---|---|---|")
    for (y, x), col in SEED_INTER_COLUMNS.items():
        b = ", ".join(
            fmt_frac(v).split(" = ")[0] if isinstance(v, Fraction) else str(v) for v in ex[:, y, x]
        )
        w(f"| ({y}, {x}) | {', '.join(map(str, col))} | {b} |")
    w("")
    w("```sh")
    w(
        "normcli lrn sample_data/seed_inter.npy --mode inter --k 0"
        " --alpha 1 --beta 1 --n 2 -o out.npy"
    )
    w("```")
    w("")
    w("Seed convention, n = 2: channels i-1 .. i+1 (clipped), b[i] = a[i] / (k + α Σ a[j]²)^β.")
    w("")
    w("- `out[0, 0, 0]` = 1 / (1² + 1²) = **0.5** (channel -1 does not exist; the seed's example).")
    w("- `out[1, 0, 0]` = 1 / (1 + 1 + 1) = 1/3; `out[3, 0, 0]` = 1 / (1 + 1) = 0.5.")
    w("- Column (0, 2) is column (0, 0) times 2, so its outputs are halved: 0.25, 1/6, 1/6, 0.25.")
    w("- `out[2, 1, 1]` = 0 (a zero stays zero); `out[3, 1, 1]` = 1 / (0² + 1²) = 1.")
    w(
        "- `out[0, 2, 2]` = -4 / (16 + 9) = **-0.16**: the sign is"
        " kept (only squares enter the sum)."
    )
    w("- `out[2, 2, 1]` = 3 / (4 + 9 + 16) = 3/29 = 0.103448.")
    w("- Every window holds a non-zero value, so k = 0 never divides 0 by 0 (no NaN).")
    w("")
    w("Full expected output (`out[c]` printed as a 3x3 block per channel, 6 significant digits):")
    w("")
    w("```")
    for c in range(4):
        w(f"channel {c}:")
        for y in range(3):
            w("  " + "  ".join(f"{float(v):>10.6g}" for v in ex[c, y]))
    w("```")
    w("")
    w("Worked example 3 (α = 0 gives x / k^β):")
    w(
        "`normcli lrn sample_data/seed_inter.npy --mode inter --k 2"
        " --alpha 0 --beta 1 --n 2 -o out.npy`"
    )
    w("returns exactly the input divided by 2.")
    w("")
    pt, ox = res["pytorch"], res["onnx"]
    w("Other conventions, same input and (k, α, β, n) = (0, 1, 1, 2) (α divided by n = 2; an even")
    w(
        "window puts its extra channel before i in PyTorch, after i"
        " in ONNX/cuDNN). If normcli selects"
    )
    w("them with `--convention pytorch` / `--convention onnx`:")
    w("")
    w("| (row, col) | seed | pytorch (window i-1..i) | onnx / cudnn (window i..i+1) |")
    w("|---|---|---|---|")
    for j, (y, x) in enumerate([(0, 0), (2, 1)]):
        cells = [
            ", ".join(
                fmt_frac(v).split(" = ")[0] if isinstance(v, Fraction) else str(v) for v in col
            )
            for col in (ex[:, y, x], pt[:, j], ox[:, j])
        ]
        w(f"| ({y}, {x}) | {' | '.join(cells)} |")
    w("")
    nans = res["nan_pos"]
    w(
        "With k = 0 these shorter windows meet all-zero neighbourhoods elsewhere, where the"
        " value is 0 / 0: normcli defines it as 0 (the value itself is 0), never NaN,"
    )
    w("at " + "; ".join(f"{conv}: {', '.join(map(str, p))}" for conv, p in nans.items()) + ".")
    w("")

    # ---------------- seed_intra
    exi = res["intra_exact"]
    w("## `seed_intra.npy`: intra-channel LRN (seed worked example 2)")
    w("")
    w("A single 5x5 channel, shape (5, 5) (normcli reads a 2-D array as one channel):")
    w("")
    w("```")
    for row in SEED_INTRA:
        w("  " + " ".join(f"{v}" for v in row))
    w("```")
    w("")
    w("```sh")
    w(
        "normcli lrn sample_data/seed_intra.npy --mode intra --n 2"
        " --k 0 --alpha 1 --beta 1 -o out_intra.npy"
    )
    w("```")
    w("")
    w("n = 2: the 3x3 square centred at each pixel, cut off at the borders (a corner sees 2x2,")
    w("an edge pixel 2x3), b = a / Σ a² over that window:")
    w("")
    w("| (row, col) | where | window values | expected |")
    w("|---|---|---|---|")
    notes = {
        (0, 0): "corner, 2x2",
        (0, 4): "corner, 2x2",
        (4, 0): "corner, 2x2",
        (4, 4): "corner, 2x2",
        (0, 2): "top edge, 2x3",
        (2, 0): "left edge, 3x2",
        (2, 4): "right edge, 3x2",
        (1, 1): "interior, 3x3",
        (2, 2): "interior, 3x3",
    }
    a = np.array(SEED_INTRA)
    for (y, x), where in notes.items():
        win = a[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
        wv = " / ".join(",".join(map(str, r)) for r in win)
        w(f"| ({y}, {x}) | {where} | {wv} | {fmt_frac(exi[y, x])} |")
    w("")
    w("Full expected output (6 significant digits; zeros stay zero, no window is all zero):")
    w("")
    w("```")
    for y in range(5):
        w("  " + "  ".join(f"{float(v):>9.6g}" for v in exi[y]))
    w("```")
    w("")
    di = res["intra_default"]
    w("With the seed defaults instead (k = 2, α = 1e-4, β = 0.75) and n = 2,")
    w(f"`out[4, 4]` = 3 / (2 + 1e-4·10)^0.75 = {di[4, 4]:.7f} and")
    w(f"`out[1, 1]` = 1 / (2 + 1e-4·16)^0.75 = {di[1, 1]:.7f}.")
    w("")

    # ---------------- seed_batch
    xh, mu, var = res["bn"]
    stack = np.stack(batch)
    w("## `seed_batch/`: batch normalization over three activations")
    w("")
    w("`act0.npy`, `act1.npy`, `act2.npy`: three (C, H, W) = (4, 4, 4) integer-valued float32")
    w("activations (the seed's mini-batch of 3). Position q = 16·c + 4·row + col has a base")
    w("b = (q mod 7) - 3 + 2c and a step d = 1 + (q mod 3):")
    w("")
    w(
        "- even q: the three samples hold a permutation of (b - d,"
        " b, b + d): mean b, biased variance"
    )
    w("  2d²/3, normalized values -√(3/2), 0, +√(3/2) = ∓1.2247449 (with ε = 0);")
    w("- odd q: a permutation of (b, b, b + 3d): mean b + d, biased variance 2d², normalized")
    w("  values -1/√2, -1/√2, +√2 = -0.7071068, -0.7071068, 1.4142136 (with ε = 0).")
    w("")
    w("Every position has a spread (no zero variance), the permutation changes from position to")
    w("position, and the three files are all different.")
    w("")
    w("```sh")
    w("normcli batchnorm sample_data/seed_batch/ -o normed/")
    w("```")
    w("")
    w("Per activation (the seed's form: each of the 64 positions over its 3 values, biased")
    w("variance, ε = 1e-5, γ = 1, β = 0). A few positions:")
    w("")
    w("| (c, row, col) | act0, act1, act2 | mean | var | normed act0, act1, act2 |")
    w("|---|---|---|---|---|")
    for c, y, x in [(0, 0, 0), (0, 0, 1), (0, 1, 2), (1, 2, 3), (3, 3, 3)]:
        vals = ", ".join(f"{stack[m, c, y, x]:g}" for m in range(3))
        nv = ", ".join(f"{xh[m, c, y, x]:.6f}" for m in range(3))
        w(f"| ({c}, {y}, {x}) | {vals} | {mu[c, y, x]:g} | {var[c, y, x]:.6g} | {nv} |")
    w("")
    w("ε matters in the 6th digit: with d = 1, 1/√(2/3 + 1e-5) = 1.2247357 instead of 1.2247449.")
    w("Scaling back with γ = √(σ² + ε) and β = μ returns the inputs exactly (the seed's point that")
    w("training can undo the normalization).")
    xc, muc, varc = res["bn_channel"]
    w("")
    w("Per channel instead (statistics over the batch and both spatial axes, 48 values each):")
    w(
        "means "
        + ", ".join(f"{v:.6g}" for v in muc)
        + "; biased variances "
        + ", ".join(f"{v:.6g}" for v in varc)
        + "."
    )
    w(f"Then `normed/act0.npy[0, 0, 0]` = {xc[0, 0, 0, 0]:.6f}.")
    w("")

    # ---------------- pipeline
    dflt = res["inter_default"]
    w("## Pipeline: LRN with the defaults, then batch norm")
    w("")
    w("```sh")
    w("normcli lrn sample_data/seed_inter.npy -o - | normcli batchnorm - -o b.npy")
    w("```")
    w("")
    w("The first stage uses the seed defaults (n = 5: channels i-2..i+2, k = 2, α = 1e-4,")
    w("β = 0.75). Its output at a few positions:")
    w("")
    w("| position | input | LRN output |")
    w("|---|---|---|")
    for pos in [(0, 0, 0), (1, 0, 0), (0, 2, 2), (3, 2, 2), (3, 2, 1), (2, 1, 1)]:
        w(f"| {pos} | {inter[pos]:g} | {dflt[pos]:.7f} |")
    w("")
    w(f"(2^-0.75 = {2**-0.75:.7f}; the α term only moves the 5th digit here.) The stream holds one")
    w("(4, 3, 3) array, and a single input is its own batch along its first axis: 4 samples of")
    w("shape (3, 3), so per-activation batch norm normalizes each of the 9 positions over the 4")
    w("values above it (mean 0, variance σ²/(σ² + ε) ≈ 1 at each position).")
    w("")

    # ---------------- features
    st = np.stack(feats)
    w("## `features/`: conv1-like feature maps")
    w("")
    w(f"{len(feats)} files, each (C, H, W) = {fshape} float32 (all the same shape, so")
    w(f"`normcli batchnorm sample_data/features/` stacks them into {st.shape}).")
    w("Each is made from one procedurally rendered 80x80 RGB test image (8-bit, like a photo):")
    w("")
    w("| file | scene |")
    w("|---|---|")
    for i, n in enumerate(feat_names):
        w(f"| `img{i:02d}_conv1.npy` | {n.replace('_', ' ')} |")
    w("")
    w("Pipeline: pixels / 255 → 16 fixed 21x21 filters (cross-correlation, reflect padding) →")
    w(f"× {FEATURE_GAIN:g} → ReLU(x - {FEATURE_BIAS:g}) → 2x2 max pooling → values rounded to a")
    w("multiple of 2^-16. Channels:")
    w("")
    for i, n in enumerate(bank_names):
        w(f"- {i}: {n}")
    w("")
    zero = float((st == 0).mean())
    w(f"Statistics over all files: min {st.min():g}, max {st.max():.4f}, mean {st.mean():.4f},")
    w(
        f"{100 * zero:.1f}% exact zeros (ReLU). Per file, the max ranges from "
        f"{min(f.max() for f in feats):.3f} to {max(f.max() for f in feats):.3f}."
    )
    w("")
    w("```sh")
    w("normcli lrn sample_data/features/ --mode inter -o out/")
    w("```")
    w("")
    ref0 = lrn_inter_ref(feats[0].astype(np.float64), k=2.0, alpha=1e-4, beta=0.75, n=5)
    c, y, x = np.unravel_index(np.argmax(feats[0]), feats[0].shape)
    w(f"writes {len(feats)} files of shape {fshape} to `out/`. With the seed defaults most values")
    w("are simply divided by 2^0.75; the α term shows at strong responses: `img00_conv1.npy`")
    w(
        f"has its maximum {feats[0][c, y, x]:.6f} at ({c}, {y}, {x}), which becomes "
        f"{ref0[c, y, x]:.6f}"
    )
    w(
        f"(not {feats[0][c, y, x] * 2**-0.75:.6f}); the mean of `out/img00_conv1.npy` is "
        f"{ref0.mean():.6f} (float64 reference)."
    )
    w("")

    # ---------------- images
    w("## `images/`")
    w("")
    w("PNG files are (H, W, C) on disk; normcli reads them as (C, H, W).")
    w("")
    for name, shape, dtype, desc in images:
        w(f"- `{name}`: {desc}; {dtype}, {shape}.")
    w("")
    w("## `photos/`")
    w("")
    w(f"{len(PHOTOS)} photo-like JPEGs (RGB, 8 bits, quality 90) of mixed sizes, "
      "one subfolder deep,")
    w("for the README's dataset mean and std "
      "(`normcli stats sample_data/photos/ -r --per channel`):")
    w("")
    for rel, scene, w_, h_ in PHOTOS:
        w(f"- `{rel}`: {scene.replace('_', ' ')}, {w_}×{h_}.")
    w("")
    w("## Reproducibility")
    w("")
    w("Seeds are fixed (`numpy.random.RandomState`, whose streams numpy keeps frozen); there is no")
    w("FFT and no BLAS in the pipeline, and the convolution adds taps in a fixed order. Rendered")
    w("images are 8-bit before filtering and filter weights and features are rounded to a binary")
    w("grid, so last-bit differences in exp/sin/cos between platforms essentially never reach the")
    w(
        "`.npy` files. PNG and JPEG bytes also depend on the zlib and libjpeg Pillow was"
        " built with; PNGs' decoded pixels do"
    )
    w("not. `--check` reports which files differ.")
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


#: The normalization layers of a Caffe deploy.prototxt: BVLC AlexNet's two LRN layers
#: (bvlc_alexnet/deploy.prototxt) and a BatchNorm followed by its Scale, as ResNet's are.
CNN_NORMS_PROTOTXT = """\
name: "cnn_norms"
layer {
  name: "norm1"
  type: "LRN"
  bottom: "conv1"
  top: "norm1"
  lrn_param {
    local_size: 5
    alpha: 0.0001
    beta: 0.75
  }
}
layer {
  name: "norm2"
  type: "LRN"
  bottom: "conv2"
  top: "norm2"
  lrn_param {
    local_size: 5
    alpha: 0.0001
    beta: 0.75
  }
}
layer {
  name: "bn_conv1"
  type: "BatchNorm"
  bottom: "conv1"
  top: "conv1"
  batch_norm_param {
    use_global_stats: true
    eps: 1e-05
  }
}
layer {
  name: "scale_conv1"
  type: "Scale"
  bottom: "conv1"
  top: "conv1"
  scale_param {
    bias_term: true
  }
}
"""


#: Photo-like JPEGs of mixed sizes, one in a subfolder: the README's dataset mean and std
#: example (``normcli stats sample_data/photos/ -r --per channel``).  (path, scene, width, height)
PHOTOS = [
    ("city.jpg", "city", 160, 120),
    ("fruit.jpg", "fruit", 120, 160),
    ("forest.jpg", "forest", 192, 144),
    ("sunset_sea.jpg", "sunset_sea", 144, 96),
    ("landscape.jpg", "landscape", 112, 112),
    ("more/bricks.jpg", "bricks", 200, 150),
    ("more/marble.jpg", "marble", 96, 128),
]


def save_photos(photo_dir: Path) -> None:
    """The PHOTOS as baseline JPEGs (quality 90, 4:2:0): rendered square, cropped to size."""
    scenes = dict(SCENES)
    for i, (rel, scene, w, h) in enumerate(PHOTOS):
        rgb = to_uint8(scenes[scene](np.random.RandomState(700 + i), max(w, h)))
        y0, x0 = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(rgb[y0:y0 + h, x0:x0 + w])).save(
            buf, format="JPEG", quality=90, subsampling="4:2:0", optimize=True)
        path = photo_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())


def save_npy(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    inter, intra, batch = make_seed_inter(), make_seed_intra(), make_seed_batch()
    res = check_and_describe_seed(inter, intra, batch)
    save_npy(out / "seed_inter.npy", inter)
    save_npy(out / "seed_intra.npy", intra)
    for m, act in enumerate(batch):
        save_npy(out / "seed_batch" / f"act{m}.npy", act)

    bank, bank_names = filter_bank()
    feats, names = [], []
    for i, (name, fn) in enumerate(SCENES):
        rgb = to_uint8(fn(np.random.RandomState(100 + i), FEATURE_SIZE))
        f = features_from_rgb(rgb, bank)
        save_npy(out / "features" / f"img{i:02d}_conv1.npy", f)
        feats.append(f)
        names.append(name)
    assert len({f.shape for f in feats}) == 1

    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rgb = to_uint8(scene_landscape(np.random.RandomState(500), IMAGE_SIZE))
    save_png(img_dir / "landscape_rgb8.png", rgb)
    g8 = image_gray8(IMAGE_SIZE)
    save_png(img_dir / "still_life_gray8.png", g8)
    g16 = image_gray16(IMAGE_SIZE)
    save_png(img_dir / "nuclei_gray16.png", g16, mode="I;16")
    s = IMAGE_SIZE
    images = [  # name, on-disk shape, dtype, description
        (
            "landscape_rgb8.png",
            f"({s}, {s}, 3) → (3, {s}, {s})",
            "uint8",
            "RGB, 8 bits per channel (Pillow mode RGB): mountains at dusk over a lake",
        ),
        (
            "still_life_gray8.png",
            f"({s}, {s}) → (1, {s}, {s})",
            "uint8",
            "greyscale, 8 bits (mode L): fruit on a wooden table",
        ),
        (
            "nuclei_gray16.png",
            f"({s}, {s}) → (1, {s}, {s})",
            "uint16",
            "greyscale, 16 bits (mode I;16): fluorescence-microscopy-like stained nuclei, values "
            f"{int(g16.min())}..{int(g16.max())} of 0..65535",
        ),
    ]
    model_dir = out / "models"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "cnn_norms.prototxt").write_text(CNN_NORMS_PROTOTXT, encoding="ascii")
    save_photos(out / "photos")
    write_readme(out, inter, intra, batch, res, feats, names, bank_names, images)


def all_files(d: Path):
    return sorted(p.relative_to(d) for p in d.rglob("*") if p.is_file())


def check(existing: Path) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "sample_data"
        generate(fresh)
        a, b = all_files(existing), all_files(fresh)
        bad = 0
        for rel in sorted(set(a) | set(b)):
            if rel not in a or rel not in b:
                print(f"only in {'new' if rel in b else 'existing'}: {rel}")
                bad += 1
            elif not filecmp.cmp(existing / rel, fresh / rel, shallow=False):
                print(f"differs: {rel}")
                bad += 1
        print(
            f"{len(b)} files regenerated, {bad} differ"
            if bad
            else f"{len(b)} files regenerated, all byte-identical"
        )
        return 1 if bad else 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    ap.add_argument(
        "--check",
        action="store_true",
        help="regenerate in a temporary folder and compare with --out",
    )
    args = ap.parse_args(argv)
    if args.check:
        return check(args.out)
    generate(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
