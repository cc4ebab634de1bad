"""The FastAPI application: routes of the local REST API (docs/ARCHITECTURE.md §9).

Every route but ``/v1/health`` needs the API key. Checks go through :class:`CheckGate` (one at a
time); errors become the uniform JSON body in ``errors.py``. The OpenAPI document is served at
``/openapi.json`` (behind the key, like everything but health) and copied to docs/openapi.json.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from flashfas_edge import __version__
from flashfas_edge.api import metrics as metrics_mod
from flashfas_edge.api.audit_log import AuditLog, AuditLogError
from flashfas_edge.api.auth import key_matches
from flashfas_edge.api.body_limit import BodySizeLimit
from flashfas_edge.api.check_gate import CheckGate
from flashfas_edge.api.errors import (
    ApiError,
    DeviceUnavailable,
    InvalidUpload,
    NotReady,
    PayloadTooLarge,
    SimOnly,
    Unauthorized,
    UnsupportedMediaType,
    api_error_for,
    install_error_handlers,
)
from flashfas_edge.api.models import (
    BackendIdentity,
    ErrorResponse,
    HealthResponse,
    LivenessRequest,
    LivenessResponse,
    ModelIdentity,
    SimSceneRequest,
    SimSceneResponse,
    StatusResponse,
)
from flashfas_edge.api.service import LivenessService
from flashfas_edge.api.session_upload import SESSION_MEDIA_TYPES, decode_uploaded_session
from flashfas_edge.config import LoadedConfig
from flashfas_edge.pipeline.result import CheckResult, Reason

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed JSON or bad request", 401: "Missing or wrong API key",
        413: "Body too large", 415: "Wrong content type", 422: "Invalid request or session",
        429: "Queue full (see Retry-After)", 503: "Not ready, camera/flash/model down",
        504: "The check overran its deadline (never a verdict)",
    }.items()
}


@dataclass
class DaemonState:
    config: LoadedConfig
    service: LivenessService
    gate: CheckGate
    audit: AuditLog
    metrics: metrics_mod.DaemonMetrics
    api_key: str


def create_app(config: LoadedConfig, service: LivenessService, audit: AuditLog,
               api_key: str) -> FastAPI:
    daemon = config.daemon
    gate = CheckGate(max_waiting=daemon.queue.max_waiting)
    metrics = metrics_mod.DaemonMetrics(
        queue_depth=lambda: gate.depth,
        camera_fps=service.camera_fps,
        uptime_s=service.uptime_s,
        ready=lambda: 1.0 if service.health().ready else 0.0,
    )
    state = DaemonState(config, service, gate, audit, metrics, api_key)

    app = FastAPI(
        title="FlashFAS Edge",
        version=__version__,
        description="Flash liveness for access-control kiosks. Only `verdict: live` may open a "
                    "door; every error and every `retry` keeps it closed.",
        docs_url=None, redoc_url=None, openapi_url=None,  # served below, behind the API key
    )
    app.state.daemon = state
    install_error_handlers(app)

    upload_routes = {"/v1/liveness/recorded"}
    app.add_middleware(
        BodySizeLimit,
        limit_for_path=lambda path: (daemon.server.max_upload_bytes if path in upload_routes
                                     else daemon.server.max_json_bytes),
    )

    async def require_api_key(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key_header)],
    ) -> None:
        presented = header_key or (bearer.credentials if bearer is not None else None)
        if not key_matches(state.api_key, presented):
            raise Unauthorized()

    authed = [Depends(require_api_key)]

    @app.get("/v1/health", response_model=HealthResponse, tags=["daemon"],
             responses={503: {"model": HealthResponse, "description": "Not ready"}})
    async def health() -> JSONResponse:
        """Ready only after model warm-up and the camera/flash self-test; no API key needed."""
        h = service.health()
        body = HealthResponse(status=h.status, ready=h.ready, reason=h.reason)  # type: ignore[arg-type]
        return JSONResponse(body.model_dump(), status_code=200 if h.ready else 503)

    @app.get("/v1/status", response_model=StatusResponse, dependencies=authed, tags=["daemon"],
             responses={401: _ERRORS[401]})
    async def status() -> StatusResponse:
        return _status(state)

    @app.get("/metrics", dependencies=authed, tags=["daemon"], response_class=PlainTextResponse,
             responses={401: _ERRORS[401]})
    async def prometheus_metrics() -> Response:
        """Prometheus text format: checks by verdict/reason, stage latencies, queue, camera fps."""
        return Response(metrics.render(), media_type=metrics_mod.CONTENT_TYPE)

    @app.get("/openapi.json", dependencies=authed, include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    check_errors: dict[int | str, dict[str, Any]] = {
        k: _ERRORS[k] for k in (400, 401, 413, 422, 429, 503, 504)
    }

    @app.post("/v1/liveness", response_model=LivenessResponse, dependencies=authed,
              tags=["liveness"], responses=check_errors)
    async def liveness(options: LivenessRequest | None = None) -> LivenessResponse:
        """Run one check on the kiosk's camera and flash (one at a time; others queue)."""
        options = options or LivenessRequest(want_depth=False, client_ref=None)
        started = time.perf_counter()
        try:
            _require_kiosk(service)
            client_ref = options.client_ref

            def audit_late(late: tuple[CheckResult, list[np.ndarray]], wait_ms: float) -> None:
                _audit_late(state, late[0], "camera", wait_ms, client_ref, late[1])

            (result, frames), wait_ms = await gate.run(
                lambda: service.run_check(options.want_depth), daemon.queue.check_timeout_s,
                on_late_result=audit_late,
            )
            return _answer(state, result, kind="camera", started=started, wait_ms=wait_ms,
                           want_depth=options.want_depth, client_ref=options.client_ref,
                           frames=frames)
        except Exception as exc:
            metrics.rejected.inc(api_error_for(exc).code)
            raise

    @app.post("/v1/liveness/recorded", response_model=LivenessResponse, dependencies=authed,
              tags=["liveness"], responses=check_errors | {415: _ERRORS[415]},
              openapi_extra={"requestBody": {"required": True, "content": {
                  media: {"schema": {"type": "string", "format": "binary"}}
                  for media in SESSION_MEDIA_TYPES}}})
    async def liveness_recorded(request: Request) -> LivenessResponse:
        """Decide on a session uploaded in the dataset format (docs/API.md): same decision as a
        live check, no camera involved. Size-limited and strictly validated."""
        started = time.perf_counter()
        try:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media not in SESSION_MEDIA_TYPES:
                raise UnsupportedMediaType(
                    f"send the session as one of {sorted(SESSION_MEDIA_TYPES)}, not {media!r}"
                )
            if service.health().reason == "warming_up":
                raise NotReady("the model is still warming up")
            gate.admit()  # 429 before reading an upload the queue could not take anyway
            raw = await _read_limited(request, daemon.server.max_upload_bytes)
            # Decoded on the check worker: one upload is unpacked at a time (bounded memory).
            result, wait_ms = await gate.run(
                lambda: service.run_recorded(decode_uploaded_session(raw, media)),
                daemon.queue.check_timeout_s,
                on_late_result=lambda late, wait_ms: _audit_late(state, late, "recorded",
                                                                 wait_ms, None, None),
            )
            return _answer(state, result, kind="recorded", started=started, wait_ms=wait_ms,
                           want_depth=False, client_ref=None, frames=None)
        except Exception as exc:
            metrics.rejected.inc(api_error_for(exc).code)
            raise

    if config.sim and daemon.kiosk.sim.scene_route:
        @app.put("/v1/sim/scene", response_model=SimSceneResponse, dependencies=authed,
                 tags=["simulated kiosk"],
                 responses={401: _ERRORS[401],
                            409: {"model": ErrorResponse, "description": "Not a simulated kiosk"}})
        async def set_sim_scene(scene: SimSceneRequest) -> SimSceneResponse:
            """Simulated kiosk only: choose what stands in front of the virtual camera."""
            if service.sim_controls is None:
                raise SimOnly("the daemon does not run the simulated kiosk")
            controls = service.sim_controls
            # Through the check queue: the scene never changes in the middle of a check.
            applied, _ = await gate.run(lambda: controls.set_scene(scene),
                                        daemon.queue.check_timeout_s)
            return SimSceneResponse(**applied)

    return app


