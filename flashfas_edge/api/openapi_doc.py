"""What the OpenAPI document says beyond the models: every error each route can answer (status,
media type, codes, headers) and an example answer for every verdict and reason.

Kiosk apps are written against ``docs/openapi.json``; a contract test runs an independent
property-based client (schemathesis) against the daemon with this document, so what is written
here is checked against what the daemon really answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flashfas_edge.api.errors import error_body
from flashfas_edge.api.models import ErrorResponse
from flashfas_edge.pipeline.result import Reason, Verdict

# status → (what it means, the error codes it carries)
ERROR_STATUSES: dict[int, tuple[str, tuple[str, ...]]] = {
    400: ("Malformed JSON or a malformed request", ("malformed_json", "bad_request")),
    401: ("Missing or wrong API key", ("unauthorized",)),
    403: ("Evaluating recordings is off on this daemon", ("evaluation_disabled",)),
    408: ("The body did not arrive within server.body_timeout_s", ("request_timeout",)),
    409: ("Not a simulated kiosk", ("sim_only",)),
    413: ("Body too large (refused before it is read)", ("payload_too_large",)),
    415: ("The upload is not sent as a session file", ("unsupported_media_type",)),
    422: ("Request of the wrong shape, or an upload that is not one valid session",
          ("invalid_request", "invalid_session")),
    429: ("The queue is full; retry after Retry-After seconds", ("queue_full",)),
    500: ("Unexpected failure; never a verdict", ("internal_error",)),
    503: ("The kiosk cannot run a check now (see the code); never a verdict",
          ("not_ready", "stopping", "camera_unavailable", "flash_unavailable",
           "backend_unavailable", "audit_log_unavailable", "too_many_connections")),
    504: ("The check overran queue.check_timeout_s; the verdict is withheld", ("check_timeout",)),
}

_RETRY_AFTER = {"description": "Seconds after which a retry is expected to find a place",
                "schema": {"type": "integer", "minimum": 1}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
    429: {"Retry-After": {**_RETRY_AFTER, "required": True}},
    503: {"Retry-After": _RETRY_AFTER},
}
_ERROR_SCHEMA = {"$ref": "#/components/schemas/ErrorResponse"}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses: JSON error body, every code as an
    example, the headers the daemon sends with them."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        text, codes = ERROR_STATUSES[status]
        entry: dict[str, Any] = {
            "description": f"{text}. `error.code`: {', '.join(f'`{c}`' for c in codes)}.",
            "content": {"application/json": {
                "schema": _ERROR_SCHEMA,
                "examples": {code: {"value": error_body(code, text)} for code in codes},
            }},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


# The error statuses of each route (the connection guard's 503 and the body deadline's 408 can
# meet any route that reads a body; 500 any route at all).
CHECK_ERRORS = (400, 401, 408, 413, 422, 429, 500, 503, 504)
EVALUATION_ERRORS = (401, 403, 408, 413, 415, 422, 429, 500, 503, 504)
READ_ERRORS = (401, 500, 503)
SCENE_ERRORS = (400, 401, 408, 409, 413, 422, 429, 500, 503, 504)

_VERDICT_OF_REASON: dict[Reason, Verdict] = {
    Reason.SCORE_ABOVE_THRESHOLD: Verdict.LIVE,
    Reason.SCORE_BELOW_THRESHOLD: Verdict.SPOOF,
    Reason.CHALLENGE_MISMATCH: Verdict.SPOOF,
}
# Reasons a 200 never carries: the caller gets an error status instead of the check's result.
_NOT_ANSWERED_200 = {Reason.CAMERA_UNAVAILABLE, Reason.FLASH_UNAVAILABLE, Reason.INVALID_SESSION}


def _example_check(reason: Reason) -> dict[str, Any]:
    verdict = _VERDICT_OF_REASON.get(reason, Verdict.RETRY)
    scored = reason in _VERDICT_OF_REASON or reason is Reason.SCORE_UNCERTAIN
    score = {Reason.SCORE_ABOVE_THRESHOLD: 0.91, Reason.SCORE_BELOW_THRESHOLD: 0.02,
             Reason.SCORE_UNCERTAIN: 0.09, Reason.CHALLENGE_MISMATCH: 0.88}.get(reason)
    return {
        "check_id": "5f0c2d8e9b1a4c7d8e6f5a4b3c2d1e0f", "verdict": verdict.value,
        "reason": reason.value, "score": score, "threshold": 0.1314,
        "type_probs": {"print": 0.07, "replay": 0.88, "mask": 0.05} if scored else {},
        "timings_ms": {"challenge": 0.1, "flash": 251.3, "capture": 34.0, "sync": 0.2,
                       "landmarks": 1.1, "verify": 2.0, "preprocess": 3.2, "infer": 21.5,
                       "decide": 0.0, "total": 313.8},
        "queue_wait_ms": 0.0,
        "model": {"name": "edge-default", "sha256": "a" * 64, "extra": {}},
        "backend": {"name": "onnxruntime", "device": "cpu", "precision": "fp32",
                    "versions": {"onnxruntime": "1.22.0"}},
        "nonce": "3e9c1f0a2b7d4e6f", "detail": {}, "depth_png_base64": None,
    }


def check_examples() -> dict[str, dict[str, Any]]:
    """One example answer per reason a 200 can carry (each with its verdict)."""
    return {f"{_VERDICT_OF_REASON.get(r, Verdict.RETRY).value}_{r.value}":
            {"summary": f"{_VERDICT_OF_REASON.get(r, Verdict.RETRY).value} / {r.value}",
             "value": _example_check(r)}
            for r in Reason if r not in _NOT_ANSWERED_200}


def evaluation_examples() -> dict[str, dict[str, Any]]:
    out = {}
    for reason in (Reason.SCORE_ABOVE_THRESHOLD, Reason.SCORE_BELOW_THRESHOLD,
                   Reason.CHALLENGE_MISMATCH, Reason.NO_CLEAN_FRAME):
        check = _example_check(reason)
        value = {"evaluation_id": check["check_id"], "access_decision": False,
                 "outcome": check["verdict"], "session_nonce": check["nonce"],
                 **{k: check[k] for k in ("reason", "score", "threshold", "type_probs",
                                          "timings_ms", "queue_wait_ms", "model", "backend",
                                          "detail")}}
        out[f"{value['outcome']}_{reason.value}"] = {"value": value}
    return out


SESSION_BODY_DESCRIPTION = (
    "One session file in the dataset format: a single-session `.npz` (a zip of `.npy` arrays "
    "under `s0000/`, stored or deflated) as written by `write_session_file` (docs/DATASET.md). "
    "Any other bytes are answered 422 `invalid_session`."
)


def with_error_schema(generate: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Wrap FastAPI's document generator: the error responses refer to ``ErrorResponse`` by
    reference, so its schema (and ``ErrorInfo``) must be among the components."""

    def document() -> dict[str, Any]:
        doc = generate()
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        if "ErrorResponse" not in schemas:
            schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas["ErrorResponse"] = schema
            doc["components"]["schemas"] = dict(sorted(schemas.items()))
        return doc

    return document
