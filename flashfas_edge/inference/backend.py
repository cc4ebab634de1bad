"""The Backend interface (docs/ARCHITECTURE.md §1 step 9, §4): runs a model bundle on one check's
input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from flashfas_edge.inference.bundle import Bundle

ATTACK_TYPES = ("print", "replay", "mask")  # the M = 3 experts, in this order everywhere


class BackendError(RuntimeError):
    """A backend failed to load or run."""


@dataclass(frozen=True)
class ModelOutput:
    p_live: float  # probability that the face is live, in [0, 1]
    type_probs: dict[str, float]  # softmax of the type gate over ATTACK_TYPES
    depth: np.ndarray  # float32 [D, D] final mixed depth map x̂, values in [0, 1]
    experts_run: tuple[str, ...] = field(default=())  # which experts actually ran (sparse routing)


@dataclass(frozen=True)
class BackendInfo:
    name: str  # "onnxruntime" | "tensorrt"
    device: str  # e.g. "cpu", "cuda:0 (Orin, sm_87)"
    precision: str  # "fp32" | "fp16"
    versions: dict[str, str]


@runtime_checkable
class Backend(Protocol):
    @property
    def bundle(self) -> Bundle:
        """The validated bundle: name, manifest_sha256, n0, input_size, normalisation,
        threshold_default, … (flashfas_edge/inference/bundle.py)."""
        ...

    def warm_up(self) -> None:
        """Run the networks once on zeros so the first real check is not slow."""

    def run(self, x: np.ndarray) -> ModelOutput:
        """x: float32 [N, 3, S, S] differential frames of one check (from ``_core.preprocess``)."""
        ...

    def run_batch(self, x: np.ndarray) -> list[ModelOutput]:
        """x: float32 [B, N, 3, S, S], B checks at once (offline evaluation); one output each."""
        ...

    def info(self) -> BackendInfo: ...
