"""Procedural texture maps (smooth value noise) and their lookup at arbitrary surface coordinates.

No face photo set with a permissive licence ships in a pip package (docs/ARCHITECTURE.md §8), so
skin, hair,
clothes and walls are procedural: band-limited noise at a few scales.
"""

from __future__ import annotations

import cv2
import numpy as np


def value_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """float32 [size, size] smooth noise in about [-1, 1] with ``cells`` features per side."""
    grid = rng.standard_normal((cells + 3, cells + 3)).astype(np.float32)
    big = cv2.resize(grid, (size + 2 * size // cells, size + 2 * size // cells),
                     interpolation=cv2.INTER_CUBIC)
    off = size // cells
    out = big[off : off + size, off : off + size]
    return np.ascontiguousarray(out / max(float(np.std(out)), 1e-6) * 0.5)


_REMAP_COLS = 1024  # cv2.remap wants maps smaller than 32767 in each dimension


def _remap_flat(img: np.ndarray, x: np.ndarray, y: np.ndarray, border: int) -> np.ndarray:
    n = x.shape[0]
    rows = max(1, -(-n // _REMAP_COLS))
    pad = rows * _REMAP_COLS - n
    mx = np.pad(x.astype(np.float32), (0, pad)).reshape(rows, _REMAP_COLS)
    my = np.pad(y.astype(np.float32), (0, pad)).reshape(rows, _REMAP_COLS)
    out = cv2.remap(img, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=border)
    return out.reshape((rows * _REMAP_COLS,) + img.shape[2:])[:n]


def sample(tex: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Bilinear lookup of ``tex`` [S, S] or [S, S, C] at u, v in [0, 1] (arrays [N]); wraps."""
    s = tex.shape[0]
    return _remap_flat(tex, np.mod(u, 1.0) * (s - 1), np.mod(v, 1.0) * (s - 1),
                       cv2.BORDER_REFLECT)


def sample_image(img: np.ndarray, x_px: np.ndarray, y_px: np.ndarray) -> np.ndarray:
    """Bilinear lookup of an image [H, W, C] at pixel coordinates (arrays [N]); clamps."""
    return _remap_flat(img, x_px, y_px, cv2.BORDER_REPLICATE)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)
