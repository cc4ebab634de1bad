"""The browser flash client's WebSocket (``/v1/flash/ws``): authenticates the client and hands the
connection to the display driver (``flash/display_flash.py``), which owns the protocol.

Authentication: browsers cannot set headers on a WebSocket, so the client's **first message**
carries the API key (``{"type": "hello", "key": ..., "version": 1}``) and must arrive within
``HELLO_TIMEOUT_S``; a wrong or missing key closes the socket (code 4401) before the driver sees
it. A first message keeps the key out of the URL (a query token lands in access logs and browser
history) and out of ``Sec-WebSocket-Protocol`` (a header that is echoed back and meant for protocol
names). Only loopback peers are accepted: the display belongs to this machine, whatever
``server.host`` allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from flashfas_edge.api.auth import key_matches
from flashfas_edge.clock import monotonic_us
from flashfas_edge.flash.base import FlashError
from flashfas_edge.flash.display_flash import FlashClientHub

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 5.0
MAX_MESSAGE_CHARS = 4096  # the client's messages are tiny; anything larger is not the client
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_HERE = 4404
CLOSE_REFUSED = 4400
CLOSE_NOT_LOOPBACK = 4403


class SocketChannel:
    """The driver's :class:`~flashfas_edge.flash.display_flash.ClientChannel` over one socket:
    messages from any thread are queued onto the event loop and sent in order."""

    def __init__(self, socket: WebSocket, loop: asyncio.AbstractEventLoop) -> None:
        self._socket = socket
        self._loop = loop
        self._outbox: asyncio.Queue[tuple[str, int, str] | None] = asyncio.Queue()
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        if not self.closed:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait,
                                            ("send", 0, json.dumps(message)))

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, ("close", code, reason))

    async def run_sender(self) -> None:
        while True:
            item = await self._outbox.get()
            if item is None:
                return
            action, code, text = item
            if action == "close":
                await self._socket.close(code, text[:120])
                return
            await self._socket.send_text(text)


def _is_loopback(socket: WebSocket) -> bool:
    if socket.client is None:
        return False
    try:
        return ipaddress.ip_address(socket.client.host).is_loopback
    except ValueError:
        return False


async def _hello(socket: WebSocket) -> dict[str, Any] | None:
    try:
        text = await asyncio.wait_for(socket.receive_text(), HELLO_TIMEOUT_S)
        message = json.loads(text)
    except (asyncio.TimeoutError, ValueError, KeyError, RuntimeError):
        return None
    return message if isinstance(message, dict) and message.get("type") == "hello" else None


async def serve_flash_client(socket: WebSocket, api_key: str, hub: FlashClientHub | None) -> None:
    await socket.accept()
    if not _is_loopback(socket):
        await socket.close(CLOSE_NOT_LOOPBACK, "flash clients connect from this machine only")
        return
    hello = await _hello(socket)
    key = hello.get("key") if hello is not None else None
    if not key_matches(api_key, key if isinstance(key, str) else None):
        await socket.close(CLOSE_UNAUTHORIZED, "unauthorized: the first message must be "
                                               "{type: hello, key, version}")
        return
    if hub is None:
        await socket.close(CLOSE_NOT_HERE, "this daemon's flash is not the browser display")
        return
    channel = SocketChannel(socket, asyncio.get_running_loop())
    assert hello is not None
    try:
        session = hub.attach(channel, hello)
    except FlashError as exc:
        await socket.close(CLOSE_REFUSED, str(exc)[:120])
        return
    sender = asyncio.create_task(channel.run_sender())
    problem: str | None = None
    try:
        while problem is None:
            text = await socket.receive_text()
            received_us = monotonic_us()  # stamped first: the clock mapping's receive time
            try:
                message = json.loads(text) if len(text) <= MAX_MESSAGE_CHARS else None
            except ValueError:
                message = None
            if not isinstance(message, dict):
                problem = "not a flash client message"
                break
            session.deliver(message, received_us)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        session.detach()
        channel.closed = True
        sender.cancel()
        log.info("display flash: %s disconnected%s", session.name,
                 f" ({problem})" if problem else "")
    if problem is not None:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await socket.close(CLOSE_REFUSED, problem)
