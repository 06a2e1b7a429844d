"""Synthetic pixel content: plausible-looking images made from ellipses, speckle and noise.

Pure numpy; every function takes its random generator, so the same seed gives the same pixels.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def rng_for(*key: int) -> np.random.Generator:
    """A generator seeded from a tuple of non-negative integers (seed, study, series, ...)."""
    return np.random.default_rng(list(key))


def _grid(rows: int, cols: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    return (y - rows / 2) / (rows / 2), (x - cols / 2) / (cols / 2)


def _ellipse(
    y: NDArray[np.float64], x: NDArray[np.float64], cy: float, cx: float, ry: float, rx: float
) -> NDArray[np.bool_]:
    return np.asarray(((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0)


def ct_slice(size: int, position: float, rng: np.random.Generator) -> NDArray[np.uint16]:
    """An axial "chest" slice in stored values (HU + 1024, 12 bits); ``position`` in [0, 1]."""
    y, x = _grid(size, size)
    hu = np.full((size, size), -1000.0)
    hu[_ellipse(y, x, 0.05, 0.0, 0.70, 0.88)] = 40.0
    lung_r = 0.45 + 0.1 * np.sin(np.pi * position)
    hu[_ellipse(y, x, -0.02, -0.40, lung_r, 0.30)] = -820.0
    hu[_ellipse(y, x, -0.02, 0.40, lung_r, 0.30)] = -820.0
    hu[_ellipse(y, x, 0.55, 0.0, 0.12, 0.12)] = 700.0  # vertebra
    hu[_ellipse(y, x, 0.05, 0.08, 0.16, 0.14)] = 45.0 + 30.0 * position  # heart
    hu += rng.normal(0.0, 12.0, hu.shape)
    return np.clip(hu + 1024.0, 0, 4095).astype(np.uint16)


def mr_slice(size: int, position: float, rng: np.random.Generator) -> NDArray[np.uint16]:
    """An axial "head" slice, 12-bit magnitude with Rician-looking noise."""
    y, x = _grid(size, size)
    img = np.zeros((size, size))
    img[_ellipse(y, x, 0.0, 0.0, 0.85, 0.72)] = 900.0  # scalp/fat
    img[_ellipse(y, x, 0.0, 0.0, 0.78, 0.64)] = 600.0  # grey matter
    img[_ellipse(y, x, 0.0, 0.0, 0.55, 0.45)] = 1500.0 + 200.0 * position  # white matter
    img[_ellipse(y, x, 0.0, -0.12, 0.22, 0.06)] = 2600.0  # ventricles (T2-bright)
    img[_ellipse(y, x, 0.0, 0.12, 0.22, 0.06)] = 2600.0
    noisy = np.hypot(img + rng.normal(0.0, 25.0, img.shape), rng.normal(0.0, 25.0, img.shape))
    return np.clip(noisy, 0, 4095).astype(np.uint16)


def radiograph(rows: int, cols: int, rng: np.random.Generator, bits: int) -> NDArray[np.uint16]:
    """A frontal "chest" radiograph in display sense (high = bright), ``bits`` deep."""
    y, x = _grid(rows, cols)
    top = float(2**bits - 1)
    img = np.full((rows, cols), 0.55 * top) - 0.15 * top * y
    lungs = _ellipse(y, x, -0.05, -0.35, 0.6, 0.28) | _ellipse(y, x, -0.05, 0.35, 0.6, 0.28)
    img[lungs] = 0.22 * top
    img[_ellipse(y, x, 0.15, 0.05, 0.3, 0.22)] = 0.7 * top  # heart
    img[np.abs(x) < 0.05] = 0.85 * top  # spine
    img += rng.normal(0.0, 0.01 * top, img.shape)
    return np.clip(img, 0, top).astype(np.uint16)


def us_frames(frames: int, rows: int, cols: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """RGB ultrasound cine: a grey speckle sector with a moving colour blob, black outside."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    apex_y, apex_x = rows * 0.08, cols / 2
    radius = np.hypot(yy - apex_y, xx - apex_x)
    angle = np.arctan2(xx - apex_x, yy - apex_y)
    sector = (radius < rows * 0.9) & (np.abs(angle) < 0.65) & (radius > rows * 0.05)
    out = np.zeros((frames, rows, cols, 3), dtype=np.uint8)
    for f in range(frames):
        speckle = rng.rayleigh(38.0, (rows, cols)) * (1.0 - radius / (rows * 1.2))
        grey = np.where(sector, np.clip(speckle, 0, 255), 0).astype(np.uint8)
        out[f] = grey[..., None]
        cy = rows * (0.45 + 0.1 * np.sin(2 * np.pi * f / max(frames, 1)))
        blob = sector & (np.hypot(yy - cy, xx - apex_x) < rows * 0.08)
        out[f][blob] = (200, 40, 30)
    return out


def xa_frames(frames: int, rows: int, cols: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """8-bit angiography run: bright background, a dark vessel tree filling with contrast."""
    y, x = _grid(rows, cols)
    base = 170.0 - 40.0 * (x**2 + y**2)
    steps = 60
    arrival = np.full((rows, cols), np.inf)  # when contrast reaches each pixel, in [0, 1)
    for _ in range(4):
        pts = np.cumsum(rng.normal(0.0, 0.04, (steps, 2)), axis=0) + rng.uniform(-0.3, 0.3, 2)
        for k, (py, px) in enumerate(pts):
            disk = (y - py) ** 2 + (x - px) ** 2 < 0.0008
            arrival[disk] = np.minimum(arrival[disk], k / steps)
    out = np.empty((frames, rows, cols), dtype=np.uint8)
    for f in range(frames):
        img = np.where(arrival < (f + 1) / frames, 60.0, base)
        img += rng.normal(0.0, 4.0, img.shape)
        out[f] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def screen(rows: int, cols: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """An RGB "viewer screen save": dark UI, one image panel and a coloured status bar."""
    img = np.full((rows, cols, 3), 24, dtype=np.uint8)
    panel = radiograph(rows // 2, cols // 2, rng, 8).astype(np.uint8)
    r0, c0 = rows // 3, cols // 4
    img[r0 : r0 + panel.shape[0], c0 : c0 + panel.shape[1]] = panel[..., None]
    img[-max(8, rows // 20) :, :] = (30, 60, 140)
    return img
