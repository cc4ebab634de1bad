"""Request and response bodies of the local REST API (published in the OpenAPI document)."""

from __future__ import annotations

import base64
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from flashfas_edge.pipeline.result import CheckResult, Reason, Verdict


class LivenessRequest(BaseModel):
    """Options of one check; the body may be omitted entirely."""

    model_config = ConfigDict(extra="forbid")

    want_depth: StrictBool = Field(
        False, description="Return the final depth map x̂ as a base64 PNG (debugging/UI)."
    )
    client_ref: str | None = Field(
        None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
        description="Caller's correlation id, copied into the audit record.",
    )


class ModelIdentity(BaseModel):
    name: str | None = None
    sha256: str | None = Field(None, description="sha256 of the bundle's manifest.json")
    extra: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_dict(cls, model: dict[str, Any]) -> ModelIdentity:
        rest = dict(model)
        name = rest.pop("name", None)
        sha256 = rest.pop("manifest_sha256", None) or rest.pop("sha256", None)
        return cls(name=name, sha256=sha256, extra=_json_safe(rest))


class BackendIdentity(BaseModel):
    name: str | None = None
    device: str | None = None
    precision: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)


class LivenessResponse(BaseModel):
    check_id: str
    verdict: Verdict = Field(description="live | spoof | retry. Only `live` may open the door.")
    reason: Reason = Field(description="Machine-readable reason; every retry carries one.")
    score: float | None = Field(description="P(live) from the model; null when it did not run.")
    threshold: float
    type_probs: dict[str, float] = Field(description="Attack-type gate softmax: print/replay/mask.")
    timings_ms: dict[str, float] = Field(
        description="Per stage of the check (docs/ARCHITECTURE.md §1)."
    )
    queue_wait_ms: float
    model: ModelIdentity
    backend: BackendIdentity
    nonce: str = Field(description="Identifies the random flash challenge of this check.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Gate measurements.")
    depth_png_base64: str | None = Field(None, description="Depth map PNG when asked for.")

    @classmethod
    def from_result(
        cls, result: CheckResult, *, queue_wait_ms: float, want_depth: bool
    ) -> LivenessResponse:
        model = dict(result.model)
        backend = dict(result.backend)
        return cls(
            check_id=result.check_id,
            verdict=result.verdict,
            reason=result.reason,
            score=result.score,
            threshold=result.threshold,
            type_probs=dict(result.type_probs),
            timings_ms=dict(result.timings_ms),
            queue_wait_ms=round(queue_wait_ms, 3),
            model=ModelIdentity.from_dict(model),
            backend=BackendIdentity(
                name=backend.get("name"), device=backend.get("device"),
                precision=backend.get("precision"),
                versions={str(k): str(v) for k, v in (backend.get("versions") or {}).items()},
            ),
            nonce=result.nonce,
            detail=_json_safe(result.detail),
            depth_png_base64=(
                depth_to_png_base64(result.depth) if want_depth and result.depth is not None
                else None
            ),
        )


class RecordedEvaluation(BaseModel):
    """What the model makes of an uploaded recording. Never an access decision: nobody issued
    the recording's challenge, so there is no ``verdict`` here, only the model's ``outcome``."""

    evaluation_id: str
    access_decision: Literal[False] = Field(
        False, description="Always false: an evaluation of a recording never opens a door.")
    outcome: Verdict = Field(description="What the pipeline and model made of these frames "
                                         "(live | spoof | retry) — an evaluation result.")
    reason: Reason
    score: float | None
    threshold: float
    type_probs: dict[str, float]
    timings_ms: dict[str, float]
    queue_wait_ms: float
    model: ModelIdentity
    backend: BackendIdentity
    session_nonce: str = Field(description="The nonce stored in the uploaded session (its "
                                           "challenge was never issued by this daemon).")
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_result(cls, result: CheckResult, *, queue_wait_ms: float) -> RecordedEvaluation:
        as_check = LivenessResponse.from_result(result, queue_wait_ms=queue_wait_ms,
                                                want_depth=False)
        return cls(
            evaluation_id=as_check.check_id, access_decision=False, outcome=as_check.verdict,
            reason=as_check.reason,
            score=as_check.score, threshold=as_check.threshold, type_probs=as_check.type_probs,
            timings_ms=as_check.timings_ms, queue_wait_ms=as_check.queue_wait_ms,
            model=as_check.model, backend=as_check.backend, session_nonce=as_check.nonce,
            detail=as_check.detail,
        )


def depth_to_png_base64(depth: np.ndarray) -> str:
    """float [D, D] in [0, 1] → 8-bit grey PNG, base64."""
    grey = np.clip(np.nan_to_num(depth.astype(np.float32)) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", grey)
    if not ok:
        raise ValueError("cannot encode the depth map as PNG")
    return base64.b64encode(png.tobytes()).decode("ascii")


def _json_safe(value: Any) -> Any:
    """Gate measurements may hold numpy scalars/arrays; make them plain JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array {value.shape} {value.dtype}>"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


class ErrorInfo(BaseModel):
    code: str = Field(description="Machine-readable, e.g. queue_full, camera_unavailable.")
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the API has this body."""

    error: ErrorInfo


class HealthResponse(BaseModel):
    status: Literal["ready", "starting", "degraded", "stopping"]
    ready: bool
    reason: str | None = None


class CalibrationStatus(BaseModel):
    """The calibration in force (``flashfas-edge calibrate``, docs/CALIBRATE.md)."""

    file: str | None = Field(None, description="Name of the calibration file; null: none.")
    latency_us: int = Field(description="Flash-to-camera latency in force, µs.")
    threshold_override: float | None = Field(None, description="The calibrated threshold.")
    threshold: float = Field(description="Decision threshold in force.")
    format_version: int | None = None
    created: str | None = Field(None, description="When it was measured (ISO 8601).")
    age_days: float | None = Field(None, description="Its age at this answer, days.")
    site_verdict: Literal["pass", "warn", "fail"] | None = Field(
        None, description="The site's fitness when it was measured.")
    site_findings: list[str] = Field(default_factory=list)
    flash_snr: float | None = None
    made_for: dict[str, str] | None = Field(
        None, description="Camera, flash surface and bundle it was made for (format 2).")
    device: str | None = Field(None, description="Format 1: free-form device identity.")


class StatusResponse(BaseModel):
    version: str
    versions: dict[str, str]
    mode: Literal["sim", "real"]
    ready: bool
    health_reason: str | None
    uptime_s: float
    backend: BackendIdentity
    model: ModelIdentity
    calibration: CalibrationStatus
    camera: dict[str, Any]
    flash: dict[str, Any]
    queue_depth: int
    counters: dict[str, int] = Field(description="Checks answered, by verdict.")
    reasons: dict[str, int] = Field(description="Checks answered, by reason.")
    evaluations: dict[str, int] = Field(
        default_factory=dict,
        description="Uploaded recordings evaluated, by outcome (never access decisions).")
    last_check: dict[str, Any] | None


class SimSceneRequest(BaseModel):
    """What the simulated kiosk shows its camera (sim mode only)."""

    model_config = ConfigDict(extra="forbid")

    scene: str = Field(max_length=64, description="live | print | replay | mask | ...")
    ambient: str | None = Field(None, max_length=64, description="ambient light scenario")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="subject/scene seed")
    options: dict[str, Any] = Field(default_factory=dict, description="renderer-specific")


class SimSceneResponse(BaseModel):
    scene: str
    ambient: str | None = None
    seed: int | None = None
    options: dict[str, Any] = Field(default_factory=dict)
