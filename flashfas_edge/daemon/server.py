"""Run the daemon: load the key, build the kiosk, serve the API with uvicorn, talk to systemd.

The listening socket is created here (TCP on the configured loopback address, or a Unix socket)
so that the real port is known before serving (port 0 → a free port, for tests and the demo); the
line ``listening on <url>`` on stdout announces it.

Connections are guarded before any authentication can happen (:func:`guarded_protocol`): the
request line and headers must arrive within ``server.header_timeout_s``, and beyond
``server.max_connections`` a new connection is answered 503 and closed; the body's own deadline is
the body-limit middleware's. On SIGTERM the check gate stops admitting (new and waiting checks are
answered 503 ``stopping`` in JSON), the running check finishes and is audited, then the daemon
exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from flashfas_edge.api.app import create_app
from flashfas_edge.api.auth import load_api_key
from flashfas_edge.api.errors import error_body
from flashfas_edge.api.flash_routes import WEBSOCKET_OPTIONS
from flashfas_edge.config import ConfigError, LoadedConfig
from flashfas_edge.daemon.audit_log import AuditLog, AuditLogError
from flashfas_edge.daemon.sd_notify import NotifyError, SystemdNotifier
from flashfas_edge.daemon.service import LivenessService
from flashfas_edge.daemon.watchdog import WatchdogPinger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Listener:
    sock: socket.socket
    url: str


def open_listener(config: LoadedConfig) -> Listener:
    server = config.daemon.server
    if server.unix_socket is not None:
        path = server.unix_socket
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                path.unlink()  # a stale socket of an earlier run
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        os.chmod(path, 0o660)  # the kiosk app's group may connect; nobody else
        sock.listen(64)
        return Listener(sock, f"unix:{path}")
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on connections of sockets that say so;
    # without it Nagle + delayed ACK add ~40 ms to every keep-alive answer. Set it here as well
    # (accepted sockets inherit it on Linux).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((server.host, server.port))
    sock.listen(64)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return Listener(sock, f"http://{shown}:{port}")


def guarded_protocol(header_timeout_s: float, max_connections: int) -> type:
    """uvicorn's h11 protocol with a deadline for the request head and a connection cap.

    uvicorn only times out a kept-alive connection between requests; a fresh connection that
    sends nothing, or headers one byte at a time, would be held forever. Here the head of every
    request must be complete ``header_timeout_s`` after the connection opened (or after the first
    byte of a later request on it), else the connection is closed."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    refusal = json.dumps(error_body(
        "too_many_connections", f"more than {max_connections} open connections; retry later",
    )).encode()
    refusal_response = (
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"retry-after: 1\r\nconnection: close\r\ncontent-length: "
        + str(len(refusal)).encode() + b"\r\n\r\n" + refusal
    )

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            self._head_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning("connection refused: %d open connections", len(self.connections))
                transport.write(refusal_response)
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            self._head_deadline = self.loop.call_later(header_timeout_s, self._head_too_slow)

        def _disarm(self) -> None:
            if self._head_deadline is not None:
                self._head_deadline.cancel()
                self._head_deadline = None

        def _head_too_slow(self) -> None:
            self._head_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("closing a connection whose request head did not arrive in %.0f s",
                         header_timeout_s)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._head_deadline is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the first byte of another request on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()  # the head is complete

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def build_server(app: object, config: LoadedConfig, on_shutdown: Callable[[], None],
                 *, log_level: str = "warning") -> object:
    """The uvicorn server the daemon (and the API tests) run: guarded connections, and
    ``on_shutdown`` called on the event loop as soon as SIGTERM/SIGINT (or ``should_exit``)
    asks it to stop, before uvicorn waits for the requests in flight."""
    import uvicorn

    server = config.daemon.server
    uv_config = uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="off",  # type: ignore[arg-type]
        http=guarded_protocol(server.header_timeout_s, server.max_connections),
        **WEBSOCKET_OPTIONS,  # the browser flash client's socket (/v1/flash/ws)
        timeout_graceful_shutdown=max(5, int(config.daemon.queue.check_timeout_s) + 1),
    )

    class DaemonServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT once it has shut down, so the process would die of
        the signal before the daemon's own shutdown (STOPPING=1, camera and flash released).
        Here the signal only asks uvicorn to stop; ``run_daemon`` then finishes and exits 0."""

        async def main_loop(self) -> None:
            await super().main_loop()
            on_shutdown()  # admission closes before uvicorn starts waiting for connections

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            originals = {sig: signal.signal(sig, self.handle_exit)
                         for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

    return DaemonServer(uv_config)


def watchdog_condition(service: LivenessService, gate_running_for_s: Callable[[], float | None],
                       stuck_after_s: float) -> Callable[[], tuple[bool, str]]:
    def is_alive() -> tuple[bool, str]:
        health = service.health()
        if health.status == "starting":
            return True, ""  # first warm-up/self-test still making progress
        if not service.frames_flowing():
            return False, health.message or "camera frames stopped arriving"
        running_s = gate_running_for_s()
        if running_s is not None and running_s > stuck_after_s:
            return False, f"a check has been running for {running_s:.1f} s"
        return True, ""

    return is_alive


def run_daemon(config: LoadedConfig, notifier: SystemdNotifier, *, log_level: str = "info") -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    from flashfas_edge.kiosk.assembly import build_kiosk

    daemon = config.daemon
    api_key = load_api_key(daemon.server.api_key_file)
    try:
        audit = AuditLog(
            daemon.audit.path, daemon.audit.max_bytes, daemon.audit.backups,
            images_dir=daemon.audit.images_dir if daemon.audit.store_images else None,
        )
        audit.recover()  # a torn last line, a check a crash interrupted
    except AuditLogError as exc:
        raise ConfigError(f"audit log: {exc}") from exc
    kiosk = build_kiosk(config)
    service = kiosk.service
    app = create_app(config, service, audit, api_key, kiosk.scene_controls,
                     kiosk.flash_clients)
    gate = app.state.daemon.gate
    pinger = WatchdogPinger(
        notifier,
        watchdog_condition(service, gate.running_for_s,
                           daemon.queue.check_timeout_s * daemon.watchdog.stuck_check_factor),
    )

    def announce_ready() -> None:
        try:
            notifier.ready(f"ready: {service.mode} kiosk, model {service.model_identity}")
        except NotifyError as exc:
            log.warning("%s", exc)

    service.on_ready(announce_ready)
    try:
        listener = open_listener(config)
    except OSError as exc:
        where = daemon.server.unix_socket or f"{daemon.server.host}:{daemon.server.port}"
        raise ConfigError(f"cannot listen on {where}: {exc.strerror or exc}") from exc

    def begin_shutdown() -> None:
        gate.close_admission()  # new and waiting checks: 503 stopping, now
        service.begin_stopping()

    uv_server = build_server(app, config, begin_shutdown, log_level=log_level)
    print(f"listening on {listener.url}", flush=True)
    service.start()
    pinger.start()
    try:
        asyncio.run(uv_server.serve(sockets=[listener.sock]))  # type: ignore[attr-defined]
    finally:
        try:
            notifier.stopping()
        except NotifyError as exc:
            log.warning("%s", exc)
        pinger.stop()
        # A check whose request uvicorn gave up on still ends (stage timeouts) and is audited.
        gate.close(wait_s=daemon.queue.check_timeout_s)
        service.stop()
        listener.sock.close()
        if daemon.server.unix_socket is not None:
            Path(daemon.server.unix_socket).unlink(missing_ok=True)
    return 0


def configure_logging(level: str) -> None:
    # journald adds timestamps; keep lines short and greppable.
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