def _require_kiosk(service: LivenessService) -> None:
    """Answer 503 with the reason before queueing when the camera/flash cannot run a check."""
    h = service.health()
    if h.ready:
        return
    if h.reason in {"camera_unavailable", "flash_unavailable"}:
        raise DeviceUnavailable(h.reason, h.message or h.reason)
    raise NotReady(h.message or "not ready", details=[{"reason": h.reason}])


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the upload is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(
    state: DaemonState,
    result: CheckResult,
    *,
    kind: str,
    started: float,
    wait_ms: float,
    want_depth: bool,
    client_ref: str | None,
    frames: list[np.ndarray] | None,
) -> LivenessResponse:
    # The pipeline reports a dead camera/flash or an inconsistent upload as a result; the caller
    # gets an error instead of a verdict — and the audit log says so.
    message = str(result.detail.get("error") or result.detail.get("message") or result.reason.value)
    error: ApiError | None = None
    if result.reason is Reason.CAMERA_UNAVAILABLE:
        error = DeviceUnavailable("camera_unavailable", message)
    elif result.reason is Reason.FLASH_UNAVAILABLE:
        error = DeviceUnavailable("flash_unavailable", message)
    elif result.reason is Reason.INVALID_SESSION:
        error = InvalidUpload(message, details=[{"check_id": result.check_id}])
    # Audit first: a verdict nobody can account for is not given (AuditLogError → 503).
    state.audit.record(result, kind=kind, queue_wait_ms=wait_ms, client_ref=client_ref,
                       frames=frames, http_status=200 if error is None else error.status_code)
    _count(state, result, kind)
    state.metrics.check_latency.observe(time.perf_counter() - started, kind)
    if error is not None:
        raise error
    return LivenessResponse.from_result(result, queue_wait_ms=wait_ms, want_depth=want_depth)


