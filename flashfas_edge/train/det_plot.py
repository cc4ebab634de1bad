"""DET curve (ISO/IEC 30107-3: APCER vs BPCER on normal-deviate axes) drawn with OpenCV.

matplotlib is not a dependency of the product; a DET plot is lines on a probit grid, so OpenCV,
which we ship anyway, draws it.
"""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

from flashfas_edge.train.metrics import ErrorCurves

_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
_LO, _HI = 0.0005, 0.5
_COLOURS = [(0, 0, 0), (200, 60, 40), (40, 140, 40), (40, 60, 200), (160, 40, 160)]  # BGR


def _probit(p: np.ndarray) -> np.ndarray:
    inv = NormalDist().inv_cdf
    return np.array([inv(float(v)) for v in np.clip(p, _LO, _HI)])


def draw_det(curves: ErrorCurves, path: Path, title: str = "DET") -> None:
    size, margin = 640, 70
    img = np.full((size, size, 3), 255, np.uint8)
    lo, hi = _probit(np.array([_LO, _HI]))
    span = size - 2 * margin

    def to_px(apcer: np.ndarray, bpcer: np.ndarray) -> np.ndarray:
        x = margin + (_probit(apcer) - lo) / (hi - lo) * span
        y = size - margin - (_probit(bpcer) - lo) / (hi - lo) * span
        return np.stack([x, y], axis=1).round().astype(np.int32)

    font = cv2.FONT_HERSHEY_SIMPLEX
    for tick in _TICKS:
        ((x, y),) = to_px(np.array([tick]), np.array([tick]))
        cv2.line(img, (int(x), margin), (int(x), size - margin), (220, 220, 220), 1)
        cv2.line(img, (margin, int(y)), (size - margin, int(y)), (220, 220, 220), 1)
        label = f"{tick * 100:g}"
        cv2.putText(img, label, (int(x) - 10, size - margin + 18), font, 0.4, (0, 0, 0), 1)
        cv2.putText(img, label, (margin - 35, int(y) + 4), font, 0.4, (0, 0, 0), 1)
    cv2.rectangle(img, (margin, margin), (size - margin, size - margin), (0, 0, 0), 1)
    cv2.putText(img, "APCER (%)", (size // 2 - 40, size - 20), font, 0.5, (0, 0, 0), 1)
    cv2.putText(img, "BPCER (%)", (5, margin - 20), font, 0.5, (0, 0, 0), 1)
    cv2.putText(img, title, (margin, 30), font, 0.6, (0, 0, 0), 1)
    series = [("all attacks", curves.apcer_pooled)] + list(curves.apcer_species.items())
    for i, (name, apcer) in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        pts = to_px(apcer, curves.bpcer)
        cv2.polylines(img, [pts.reshape(-1, 1, 2)], False, colour, 2, cv2.LINE_AA)
        cv2.putText(img, name, (size - margin - 120, margin + 20 + 18 * i), font, 0.45, colour, 1)
    diag = to_px(np.array([_LO, _HI]), np.array([_LO, _HI]))
    cv2.line(img, tuple(diag[0]), tuple(diag[1]), (150, 150, 150), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write DET plot {path}")
