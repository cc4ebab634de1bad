"""Step 6 + the face gates of step 5: one face, the right size, still enough, in every state frame.

The provider runs on the N0 frames that sync chose. Each gate that fails stops the check with
``retry`` and its reason; the measurements behind it go into ``detail``. A provider that can
search near a known face (``detect_near``, e.g. MTCNN) searches the whole frame only for the first
state frame and near the face for the others (~0.3 s later): several faces are then counted in
the first frame and around the subject, which is where a second person matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.face.base import FaceLandmarks, LandmarkProvider
from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.pipeline.face_region import interocular_px
from flashfas_edge.pipeline.rejection import retry
from flashfas_edge.pipeline.result import Reason


@runtime_checkable
class NearbyFaceSearch(Protocol):
    """Optional capability of a LandmarkProvider: look only around a face found just before."""

    def detect_near(
        self, frame: Frame, box: tuple[float, float, float, float]
    ) -> list[FaceLandmarks]: ...


@dataclass(frozen=True)
class FaceTrack:
    landmarks: np.ndarray  # float32 [N0, 5, 2], one face per state frame (play order)
    boxes: np.ndarray  # float32 [N0, 4]
    interocular_px: float  # median over frames
    motion_iod: float  # largest landmark excursion from the median, in IODs
    detail: dict[str, Any]


def _area(box: Sequence[float]) -> float:
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def _pick_face(faces: list[FaceLandmarks], previous: FaceLandmarks | None) -> FaceLandmarks:
    if previous is None:
        return max(faces, key=lambda f: _area(f.box))
    centre = previous.points.mean(axis=0)
    return min(faces, key=lambda f: float(np.linalg.norm(f.points.mean(axis=0) - centre)))


def track_face(
    frames: Sequence[Frame], provider: LandmarkProvider, gates: GateThresholds
) -> FaceTrack:
    chosen: list[FaceLandmarks] = []
    counts: list[int] = []
    # One search window for the whole sequence, anchored on the first frame's face, so the
    # detector sees the same crop geometry in every frame and its jitter does not read as motion.
    search = provider if isinstance(provider, NearbyFaceSearch) else None
    anchor: tuple[float, float, float, float] | None = None
    for slot, frame in enumerate(frames):
        if search is not None and anchor is not None:
            found = search.detect_near(frame, anchor)
        else:
            found = provider.detect(frame)
        faces = [f for f in found if f.score >= gates.min_face_score]
        counts.append(len(faces))
        if not faces:
            raise retry(Reason.NO_FACE, slot=slot, faces_per_frame=counts)
        main = max(_area(f.box) for f in faces)
        sizeable = [f for f in faces if _area(f.box) >= gates.second_face_min_area_ratio * main]
        if len(sizeable) > 1:
            raise retry(Reason.MULTIPLE_FACES, slot=slot, faces=len(sizeable))
        face = _pick_face(sizeable, chosen[-1] if chosen else None)
        if search is not None and anchor is None:
            anchor = face.box
            again = [
                f for f in search.detect_near(frame, anchor) if f.score >= gates.min_face_score
            ]
            if again:
                face = _pick_face(again, face)
        chosen.append(face)

    landmarks = np.stack([f.points for f in chosen]).astype(np.float32)
    boxes = np.array([f.box for f in chosen], dtype=np.float32)
    iods = np.array([interocular_px(p) for p in landmarks])
    iod = float(np.median(iods))
    frame_h = frames[0].image.shape[0]
    interocular_frac = iod / frame_h
    detail: dict[str, Any] = {
        "interocular_px": round(iod, 2),
        "interocular_frac": round(interocular_frac, 4),
        "face_scores": [round(float(f.score), 4) for f in chosen],
    }
    if iod < gates.min_interocular_px:
        raise retry(Reason.FACE_TOO_SMALL, **detail, min_interocular_px=gates.min_interocular_px)
    if interocular_frac > gates.max_interocular_frac:
        raise retry(
            Reason.FACE_TOO_LARGE, **detail, max_interocular_frac=gates.max_interocular_frac
        )
    # Motion: how far any landmark strays from its median position over the state frames.
    median_points = np.median(landmarks, axis=0)
    motion_iod = float(np.linalg.norm(landmarks - median_points, axis=2).max() / iod)
    detail["motion_iod"] = round(motion_iod, 4)
    if motion_iod > gates.max_motion_iod:
        raise retry(Reason.MOTION, **detail, max_motion_iod=gates.max_motion_iod)
    return FaceTrack(
        landmarks=landmarks, boxes=boxes, interocular_px=iod, motion_iod=motion_iod, detail=detail
    )
