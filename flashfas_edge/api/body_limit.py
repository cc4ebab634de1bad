"""ASGI middleware: refuse request bodies beyond a per-route size before they are buffered.

A declared ``Content-Length`` over the limit is answered 413 without running the route; a chunked
body is counted as it streams and cut off at the limit. Either way the excess is read and discarded
(never stored) up to ``DRAIN_CAP_BYTES`` so that the client sees the 413 rather than a connection
reset; beyond the cap the connection is simply closed. This bounds the memory one request can use.

A body must also arrive in time: ``body_timeout_s`` from the request's start to its last byte, else
408 and the connection is closed (a client trickling a body must not hold the daemon's resources).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flashfas_edge.api.errors import PayloadTooLarge, RequestTimeout, error_body

DRAIN_CAP_BYTES = 256 * 1024 * 1024


class BodySizeLimit:
    def __init__(self, app: ASGIApp, limit_for_path: Callable[[str], int],
                 body_timeout_s: float = 30.0) -> None:
        self.app = app
        self.limit_for_path = limit_for_path
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for_path(scope["path"])
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > limit:
                    if 0 < declared <= DRAIN_CAP_BYTES:
                        await _drain(receive, DRAIN_CAP_BYTES)
                    await _reject(send, limit, declared)
                    return
        received = 0
        deadline = time.monotonic() + self.body_timeout_s
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body only a disconnect can come: no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
            except asyncio.TimeoutError as exc:
                raise RequestTimeout(f"the request body did not arrive within "
                                     f"{self.body_timeout_s:g} s") from exc
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _drain(receive, DRAIN_CAP_BYTES)
                    raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
            return message

        await self.app(scope, counting_receive, send)


async def _drain(receive: Receive, cap_bytes: int) -> None:
    """Read and drop the rest of the body (up to ``cap_bytes``)."""
    drained = 0
    while drained <= cap_bytes:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _reject(send: Send, limit: int, declared: int) -> None:
    if declared < 0:
        code, status, message = "bad_request", 400, "invalid Content-Length header"
    else:
        code, status = PayloadTooLarge.code, PayloadTooLarge.status_code
        message = f"the request body ({declared} bytes) is larger than {limit} bytes"
    body = json.dumps(error_body(code, message)).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": body})
