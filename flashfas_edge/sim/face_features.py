"""Where a live face's painted features sit: eye openings and irises, brows, lips, the open mouth,
blush, beard and T-zone, as masks over the head's normalised coordinates (x/a, y/b; image-left
first, y down).

The procedural head has them at fixed positions; a scanned face (sim/face_shape.py) along its own
68 landmark contours (Multi-PIE order), so eyes, brows and lips follow identity and expression.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim.texture import smoothstep

# Procedural landmark positions in normalised face coordinates (X = x / a, Y = y / b).
EYE_X, EYE_Y = 0.36, -0.17
NOSE_Y = 0.12
MOUTH_X, MOUTH_Y = 0.25, 0.45
CHIN_Y = 0.9  # the underside of the chin relief
IRIS_RADIUS_M, PUPIL_RADIUS_M = 0.0058, 0.0022


def bump(x: np.ndarray, y: np.ndarray, x0: float, y0: float, sx: float, sy: float) -> np.ndarray:
    """Gaussian bump centred at (x0, y0) with widths (sx, sy)."""
    return np.exp(-(((x - x0) / sx) ** 2) - ((y - y0) / sy) ** 2)


@dataclass(frozen=True)
class FeatureMasks:
    """Per surface point [N]: soft masks in [0, 1] unless said otherwise."""

    blush: np.ndarray
    lips: np.ndarray
    beard: np.ndarray  # where a beard grows (before the lips are cut out)
    brow: np.ndarray
    tzone: np.ndarray  # forehead-and-nose shine
    eye_open: np.ndarray  # bool: sclera / iris visible between the lids
    iris_r_m: np.ndarray  # metres from the nearer iris centre
    mouth_gap: np.ndarray | None  # bool: inside the open lips (None: the mouth is closed)


def _area_features(x_n: np.ndarray, y_n: np.ndarray, cheek: tuple[float, float],
                   beard_y: tuple[float, float], tzone_y: float) -> tuple[np.ndarray, ...]:
    ax = np.abs(x_n)
    blush = bump(ax, y_n, cheek[0], cheek[1], 0.2, 0.15)
    beard = smoothstep(beard_y[0], beard_y[1], y_n) * smoothstep(1.0, 0.8, ax)
    tzone = bump(x_n, y_n, 0, tzone_y, 0.2, 0.5)
    return blush, beard, tzone


def procedural_features(x_n: np.ndarray, y_n: np.ndarray,
                        axes: tuple[float, float, float]) -> FeatureMasks:
    """The procedural head's features at the fixed positions above."""
    ax = np.abs(x_n)
    blush, beard, tzone = _area_features(x_n, y_n, (0.48, 0.15), (0.25, 0.4), -0.2)
    lips = smoothstep(1.0, 0.7, (x_n / 0.26) ** 2 + ((y_n - MOUTH_Y) / 0.075) ** 2)
    brow_y = EYE_Y - 0.16 - 0.05 * (1 - ((ax - EYE_X) / 0.26) ** 2)
    brow = (smoothstep(0.04, 0.015, np.abs(y_n - brow_y)) * smoothstep(0.1, 0.16, ax)
            * smoothstep(0.64, 0.56, ax))
    eye_x = np.where(x_n < 0, -EYE_X, EYE_X)
    open_ = ((x_n - eye_x) / 0.15) ** 2 + ((y_n - EYE_Y) / 0.052) ** 2 < 1.0
    r_m = np.hypot((x_n - eye_x) * axes[0], (y_n - EYE_Y) * axes[1])
    return FeatureMasks(blush, lips, beard, brow, tzone, open_, r_m, None)


def _curve(points: np.ndarray, x: np.ndarray, degree: int) -> np.ndarray:
    """y of a lid or lip line through ``points`` [K, 2] at x: a least-squares polynomial for
    the smooth lids, else piecewise linear."""
    if degree:
        return np.polyval(np.polyfit(points[:, 0], points[:, 1], degree), x)
    order = np.argsort(points[:, 0])
    return np.interp(x, points[order, 0], points[order, 1])


def _between(x: np.ndarray, y: np.ndarray, upper: np.ndarray, lower: np.ndarray,
             degree: int = 0) -> np.ndarray:
    """Signed distance (normalised y) inside the band between two lines that share their end
    points, negative outside; x beyond the ends is outside."""
    lo, hi = min(upper[0, 0], upper[-1, 0]), max(upper[0, 0], upper[-1, 0])
    d = np.minimum(y - _curve(upper, x, degree), _curve(lower, x, degree) - y)
    return np.where((x > lo) & (x < hi), d, -1.0)


def contour_features(x_n: np.ndarray, y_n: np.ndarray, axes: tuple[float, float, float],
                     lm: np.ndarray) -> FeatureMasks:
    """A scanned face's features along its 68 landmarks ``lm`` [68, 2] (normalised)."""
    eyes = (lm[36:42], lm[42:48])
    centres = [e.mean(axis=0) for e in eyes]
    eye_x = 0.5 * (centres[1][0] - centres[0][0])
    eye_y = 0.5 * (centres[0][1] + centres[1][1])
    nose_y = float(lm[30, 1])
    # the soft features keep the procedural head's offsets from its eyes and nose
    blush, beard, tzone = _area_features(
        x_n, y_n, (eye_x + 0.48 - EYE_X, nose_y + 0.15 - NOSE_Y),
        (nose_y + 0.25 - NOSE_Y, nose_y + 0.4 - NOSE_Y), eye_y - 0.2 - EYE_Y)
    # eyes: between the upper lid (corner, 2 points, corner) and the lower lid
    open_ = np.zeros(x_n.shape, bool)
    for e in eyes:
        open_ |= _between(x_n, y_n, e[[0, 1, 2, 3]], e[[3, 4, 5, 0]], degree=2) > 0
    side = x_n >= 0
    cx = np.where(side, centres[1][0], centres[0][0])
    cy = np.where(side, centres[1][1], centres[0][1])
    r_m = np.hypot((x_n - cx) * axes[0], (y_n - cy) * axes[1])
    # brows: a band just below the landmark line (it traces the brow's upper edge), fading out
    # at both ends
    brow = np.zeros(x_n.shape, np.float32)
    for pts in (lm[17:22], lm[22:27]):
        order = np.argsort(pts[:, 0])
        xs, ys = pts[order, 0], pts[order, 1]
        centre = np.interp(x_n, xs, ys) + 0.02
        along = smoothstep(xs[0] - 0.02, xs[0] + 0.04, x_n) * smoothstep(xs[-1] + 0.02,
                                                                         xs[-1] - 0.04, x_n)
        brow = np.maximum(brow, smoothstep(0.04, 0.015, np.abs(y_n - centre)) * along)
    # lips: the outer contour (48–54 upper, 54–59, 48 lower), softened over ~1 mm
    lips = smoothstep(-0.004, 0.012, _between(x_n, y_n, lm[48:55], lm[[54, 55, 56, 57, 58,
                                                                            59, 48]]))
    gap = _between(x_n, y_n, lm[60:65], lm[[64, 65, 66, 67, 60]]) > 0
    return FeatureMasks(blush, lips, beard, brow, tzone, open_, r_m,
                        gap if np.any(gap) else None)
