"""Which LandmarkProvider the daemon runs, and its settings (the ``[pipeline.landmarks]`` table).

It lives with the providers it selects; the pipeline's config tree embeds it. Frozen and strict
like every config section: an unknown key is a start-up error that names it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LandmarkConfig(BaseModel):
    """Step 6: which LandmarkProvider (one file per provider in ``flashfas_edge/face``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["ground_truth", "mtcnn"] = "mtcnn"
    noise_px: float = Field(default=0.0, ge=0, le=20)  # ground_truth only: Gaussian σ per point
    seed: int | None = None  # ground_truth noise seed (None: fresh entropy)
    # mtcnn: smallest face searched; 48 px ≈ the face box at the min_interocular_px gate
    min_face_px: int = Field(default=48, ge=12, le=1000)
    threads: int = Field(default=1, ge=1, le=16)  # mtcnn: ONNX Runtime intra-op threads
