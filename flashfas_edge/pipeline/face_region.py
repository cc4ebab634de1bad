"""The face region the flash lights: an ellipse placed by the 5 landmarks (docs/ARCHITECTURE.md §1
step 5).

Exposure, flash SNR and challenge verification all measure the *face*, not the frame: a replay
screen or the background must not vote. The ellipse spans cheeks, forehead and chin (where the
flash reflection carries shape, ATR-FAS §3.2) and is scaled by the inter-ocular distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Ellipse in inter-ocular distances (IOD): centred a little above the eye–mouth midpoint,
# 0.9 IOD half-width (cheeks), 1.25 IOD half-height (brow to chin). An adult face is about
# 2.1–2.2 IODs wide at the cheekbones and narrower below, so at 1.0 the ellipse's sides reached
# the outline of a scanned face, and past it with a little yaw: before a bright window 11–13 % of
# the region was the window itself, saturated, and a still, well-lit face was told "overexposed"
# (0.9: 6–8 %).
_HALF_WIDTH_IOD = 0.9
_HALF_HEIGHT_IOD = 1.25
_CENTRE_UP_IOD = 0.15


def interocular_px(points: np.ndarray) -> float:
    """Distance between the two eye landmarks (LANDMARK_NAMES order: left_eye, right_eye, ...)."""
    return float(np.linalg.norm(points[1] - points[0]))


@dataclass(frozen=True)
class FaceCrop:
    """The face ellipse of one frame: its bounding ``patch`` (clipped to the frame) + ``mask``."""

    patch: np.ndarray  # uint8 [h, w, 3], a view into the frame
    mask: np.ndarray  # uint8 [h, w], 255 inside the ellipse
    top: int = 0  # the frame row of the patch's first row
    left: int = 0  # the frame column of the patch's first column

    @property
    def pixel_count(self) -> int:
        return int(cv2.countNonZero(self.mask)) if self.mask.size else 0

    def mean_rgb(self) -> np.ndarray:
        """float64 [3]: mean camera level per channel inside the ellipse."""
        return np.array(cv2.mean(self.patch, mask=self.mask)[:3], dtype=np.float64)

    def row_span(self) -> tuple[int, int] | None:
        """[first, last] frame rows of the ellipse (None: it has no pixel in the frame)."""
        rows = np.flatnonzero(self.mask.any(axis=1)) if self.mask.size else np.empty(0, int)
        return (self.top + int(rows[0]), self.top + int(rows[-1])) if rows.size else None

    def saturated_frac(self, level: int) -> float:
        """Share of the ellipse's pixels with any channel at or above ``level``."""
        count = self.pixel_count
        if count == 0:
            return 0.0
        # inRange marks pixels whose every channel is below ``level``; the rest are clipped.
        below = cv2.inRange(self.patch, (0, 0, 0), (level - 1, level - 1, level - 1))
        unclipped = cv2.countNonZero(cv2.bitwise_and(below, self.mask))
        return float(count - unclipped) / count


def face_crop(image: np.ndarray, points: np.ndarray) -> FaceCrop:
    """Cut the face ellipse of ``points`` (float [5, 2]) out of ``image`` (uint8 [H, W, 3])."""
    h, w = image.shape[:2]
    iod = max(interocular_px(points), 1.0)
    eyes_mid = (points[0] + points[1]) / 2
    mouth_mid = (points[3] + points[4]) / 2
    # The face's own "up" follows the eye line, so a tilted head keeps its region.
    axis = points[1] - points[0]
    angle_deg = float(np.degrees(np.arctan2(axis[1], axis[0])))
    up = np.array([axis[1], -axis[0]]) / iod
    centre = (eyes_mid + mouth_mid) / 2 + up * (_CENTRE_UP_IOD * iod)
    half_w, half_h = _HALF_WIDTH_IOD * iod, _HALF_HEIGHT_IOD * iod
    reach = max(half_w, half_h)
    x0 = int(np.clip(np.floor(centre[0] - reach), 0, w))
    x1 = int(np.clip(np.ceil(centre[0] + reach) + 1, 0, w))
    y0 = int(np.clip(np.floor(centre[1] - reach), 0, h))
    y1 = int(np.clip(np.ceil(centre[1] + reach) + 1, 0, h))
    patch = image[y0:y1, x0:x1]
    mask = np.zeros(patch.shape[:2], dtype=np.uint8)
    if mask.size:
        cv2.ellipse(
            mask,
            (int(round(centre[0] - x0)), int(round(centre[1] - y0))),
            (max(int(round(half_w)), 1), max(int(round(half_h)), 1)),
            angle_deg,
            0,
            360,
            255,
            thickness=-1,
        )
    return FaceCrop(patch=patch, mask=mask, top=y0, left=x0)


def pixel_noise_sigma(crop: FaceCrop) -> float:
    """Per-pixel noise σ (digital levels) inside the face, by Immerkær's estimator.

    J. Immerkær, "Fast Noise Variance Estimation", CVIU 64(2), 1996: the 3×3 kernel
    N = [[1,-2,1],[-2,4,-2],[1,-2,1]] cancels locally planar image content, leaving noise:
    σ = sqrt(π/2) / 6 · mean|I * N|. Skin texture leaks in a little, which over-estimates σ —
    the safe side for a gate.
    """
    if crop.patch.shape[0] < 3 or crop.patch.shape[1] < 3:
        return float("inf")
    grey = cv2.transform(crop.patch.astype(np.float32), np.full((1, 3), 1 / 3, np.float32))
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
    response = cv2.filter2D(grey, cv2.CV_32F, kernel, borderType=cv2.BORDER_REFLECT)
    # Interior of the mask only: the kernel must not straddle the ellipse border.
    interior = cv2.erode(crop.mask, np.ones((3, 3), np.uint8)) > 0
    if interior.sum() < 16:
        return float("inf")
    return float(np.sqrt(np.pi / 2) / 6 * np.abs(response[interior]).mean())
