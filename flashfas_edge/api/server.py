"""Run the daemon: load the key, build the kiosk, serve the API with uvicorn, talk to systemd.

The listening socket is created here (TCP on the configured loopback address, or a Unix socket)
so that the real port is known before serving (port 0 → a free port, for tests and the demo); the
line ``listening on <url>`` on stdout announces it.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from flashfas_edge.api.audit_log import AuditLog
from flashfas_edge.api.auth import load_api_key
from flashfas_edge.api.sd_notify import NotifyError, SystemdNotifier
from flashfas_edge.api.service import LivenessService
from flashfas_edge.api.watchdog import WatchdogPinger
from flashfas_edge.config import LoadedConfig

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


def _daemon_server_class() -> type:
    import uvicorn

    class DaemonServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT once it has shut down, so the process would die of
        the signal before the daemon's own shutdown (STOPPING=1, camera and flash released).
        Here the signal only asks uvicorn to stop; ``run_daemon`` then finishes and exits 0."""

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

    return DaemonServer


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
    import uvicorn

    from flashfas_edge.api.kiosk_factory import build_service

    daemon = config.daemon
    api_key = load_api_key(daemon.server.api_key_file)
    audit = AuditLog(
        daemon.audit.path, daemon.audit.max_bytes, daemon.audit.backups,
        images_dir=daemon.audit.images_dir if daemon.audit.store_images else None,
    )
    service = build_service(config)
    app = create_app(config, service, audit, api_key)
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
    listener = open_listener(config)
    uv_config = uvicorn.Config(
        app, log_level=log_level, access_log=False, lifespan="off",
        timeout_graceful_shutdown=max(5, int(daemon.queue.check_timeout_s) + 1),
    )
    uv_server = _daemon_server_class()(uv_config)
    print(f"listening on {listener.url}", flush=True)
    service.start()
    pinger.start()
    try:
        asyncio.run(uv_server.serve(sockets=[listener.sock]))
    finally:
        try:
            notifier.stopping()
        except NotifyError as exc:
            log.warning("%s", exc)
        pinger.stop()
        gate.close()
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
