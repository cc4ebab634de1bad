"""Choose the LandmarkProvider named by the configuration (one file per provider)."""

from __future__ import annotations

from flashfas_edge.face.base import LandmarkProvider
from flashfas_edge.face.config import LandmarkConfig


def create_landmark_provider(config: LandmarkConfig) -> LandmarkProvider:
    """``ground_truth``: the simulator's/recording's landmarks (+ noise); ``mtcnn``: real camera."""
    if config.provider == "ground_truth":
        from flashfas_edge.face.ground_truth import GroundTruthLandmarks

        return GroundTruthLandmarks(noise_px=config.noise_px, seed=config.seed)
    if config.provider == "mtcnn":
        from flashfas_edge.face.mtcnn_landmarks import MtcnnLandmarks

        return MtcnnLandmarks(min_face_px=config.min_face_px, threads=config.threads)
    raise ValueError(f"unknown landmark provider {config.provider!r}")
