"""Least-squares similarity (Umeyama 1991) landmarks → template, the alignment convention of the
core (docs/ARCHITECTURE.md §1 step 7), in numpy so the renderer's labels never depend on a build of
_core.
"""

from __future__ import annotations

import numpy as np


def similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """float64 [2, 3] M with dst ≈ M @ [src, 1] (rotation, uniform scale, translation)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = float((s0**2).sum() / len(src))
    if var_s <= 1e-12:
        raise ValueError("degenerate landmarks: all points coincide")
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    r = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / var_s)
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])
