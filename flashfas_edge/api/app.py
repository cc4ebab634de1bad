"""The FastAPI application: routes of the local REST API (docs/ARCHITECTURE.md §9).

Every route but ``/v1/health`` and ``/v1/flash/client.js`` needs the API key (the flash
client's WebSocket takes it as its first message, ``flash_socket.py``). Checks go through
:class:`CheckGate` (one at a time); errors become the uniform JSON body in ``errors.py``. The
OpenAPI document is served at ``/openapi.json`` (behind the key, like everything but health) and
copied to docs/openapi.json.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import numpy as np
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from flashfas_edge import __version__
from flashfas_edge.api.auth import key_matches
from flashfas_edge.api.body_limit import BodySizeLimit
from flashfas_edge.api.errors import (
    ApiError,
    DeviceUnavailable,
    EvaluationDisabled,
    InvalidRequest,
    InvalidUpload,
    NotReady,
    PayloadTooLarge,
    SimOnly,
    Unauthorized,
    UnsupportedMediaType,
    api_error_for,
    install_error_handlers,
)
from flashfas_edge.api.flash_routes import flash_client_router
from flashfas_edge.api.models import (
    BackendIdentity,
    CalibrationStatus,
    HealthResponse,
    LivenessRequest,
    LivenessResponse,
    ModelIdentity,
    RecordedEvaluation,
    SimSceneRequest,
    SimSceneResponse,
    StatusResponse,
)
from flashfas_edge.api.openapi_doc import (
    CHECK_ERRORS,
    EVALUATION_ERRORS,
    READ_ERRORS,
    SCENE_ERRORS,
    SESSION_BODY_DESCRIPTION,
    check_examples,
    error_responses,
    evaluation_examples,
    with_error_schema,
)
from flashfas_edge.api.session_upload import SESSION_MEDIA_TYPES, decode_uploaded_session
from flashfas_edge.config import LoadedConfig
from flashfas_edge.daemon import metrics as metrics_mod
from flashfas_edge.daemon.audit_log import AuditLog, AuditLogError
from flashfas_edge.daemon.check_gate import CallerState, CheckGate, Ticket
from flashfas_edge.daemon.service import Health, LivenessService
from flashfas_edge.flash.display_flash import FlashClientHub
from flashfas_edge.pipeline.result import CheckResult, Reason, new_check_id

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="API key as a bearer token")
_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")

@dataclass
class DaemonState:
    config: LoadedConfig
    service: LivenessService
    gate: CheckGate
    audit: AuditLog
    metrics: metrics_mod.DaemonMetrics
    api_key: str


class SceneControls(Protocol):
    """The simulated kiosk's scene control (``kiosk.sim_scene.SimSceneControls``): shows a scene
    to the virtual camera or raises ValueError saying why it cannot."""

    def set_scene(self, scene: str, ambient: str | None = None, seed: int | None = None,
                  options: dict[str, Any] | None = None) -> dict[str, Any]: ...


def create_app(config: LoadedConfig, service: LivenessService, audit: AuditLog,
               api_key: str, scene_controls: SceneControls | None = None,
               flash_clients: FlashClientHub | None = None) -> FastAPI:
    """The app; ``flash_clients``: the browser display flash that ``/v1/flash/ws`` hands its
    clients to (None: the kiosk's flash is another surface)."""
    daemon = config.daemon
    gate = CheckGate(max_waiting=daemon.queue.max_waiting)
    metrics = metrics_mod.DaemonMetrics(
        queue_depth=lambda: gate.depth,
        camera_fps=service.camera_fps,
        uptime_s=service.uptime_s,
        ready=lambda: 1.0 if _health(state).ready else 0.0,
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
    app.openapi = with_error_schema(app.openapi)  # type: ignore[method-assign]
    install_error_handlers(app)

    upload_routes = {"/v1/evaluate/recorded"}
    app.add_middleware(
        BodySizeLimit,
        limit_for_path=lambda path: (daemon.server.max_upload_bytes if path in upload_routes
                                     else daemon.server.max_json_bytes),
        body_timeout_s=daemon.server.body_timeout_s,
    )

    async def require_api_key(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_api_key_header)],
    ) -> None:
        presented = header_key or (bearer.credentials if bearer is not None else None)
        if not key_matches(state.api_key, presented):
            raise Unauthorized()

    authed = [Depends(require_api_key)]

    health_responses: dict[int | str, dict[str, Any]] = {
        503: {"model": HealthResponse, "description": "Not ready"}}

    @app.get("/v1/health", response_model=HealthResponse, tags=["daemon"],
             responses=health_responses)
    async def health() -> JSONResponse:
        """Ready only after model warm-up, the camera/flash self-test, and while the audit log
        can be written; no API key needed."""
        h = _health(state)
        body = HealthResponse(status=h.status, ready=h.ready, reason=h.reason)  # type: ignore[arg-type]
        return JSONResponse(body.model_dump(), status_code=200 if h.ready else 503)

    @app.head("/v1/health", tags=["daemon"], operation_id="health_head", response_class=Response,
              responses={200: {"description": "Ready (no body)",
                               "content": {"application/json": {}}},
                         503: {"description": "Not ready (no body)",
                               "content": {"application/json": {}}}})
    async def health_head() -> Response:
        """The same status as GET, without a body (load balancers and probes)."""
        return Response(status_code=200 if _health(state).ready else 503,
                        media_type="application/json")

    @app.get("/v1/status", response_model=StatusResponse, dependencies=authed, tags=["daemon"],
             responses=error_responses(*READ_ERRORS))
    async def status() -> StatusResponse:
        return _status(state)

    @app.get("/metrics", dependencies=authed, tags=["daemon"], response_class=PlainTextResponse,
             responses=error_responses(*READ_ERRORS))
    async def prometheus_metrics() -> Response:
        """Prometheus text format: checks by verdict/reason, stage latencies, queue, camera fps."""
        return Response(metrics.render(), media_type=metrics_mod.CONTENT_TYPE)

    app.include_router(flash_client_router(lambda: state.api_key, flash_clients))

    @app.get("/openapi.json", dependencies=authed, include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.post("/v1/liveness", response_model=LivenessResponse, dependencies=authed,
              tags=["liveness"],
              responses={200: {"content": {"application/json": {"examples": check_examples()}}},
                         **error_responses(*CHECK_ERRORS)})
    async def liveness(options: LivenessRequest | None = None) -> LivenessResponse:
        """Run one check on the kiosk's camera and flash (one at a time; others queue)."""
        opts = options or LivenessRequest(want_depth=False, client_ref=None)
        started = time.perf_counter()
        try:
            _require_kiosk(state)
            outcome = await gate.run(lambda ticket: _camera_check(state, ticket, opts),
                                     daemon.queue.check_timeout_s, kind="camera")
            if outcome.error is not None:
                raise outcome.error
            metrics.check_latency.observe(time.perf_counter() - started, "camera")
            return LivenessResponse.from_result(outcome.result, queue_wait_ms=outcome.wait_ms,
                                                want_depth=opts.want_depth)
        except Exception as exc:
            metrics.rejected.inc(api_error_for(exc).code)
            raise

    @app.post("/v1/evaluate/recorded", response_model=RecordedEvaluation, dependencies=authed,
              tags=["evaluation"],
              responses={200: {"content": {"application/json": {
                  "examples": evaluation_examples()}}}, **error_responses(*EVALUATION_ERRORS)},
              openapi_extra={"requestBody": {
                  "required": True, "description": SESSION_BODY_DESCRIPTION,
                  "content": {media: {"schema": {"type": "string", "format": "binary"}}
                              for media in sorted(SESSION_MEDIA_TYPES)}}})
    async def evaluate_recorded(request: Request) -> RecordedEvaluation:
        """Score a session uploaded in the dataset format (docs/API.md) for evaluation. Never an
        access decision: the answer has no verdict, is audited and counted apart from checks,
        and the route is off unless ``server.recorded_evaluation`` is set."""
        started = time.perf_counter()
        try:
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            try:
                if not daemon.server.recorded_evaluation:
                    raise EvaluationDisabled(
                        "evaluating recordings is off on this daemon (server."
                        "recorded_evaluation); a recording can never prove liveness")
                if media not in SESSION_MEDIA_TYPES:
                    raise UnsupportedMediaType(f"send the session as one of "
                                               f"{sorted(SESSION_MEDIA_TYPES)}, not {media!r}")
                if service.health().reason == "warming_up":
                    raise NotReady("the model is still warming up")
                # A place in the queue before a byte of the body is read: at most
                # 1 + max_waiting uploads are ever held in memory; a full queue is refused now.
                reservation = gate.reserve("evaluation")
            except Exception as exc:
                refused = api_error_for(exc)
                refused.headers["Connection"] = "close"  # the unread body is not wanted
                raise refused from exc
            try:
                raw = await _read_limited(request, daemon.server.max_upload_bytes)
            except BaseException:
                reservation.release()
                raise
            # Decoded on the check worker: one upload is unpacked at a time (bounded memory).
            outcome = await gate.run(
                lambda ticket: _evaluation(state, ticket, raw, media),
                daemon.queue.check_timeout_s, kind="evaluation", reservation=reservation,
            )
            if outcome.error is not None:
                raise outcome.error
            metrics.check_latency.observe(time.perf_counter() - started, "evaluation")
            return RecordedEvaluation.from_result(outcome.result, queue_wait_ms=outcome.wait_ms)
        except Exception as exc:
            metrics.rejected.inc(api_error_for(exc).code)
            raise

    if config.sim and daemon.kiosk.sim.scene_route:
        @app.put("/v1/sim/scene", response_model=SimSceneResponse, dependencies=authed,
                 tags=["simulated kiosk"], responses=error_responses(*SCENE_ERRORS))
        async def set_sim_scene(scene: SimSceneRequest) -> SimSceneResponse:
            """Simulated kiosk only: choose what stands in front of the virtual camera."""
            if scene_controls is None:
                raise SimOnly("the daemon does not run the simulated kiosk")
            controls = scene_controls

            def show(_ticket: Ticket) -> dict[str, Any]:
                try:
                    return controls.set_scene(scene.scene, scene.ambient, scene.seed,
                                              scene.options)
                except ValueError as exc:  # the scene cannot be shown: the request's fault
                    raise InvalidRequest(str(exc)) from exc

            # Through the check queue: the scene never changes in the middle of a check.
            applied = await gate.run(show, daemon.queue.check_timeout_s, kind="scene")
            return SimSceneResponse(**applied)

    return app


def _health(state: DaemonState) -> Health:
    """The service's health, and not ready while the audit log cannot be written (every check
    would be refused 503 for want of its record)."""
    h = state.service.health()
    if h.ready and state.audit.failure() is not None:
        return Health(False, "degraded", "audit_log_unavailable",
                      "the audit log cannot be written")
    return h


def _require_kiosk(state: DaemonState) -> None:
    """Answer 503 with the reason before queueing when the camera/flash cannot run a check."""
    h = _health(state)
    if h.ready:
        return
    if h.reason == "audit_log_unavailable":
        raise DeviceUnavailable("audit_log_unavailable", h.message or h.reason)
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


@dataclass
class Outcome:
    """What a check's work hands back to its request: the result, or the error to answer."""

    result: CheckResult
    wait_ms: float
    error: ApiError | None = None


def _camera_check(state: DaemonState, ticket: Ticket, options: LivenessRequest) -> Outcome:
    """On the check worker: mark the check started (before any flash), run it, settle it."""
    check_id = new_check_id()
    state.audit.begin(check_id, "camera", options.client_ref)  # no marker, no flash (503)
    try:
        result, frames = state.service.run_check(options.want_depth, check_id=check_id)
    except Exception as exc:
        # The pipeline answers every failure as a result; should that ever break, the check
        # that started is still accounted for (and fails closed).
        log.exception("check %s failed outside the pipeline", check_id)
        result = state.service.failed_result(check_id, exc)
        _settle(state, ticket, result, kind="camera", client_ref=options.client_ref, frames=None,
                status_if_waiting=500)
        raise
    return _settle(state, ticket, result, kind="camera", client_ref=options.client_ref,
                   frames=frames)


def _evaluation(state: DaemonState, ticket: Ticket, raw: bytes, media: str) -> Outcome:
    """On the check worker: decode the upload (422 on any flaw) and score it."""
    session = decode_uploaded_session(raw, media)
    del raw  # the decoded arrays are all that is kept
    result = state.service.run_recorded(session)
    return _settle(state, ticket, result, kind="recorded_evaluation", client_ref=None,
                   frames=None)


def _error_for(result: CheckResult) -> ApiError | None:
    """The pipeline reports a dead camera/flash or an inconsistent upload as a result; the caller
    gets an error instead of a verdict — and the audit log says so."""
    message = str(result.detail.get("error") or result.detail.get("message") or result.reason.value)
    if result.reason is Reason.CAMERA_UNAVAILABLE:
        return DeviceUnavailable("camera_unavailable", message)
    if result.reason is Reason.FLASH_UNAVAILABLE:
        return DeviceUnavailable("flash_unavailable", message)
    if result.reason is Reason.INVALID_SESSION:
        return InvalidUpload(message, details=[{"check_id": result.check_id}])
    return None


_TOLD: dict[CallerState, int] = {"timed_out": 504, "abandoned": 503}


def _settle(
    state: DaemonState,
    ticket: Ticket,
    result: CheckResult,
    *,
    kind: str,
    client_ref: str | None,
    frames: list[np.ndarray] | None,
    status_if_waiting: int | None = None,
) -> Outcome:
    """The one place a finished check is audited and counted, on the worker thread: its line
    says what the caller was told (the answer, a 504 already sent, or 503 because the daemon
    stopped or the caller left). A verdict nobody can account for is not given (503)."""
    error = _error_for(result)
    caller = ticket.settle()
    if caller == "waiting":
        told = status_if_waiting or (200 if error is None else error.status_code)
    else:
        told = _TOLD[caller]
    try:
        state.audit.record(result, kind=kind, queue_wait_ms=ticket.wait_ms,
                           client_ref=client_ref, frames=frames, http_status=told,
                           evaluation=kind == "recorded_evaluation")
    except AuditLogError as exc:
        log.error("check %s not audited: %s", result.check_id, exc)
        return Outcome(result, ticket.wait_ms, api_error_for(exc))
    state.service.count(result, kind)
    if kind == "recorded_evaluation":
        state.metrics.evaluations.inc(result.verdict.value, result.reason.value)
    else:
        state.metrics.checks.inc(kind, result.verdict.value, result.reason.value)
    for stage, ms in result.timings_ms.items():
        state.metrics.stage_latency.observe(ms / 1000.0, stage)
    return Outcome(result, ticket.wait_ms, error)


def _calibration_status(state: DaemonState) -> CalibrationStatus:
    """The calibration in force, its age now and the site verdict it recorded."""
    from datetime import datetime, timezone

    cal = state.config.calibration
    source = state.config.daemon.calibration_file
    status = CalibrationStatus(
        file=source.name if source else None,  # its name, not where it lies
        latency_us=state.service.latency_us,
        threshold_override=state.config.pipeline.threshold_override,
        threshold=state.service.pipeline.threshold, format_version=None, created=None,
        age_days=None, site_verdict=None, flash_snr=None, made_for=None, device=None,
    )
    if cal is None:
        return status
    created = cal.created_at()
    age = None if created is None else round(
        (datetime.now(timezone.utc) - created).total_seconds() / 86400, 3)
    made_for = None if cal.identity is None else {
        "camera": cal.identity.camera, "flash": cal.identity.flash,
        "bundle": cal.identity.bundle_name}
    return status.model_copy(update={
        "format_version": cal.format_version, "created": cal.created, "age_days": age,
        "site_verdict": cal.site.verdict if cal.site else None,
        "site_findings": list(cal.site.findings) if cal.site else [],
        "flash_snr": cal.flash_snr, "made_for": made_for, "device": cal.device})


def _status(state: DaemonState) -> StatusResponse:
    import fastapi as fastapi_mod
    import pydantic

    service = state.service
    h = _health(state)
    info = service.backend.info()
    calibration = _calibration_status(state)
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
        # name and manifest hash identify the model; where it lies on disk is not the caller's
        model=ModelIdentity.from_dict({k: v for k, v in service.model_identity.items()
                                       if k != "directory"}),
        calibration=calibration,
        camera=camera,
        flash={"supports_colour": service.flash.supports_colour(),
               "fault": h.message if h.reason == "flash_unavailable" else None},
        queue_depth=state.gate.depth,
        counters=dict(service.counters.by_verdict),
        reasons=dict(service.counters.by_reason),
        evaluations=dict(service.counters.evaluations),
        last_check=service.counters.last_check,
    )
