"""A small client of the local API, used by ``flashfas-edge check`` and ``demo`` (and the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8787"


class ApiClientError(RuntimeError):
    """The daemon answered with an error body (or not at all)."""

    def __init__(self, status: int, code: str, message: str,
                 retry_after_s: int | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.retry_after_s = retry_after_s  # from Retry-After (429, 503), else None


def read_key_file(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ApiClientError(0, "no_api_key", f"cannot read the API key file {path}: {exc}") \
            from exc


class LivenessClient:
    """``url`` is ``http://host:port`` or ``unix:/path/to.sock``."""

    def __init__(self, url: str, api_key: str, timeout_s: float = 30.0) -> None:
        if url.startswith("unix:"):
            transport = httpx.HTTPTransport(uds=url.removeprefix("unix:"))
            self._http = httpx.Client(base_url="http://flashfas-edge", transport=transport,
                                      timeout=timeout_s)
        else:
            self._http = httpx.Client(base_url=url, timeout=timeout_s)
        self._headers = {"Authorization": f"Bearer {api_key}"}

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> LivenessClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, headers: dict[str, str] | None = None,
              **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, headers={**self._headers,
                                                                 **(headers or {})}, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiClientError(0, "unreachable", f"{method} {path}: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            if not error and isinstance(body, dict) and "reason" in body:  # health's body
                error = {"code": body.get("reason"), "message": body.get("status")}
            retry_after = response.headers.get("retry-after")
            raise ApiClientError(response.status_code, str(error.get("code", "http_error")),
                                 str(error.get("message", response.text[:200])),
                                 int(retry_after) if retry_after and retry_after.isdigit()
                                 else None)
        return body

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/v1/health")

    def status(self) -> dict[str, Any]:
        return self._call("GET", "/v1/status")

    def check(self, *, want_depth: bool = False, client_ref: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"want_depth": want_depth}
        if client_ref is not None:
            body["client_ref"] = client_ref
        return self._call("POST", "/v1/liveness", json=body)

    def evaluate_recorded(self, payload: bytes, media_type: str) -> dict[str, Any]:
        """Score an uploaded session (an evaluation, never an access decision: no verdict)."""
        return self._call("POST", "/v1/evaluate/recorded", content=payload,
                          headers={"Content-Type": media_type})

    def set_sim_scene(self, scene: str, ambient: str | None = None, seed: int | None = None,
                      **options: Any) -> dict[str, Any]:
        return self._call("PUT", "/v1/sim/scene", json={
            "scene": scene, "ambient": ambient, "seed": seed, "options": options})