def _count(state: DaemonState, result: CheckResult, kind: str) -> None:
    state.service.count(result, kind)
    state.metrics.checks.inc(kind, result.verdict.value, result.reason.value)
    for stage, ms in result.timings_ms.items():
        state.metrics.stage_latency.observe(ms / 1000.0, stage)


def _audit_late(state: DaemonState, result: CheckResult, kind: str, wait_ms: float,
                client_ref: str | None, frames: list[np.ndarray] | None) -> None:
    """A check that finished after its 504: recorded, so every flash played is accounted for."""
    try:
        state.audit.record(result, kind=kind, queue_wait_ms=wait_ms, client_ref=client_ref,
                           frames=frames, http_status=504)
    except AuditLogError as exc:
        log.error("late check %s not audited: %s", result.check_id, exc)
    _count(state, result, kind)


def _status(state: DaemonState) -> StatusResponse:
    import fastapi as fastapi_mod
    import pydantic

    service = state.service
    h = service.health()
    info = service.backend.info()
    cal = state.config.calibration
    effective = getattr(service.pipeline, "config", state.config.pipeline)  # sim: its latency
    calibration: dict[str, Any] = {
        "file": str(state.config.daemon.calibration_file)
        if state.config.daemon.calibration_file else None,
        "latency_us": effective.latency_us,
        "threshold_override": effective.threshold_override,
        "threshold": service.pipeline.threshold,
    }
    if cal is not None:
        calibration.update(created=cal.created, device=cal.device)
    try:
        cam = service.camera.info()
        camera = {"name": cam.name, "width": cam.width, "height": cam.height,
                  "nominal_fps": cam.fps, "exposure_us": cam.exposure_us,
                  "measured_fps": service.camera_fps(),
                  "last_frame_age_s": service.camera_frame_age_s()}
    except Exception as exc:  # noqa: BLE001 - status must answer even with a broken camera
        camera = {"error": str(exc)}
    return StatusResponse(
        version=__version__,
        versions={"flashfas_edge": __version__, "python": platform.python_version(),
                  "numpy": np.__version__, "fastapi": fastapi_mod.__version__,
                  "pydantic": pydantic.__version__, **info.versions},
        mode="sim" if state.config.sim else "real",
        ready=h.ready,
        health_reason=h.reason,
        uptime_s=round(service.uptime_s(), 3),
        backend=BackendIdentity(name=info.name, device=info.device, precision=info.precision,
                                versions=dict(info.versions)),
        model=ModelIdentity.from_dict(service.model_identity),
        calibration=calibration,
        camera=camera,
        flash={"supports_colour": service.flash.supports_colour(),
               "fault": h.message if h.reason == "flash_unavailable" else None},
        queue_depth=state.gate.depth,
        counters=dict(service.counters.by_verdict),
        reasons=dict(service.counters.by_reason),
        last_check=service.counters.last_check,
    )
