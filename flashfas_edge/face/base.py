"""The LandmarkProvider interface (docs/ARCHITECTURE.md §1 step 6): faces with 5 landmarks per
frame."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from flashfas_edge.capture.base import Frame

# Landmark order everywhere in the project (renderer ground truth, detectors, templates):
LANDMARK_NAMES = ("left_eye", "right_eye", "nose_tip", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class FaceLandmarks:
    points: np.ndarray  # float32 [5, 2], (x, y) in pixels, order LANDMARK_NAMES (image left first)
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    score: float


@runtime_checkable
class LandmarkProvider(Protocol):
    def detect(self, frame: Frame) -> list[FaceLandmarks]:
        """All faces found in the frame, most confident first (empty list: no face)."""
        ...


@runtime_checkable
class FaceRefiner(Protocol):
    """Optional capability: the face in ``frame`` given its box in a frame a few ms earlier.

    A tracker's step, much cheaper than a search (MTCNN: its last stage alone on that box).
    None when no face is there any more (the caller searches again).
    """

    def refine(
        self, frame: Frame, box: tuple[float, float, float, float]
    ) -> FaceLandmarks | None: ...
