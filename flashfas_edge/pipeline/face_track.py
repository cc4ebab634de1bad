"""Step 6 + the face gates of step 5: one face, the right size, still enough, in every state frame.

The provider runs on the N0 frames that sync chose (and, before the flash, on the newest frames of
the stream: presence.py). Each gate that fails stops the check with ``retry`` and its reason; the
measurements behind it go into ``detail``. The whole frame is searched only where no face is known
yet: from there on the face is tracked from its box in the frame before — a provider that can
refine a known box (``refine``, MTCNN's last stage alone) does that, one that can search near it
(``detect_near``) does that. Faces already tracked while the frames arrived (``known``, by frame
index: capture_tracker.py) are not looked for again. Several faces are counted wherever the frame
is searched, which is where a second person matters; presence.py searches a frame just before the
flash. Such a search may leave out faces too small to count (``detect_prominent``: MTCNN then skips
its pyramid's finest levels when the face is near).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.face.base import FaceLandmarks, FaceRefiner, LandmarkProvider
from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.pipeline.face_region import interocular_px
from flashfas_edge.pipeline.registration import register_landmarks
from flashfas_edge.pipeline.rejection import CheckRejected, retry
from flashfas_edge.pipeline.result import Reason

# Frames the detector itself must find the face in; the rest may come from registration.
MIN_DETECTED_FRAMES = 2


@runtime_checkable
class NearbyFaceSearch(Protocol):
    """Optional capability of a LandmarkProvider: look only around a face found just before."""

    def detect_near(
        self, frame: Frame, box: tuple[float, float, float, float]
    ) -> list[FaceLandmarks]: ...


@runtime_checkable
class ProminentFaceSearch(Protocol):
    """Optional capability of a LandmarkProvider: a whole-frame search that may leave out faces
    smaller than ``relative_side`` × the largest one (MTCNN: it skips the pyramid's finest
    levels when the face is near)."""

    def detect_prominent(
        self, frame: Frame, relative_side: float, min_score: float
    ) -> list[FaceLandmarks]: ...


@dataclass(frozen=True)
class FaceTrack:
    faces: list[FaceLandmarks]  # as the provider found them, in the frames where it found one
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


def search_frame(
    frame: Frame, provider: LandmarkProvider, gates: GateThresholds
) -> list[FaceLandmarks]:
    """Every face the gates can count in the whole frame: a provider that can leave out faces
    too small to count as a second one (``detect_prominent``) does."""
    if isinstance(provider, ProminentFaceSearch):
        # box sides: a second face counts from this area ratio to the main one's
        relative_side = math.sqrt(gates.second_face_min_area_ratio)
        return provider.detect_prominent(frame, relative_side, gates.min_face_score)
    return provider.detect(frame)


def _search(
    frame: Frame, slot: int, found: list[FaceLandmarks], gates: GateThresholds,
    previous: FaceLandmarks | None, counts: list[int],
) -> FaceLandmarks:
    faces = [f for f in found if f.score >= gates.min_face_score]
    counts.append(len(faces))
    if not faces:
        raise retry(Reason.NO_FACE, slot=slot, faces_per_frame=counts)
    main = max(_area(f.box) for f in faces)
    sizeable = [f for f in faces if _area(f.box) >= gates.second_face_min_area_ratio * main]
    if len(sizeable) > 1:
        raise retry(Reason.MULTIPLE_FACES, slot=slot, faces=len(sizeable))
    return _pick_face(sizeable, previous)


def follow_face(
    frame: Frame, provider: LandmarkProvider, previous: FaceLandmarks
) -> FaceLandmarks | None:
    """The face tracked from ``previous`` (a frame or two earlier) into ``frame``: the provider's
    ``refine`` on the previous box where it has one, else (or when that loses it) a search near
    it, then the whole frame, and the face nearest the previous one. None: not found there."""
    if isinstance(provider, FaceRefiner):
        refined = provider.refine(frame, previous.box)
        if refined is not None:
            return refined
        # lost on the box alone (MTCNN's last stage is sensitive to where the box sits on a
        # small face): search around it before giving up
    found: list[FaceLandmarks] = []
    if isinstance(provider, NearbyFaceSearch):
        found = provider.detect_near(frame, previous.box)
    if not found:  # a face at the edge of the detector's reach may be found at another scale
        found = provider.detect(frame)
    return _pick_face(found, previous) if found else None


def track_face(
    frames: Sequence[Frame],
    provider: LandmarkProvider,
    gates: GateThresholds,
    known: Mapping[int, FaceLandmarks] | None = None,
    anchor: FaceLandmarks | None = None,
    register: bool = True,
) -> FaceTrack:
    """``known``: faces already tracked, by ``Frame.index``; ``anchor``: the face found just
    before the first frame (presence.py), so no frame needs a whole-frame search; ``register``:
    replace the detector's per-frame landmarks by one set that follows the registered face
    (registration.py), so that its jitter neither blurs the frames nor reads as motion."""
    known = known or {}
    found: list[FaceLandmarks | None] = []
    counts: list[int] = []
    previous = anchor
    for slot, frame in enumerate(frames):
        face = known.get(frame.index)
        if face is None and previous is not None:
            face = follow_face(frame, provider, previous)
        if face is not None and face.score < gates.min_face_score:
            face = None
        if face is None:
            # nothing known here (or the track was lost): search the whole frame
            try:
                face = _search(frame, slot, search_frame(frame, provider, gates), gates,
                               previous, counts)
            except CheckRejected as rejected:
                if rejected.reason is not Reason.NO_FACE:
                    raise
        found.append(face)
        if face is not None:
            previous = face
    # Frames before the first one the face was found in: follow it back from there (a recorded
    # session has no presence anchor, and its first frames may be the hardest to see).
    for slot in range(len(frames)):
        if found[slot] is None:
            nearest = min(
                (k for k, f in enumerate(found) if f is not None),
                key=lambda k: abs(k - slot),
                default=None,
            )
            if nearest is None:
                break
            reference = found[nearest]
            assert reference is not None
            face = follow_face(frames[slot], provider, reference)
            if face is not None and face.score >= gates.min_face_score:
                found[slot] = face
    detected = np.array([f is not None for f in found])
    # A frame where the detector sees no face (the ambient-only state of a dark room) may take
    # its landmarks from registration, when most frames show the face and the face registers.
    if detected.sum() < max(MIN_DETECTED_FRAMES, (len(frames) + 1) // 2) or (
        not detected.all() and not (register and len(frames) > 1)
    ):
        raise retry(
            Reason.NO_FACE,
            slot=int(np.argmin(detected)),
            faces_per_frame=counts,
            frames_with_face=int(detected.sum()),
        )
    first = next(f for f in found if f is not None)
    chosen = [f if f is not None else first for f in found]  # placeholders until registered
    landmarks = np.stack([f.points for f in chosen]).astype(np.float32)
    boxes = np.array([f.box for f in chosen], dtype=np.float32)
    registered = None
    if register and len(frames) > 1:
        registered = register_landmarks(frames, landmarks, detected)
        if registered is None and not detected.all():
            raise retry(
                Reason.NO_FACE,
                slot=int(np.argmin(detected)),
                faces_per_frame=counts,
                frames_with_face=int(detected.sum()),
                registered=False,
            )
    iods = np.array([interocular_px(p) for p in landmarks[detected]])
    iod = float(np.median(iods))
    frame_h = frames[0].image.shape[0]
    interocular_frac = iod / frame_h
    detail: dict[str, Any] = {
        "interocular_px": round(iod, 2),
        "interocular_frac": round(interocular_frac, 4),
        "face_scores": [None if f is None else round(float(f.score), 4) for f in found],
    }
    if iod < gates.min_interocular_px:
        raise retry(Reason.FACE_TOO_SMALL, **detail, min_interocular_px=gates.min_interocular_px)
    if interocular_frac > gates.max_interocular_frac:
        raise retry(
            Reason.FACE_TOO_LARGE, **detail, max_interocular_frac=gates.max_interocular_frac
        )
    if register and len(frames) > 1:
        detail["registered"] = registered is not None
        detail["frames_with_face"] = int(detected.sum())
        if registered is not None:
            gaps = np.linalg.norm(landmarks - registered[0], axis=2)[detected]
            detail["detector_jitter_iod"] = round(float(gaps.max() / iod), 4)
            # every frame's box follows its registered shift (a frame without a detection too)
            moves = registered[1] - registered[1][int(np.argmax(detected))]
            boxes = (boxes[int(np.argmax(detected))][None] + np.tile(moves, 2)).astype(np.float32)
            landmarks = registered[0]
    # Motion: how far any landmark strays from its median position over the state frames.
    median_points = np.median(landmarks, axis=0)
    motion_iod = float(np.linalg.norm(landmarks - median_points, axis=2).max() / iod)
    detail["motion_iod"] = round(motion_iod, 4)
    if motion_iod > gates.max_motion_iod:
        raise retry(Reason.MOTION, **detail, max_motion_iod=gates.max_motion_iod)
    return FaceTrack(
        faces=[f for f in found if f is not None],
        landmarks=landmarks, boxes=boxes, interocular_px=iod, motion_iod=motion_iod, detail=detail
    )
