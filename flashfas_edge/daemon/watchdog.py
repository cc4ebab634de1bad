"""The systemd watchdog loop: ``WATCHDOG=1`` at half ``WatchdogSec``, only while the kiosk lives.

A process that merely runs is not healthy: the pings stop when camera frames stop arriving (a
stalled camera or a dead capture thread) or when a check has been on the worker far beyond its
deadline (a stuck stage). systemd then kills and restarts the daemon (``Restart=on-failure``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flashfas_edge.daemon.sd_notify import NotifyError, SystemdNotifier

log = logging.getLogger(__name__)


class WatchdogPinger:
    def __init__(
        self,
        notifier: SystemdNotifier,
        is_alive: Callable[[], tuple[bool, str]],
        interval_s: float | None = None,
    ) -> None:
        """``is_alive`` returns (alive, why-not); ``interval_s`` defaults to WatchdogSec / 2."""
        if interval_s is None and notifier.watchdog_interval_us is not None:
            interval_s = notifier.watchdog_interval_us / 2e6
        self.notifier = notifier
        self.is_alive = is_alive
        self.interval_s = interval_s
        self.pings_sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._withheld_reason: str | None = None

    @property
    def enabled(self) -> bool:
        return self.notifier.enabled and self.interval_s is not None

    def start(self) -> None:
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._loop, name="sd-watchdog", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        assert self.interval_s is not None
        while not self._stop.wait(self.interval_s):
            alive, why_not = self.is_alive()
            if not alive:
                if why_not != self._withheld_reason:
                    log.error("withholding the systemd watchdog ping: %s", why_not)
                    try:
                        self.notifier.status(f"unhealthy: {why_not}")
                    except NotifyError as exc:
                        log.warning("%s", exc)
                self._withheld_reason = why_not
                continue
            if self._withheld_reason is not None:
                log.info("healthy again; watchdog pings resume")
                self._withheld_reason = None
            try:
                self.notifier.watchdog()
                self.pings_sent += 1
            except NotifyError as exc:
                log.warning("%s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
