"""Every error the API can answer, and the ONE place that maps exceptions to HTTP (STYLE.md).

Library code raises typed exceptions (CameraError, FlashError, BundleError, ...); routes raise
:class:`ApiError` subclasses; :func:`install_error_handlers` turns all of them into the same JSON
body ``{"error": {"code", "message", "details"?}}``. An unexpected exception is a 500 whose body
says nothing about internals — and is never a verdict, so a door never opens on an error.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from flashfas_edge.capture.base import CameraError
from flashfas_edge.daemon.audit_log import AuditLogError
from flashfas_edge.daemon.check_gate import CheckTimeoutError, QueueFullError, ShuttingDownError
from flashfas_edge.flash.base import FlashError
from flashfas_edge.inference.backend import BackendError
from flashfas_edge.inference.bundle import BundleError

log = logging.getLogger(__name__)


class ApiError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "missing or wrong API key") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class BadRequest(ApiError):
    status_code = 400
    code = "bad_request"


class MalformedJson(BadRequest):
    code = "malformed_json"


class UnsupportedMediaType(ApiError):
    status_code = 415
    code = "unsupported_media_type"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "payload_too_large"


class InvalidUpload(ApiError):
    status_code = 422
    code = "invalid_session"


class InvalidRequest(ApiError):
    status_code = 422
    code = "invalid_request"


class NotReady(ApiError):
    status_code = 503
    code = "not_ready"


class DeviceUnavailable(ApiError):
    """The camera or the flash is down (``code`` says which)."""

    status_code = 503

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "5"})
        self.code = code


class RequestTimeout(ApiError):
    """The client sent its body too slowly (``server.body_timeout_s``)."""

    status_code = 408
    code = "request_timeout"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Connection": "close"})


class EvaluationDisabled(ApiError):
    status_code = 403
    code = "evaluation_disabled"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class SimOnly(ApiError):
    status_code = 409
    code = "sim_only"


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def _respond(status: int, code: str, message: str, details=None, headers=None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def api_error_for(exc: BaseException) -> ApiError:
    """Library exception → API error. The mapping table of the whole daemon."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, QueueFullError):
        err = ApiError(str(exc), headers={"Retry-After": str(exc.retry_after_s)})
        err.status_code, err.code = 429, "queue_full"
        return err
    if isinstance(exc, ShuttingDownError):
        err = ApiError(str(exc), headers={"Retry-After": "5"})
        err.status_code, err.code = 503, "stopping"
        return err
    if isinstance(exc, CheckTimeoutError):
        err = ApiError(f"{exc}; the verdict is withheld (never live on a timeout)")
        err.status_code, err.code = 504, "check_timeout"
        return err
    if isinstance(exc, CameraError):
        return DeviceUnavailable("camera_unavailable", f"camera: {exc}")
    if isinstance(exc, FlashError):
        return DeviceUnavailable("flash_unavailable", f"flash: {exc}")
    if isinstance(exc, (BackendError, BundleError)):
        return DeviceUnavailable("backend_unavailable", f"model backend: {exc}")
    if isinstance(exc, AuditLogError):
        # No verdict without its audit record: a reviewer must be able to account for every one.
        # The file and the OS error go to the daemon's log, not to the caller.
        return DeviceUnavailable("audit_log_unavailable",
                                 "the audit log cannot be written; no verdict is given without "
                                 "its record")
    return ApiError("internal error; the check was not decided")


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors():
        details.append({
            "loc": [str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        })
    return details


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        err = api_error_for(exc)
        if err.status_code >= 500 and not isinstance(exc, ApiError) or \
                isinstance(exc, AuditLogError):
            log.warning("%s: %s", err.code, exc)
        return _respond(err.status_code, err.code, err.message, err.details, err.headers)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = _validation_details(exc)
        if any(d["type"] == "json_invalid" for d in details):
            return _respond(400, MalformedJson.code, "the request body is not valid JSON", details)
        return _respond(422, InvalidRequest.code, "the request does not match the schema", details)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc.__cause__, ApiError):  # e.g. the body limit hit while FastAPI read it
            return await on_api_error(request, exc.__cause__)
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return _respond(
            exc.status_code, codes.get(exc.status_code, f"http_{exc.status_code}"),
            str(exc.detail), headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while answering a request")
        return _respond(500, "internal_error", "internal error; the check was not decided")

    for exc_type in (ApiError, QueueFullError, CheckTimeoutError, ShuttingDownError,
                     CameraError, FlashError,
                     BackendError, BundleError, AuditLogError):
        app.add_exception_handler(exc_type, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def parse_json_object(raw: bytes, limit: int) -> dict[str, Any]:
    """Parse a small JSON request body (empty body → {}); typed errors for every failure."""
    if len(raw) > limit:
        raise PayloadTooLarge(f"the JSON body is larger than {limit} bytes")
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return value
