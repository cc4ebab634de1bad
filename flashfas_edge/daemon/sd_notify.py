"""systemd's readiness/watchdog protocol (sd_notify(3)), spoken directly over NOTIFY_SOCKET.

The protocol is one datagram of newline-separated ``KEY=VALUE`` pairs sent to the Unix socket that
systemd names in ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). It is small
enough that depending on libsystemd (or a wrapper) would add more risk than it removes.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


class NotifyError(OSError):
    """The notify socket named by systemd could not be reached."""


@dataclass(frozen=True)
class SystemdNotifier:
    """Sends state changes to systemd; a no-op when not started by systemd (``socket_path`` None).

    ``watchdog_interval_us`` is systemd's ``WatchdogSec`` in µs (``$WATCHDOG_USEC``), or None
    when the unit has no watchdog (or the watchdog is meant for another process, ``$WATCHDOG_PID``).
    """

    socket_path: str | None
    watchdog_interval_us: int | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> SystemdNotifier:
        """Read the variables systemd sets for a ``Type=notify`` service (done once, by the CLI)."""
        path = environ.get("NOTIFY_SOCKET") or None
        interval_us: int | None = None
        raw_usec = environ.get("WATCHDOG_USEC", "")
        raw_pid = environ.get("WATCHDOG_PID", "")
        if raw_usec.isdigit() and int(raw_usec) > 0:
            # sd_watchdog_enabled(3): WATCHDOG_PID, when set, must be this process.
            if not raw_pid or (raw_pid.isdigit() and int(raw_pid) == os.getpid()):
                interval_us = int(raw_usec)
        return cls(socket_path=path, watchdog_interval_us=interval_us)

    @property
    def enabled(self) -> bool:
        return self.socket_path is not None

    def _address(self) -> str:
        assert self.socket_path is not None
        if self.socket_path.startswith("@"):
            return "\0" + self.socket_path[1:]  # abstract namespace socket
        return self.socket_path

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` fields in one datagram; returns False when not under systemd."""
        if self.socket_path is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address())
                sock.sendall(message.encode("utf-8"))
        except OSError as exc:
            raise NotifyError(f"cannot notify systemd at {self.socket_path!r}: {exc}") from exc
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status, MAINPID=os.getpid())

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def stopping(self) -> bool:
        return self.send(STOPPING=1, STATUS="stopping")
