"""The browser display flash's two routes, shared by the daemon's app and by ``calibrate`` (which
runs with the daemon stopped, so it serves them itself while it measures the display):
``GET /v1/flash/client.js`` (the plain-JS client, no key) and the WebSocket ``/v1/flash/ws``
(``flash_socket.py``: the key as the first message, loopback peers only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Response, WebSocket
from fastapi.responses import PlainTextResponse

from flashfas_edge.api.flash_socket import serve_flash_client
from flashfas_edge.flash.display_flash import FlashClientHub, client_script

# uvicorn's WebSocket settings for the flash client's socket: its messages are tiny
WEBSOCKET_OPTIONS: dict[str, Any] = {"ws": "websockets-sansio", "ws_max_size": 64 * 1024}


def flash_client_router(api_key: Callable[[], str], hub: FlashClientHub | None) -> APIRouter:
    """``api_key`` is read per connection (the daemon reloads its key file on SIGHUP)."""
    router = APIRouter()
    script = client_script()

    @router.get("/v1/flash/client.js", tags=["display flash"], response_class=PlainTextResponse,
                responses={200: {"description": "The flash client (plain JavaScript)",
                                 "content": {"text/javascript": {"schema": {"type": "string"}}}}})
    async def flash_client() -> Response:
        """The browser flash client a kiosk page includes (docs/DISPLAY_FLASH.md); no API key:
        a `<script src>` cannot send one, and the file holds no secret. The client then connects
        to the WebSocket `/v1/flash/ws` and sends the key as its first message."""
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    @router.websocket("/v1/flash/ws")
    async def flash_client_socket(socket: WebSocket) -> None:
        await serve_flash_client(socket, api_key(), hub)

    return router
