"""LandmarkProvider for the simulated kiosk and recorded sessions: the renderer's ground truth.

The simulated camera puts the true landmarks of every face it rendered into ``frame.meta``
(``"landmarks"``: float32 [5, 2] for one face or [K, 5, 2] for K faces; with several people in
view the simulated camera also lists every face, main first, under ``"faces"``, which wins; optional
``"face_boxes"`` [K, 4]); a frame without the key, with None or with NaN points shows no face.
Real detectors are never exact, so Gaussian noise of ``noise_px`` per coordinate can be added to
exercise alignment and the motion gate the way a detector would. On a real camera this provider
would see no face in any frame — the daemon's config selects ``mtcnn`` there.
"""

from __future__ import annotations

import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.face.base import FaceLandmarks

# A face box from its landmarks, in inter-ocular distances around the landmarks' centre: roughly
# the box a face detector draws (brow to chin, ear to ear).
_BOX_HALF_WIDTH_IOD = 1.1
_BOX_UP_IOD = 1.3
_BOX_DOWN_IOD = 1.4


def box_from_landmarks(points: np.ndarray) -> tuple[float, float, float, float]:
    iod = float(np.linalg.norm(points[1] - points[0]))
    cx, cy = (float(v) for v in points.mean(axis=0))
    return (
        cx - _BOX_HALF_WIDTH_IOD * iod,
        cy - _BOX_UP_IOD * iod,
        cx + _BOX_HALF_WIDTH_IOD * iod,
        cy + _BOX_DOWN_IOD * iod,
    )


class GroundTruthLandmarks:
    """Reads ``frame.meta["landmarks"]``; ``noise_px`` σ of Gaussian noise, ``seed`` for tests."""

    def __init__(self, noise_px: float = 0.0, seed: int | None = None) -> None:
        if noise_px < 0:
            raise ValueError(f"noise_px must be >= 0, got {noise_px}")
        self.noise_px = float(noise_px)
        self._rng = np.random.default_rng(seed)

    def detect(self, frame: Frame) -> list[FaceLandmarks]:
        raw = frame.meta.get("faces", frame.meta.get("landmarks"))
        if raw is None:
            return []  # the renderer drew no face in this frame
        points = np.asarray(raw, dtype=np.float32)
        if points.ndim == 2:
            points = points[None]
        if points.ndim != 3 or points.shape[1:] != (5, 2):
            raise ValueError(
                f"ground-truth landmarks must be [5, 2] or [K, 5, 2], got {points.shape}"
            )
        boxes = frame.meta.get("face_boxes")
        faces = []
        for k, pts in enumerate(points):
            if not np.all(np.isfinite(pts)):
                continue  # NaN: the renderer placed this face outside the picture
            if self.noise_px > 0:
                pts = pts + self._rng.normal(0.0, self.noise_px, size=pts.shape).astype(np.float32)
            if boxes is not None:
                x0, y0, x1, y1 = (float(v) for v in np.asarray(boxes)[k])
                box = (x0, y0, x1, y1)
            else:
                box = box_from_landmarks(pts)
            faces.append(FaceLandmarks(points=np.ascontiguousarray(pts), box=box, score=1.0))
        # "Most confident first": all are certain, so the largest face leads.
        faces.sort(key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        return faces

    def refine(
        self, frame: Frame, box: tuple[float, float, float, float]
    ) -> FaceLandmarks | None:
        """The face whose centre lies inside ``box`` (the nearest one), None without one."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        faces = self.detect(frame)
        inside = [f for f in faces if f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3]]
        centre = np.array([cx, cy], np.float32)

        def distance(face: FaceLandmarks) -> float:
            return float(np.linalg.norm(face.points.mean(axis=0) - centre))

        return min(inside, key=distance, default=None)
