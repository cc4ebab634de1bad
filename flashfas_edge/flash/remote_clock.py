"""A remote clock on the host's: remote µs ↔ host monotonic µs, from request/answer round trips.

Used for the LED panel's MCU clock (TIME round trips, ``led_serial.py``) and the browser flash
client's ``performance.now()`` (ping round trips, ``display_flash.py``). Each round trip gives the
remote stamp of the request's arrival and the host's send and receive times; requests and answers
have the same length, so the stamp sits at the round trip's midpoint up to the asymmetry of the
link (NTP's assumption). Offset and drift come from a least-squares line through
the recent samples whose round trip was short (a slow one says little about when the stamp was
taken); the driver adds a sample every idle interval, so the line follows the crystal's drift.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from flashfas_edge.flash.base import FlashError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClockSample:
    host_mid_us: float
    remote_us: int
    round_trip_us: int


class RemoteClock:
    def __init__(self, window: int = 48, max_age_s: float = 60.0) -> None:
        self._samples: deque[ClockSample] = deque(maxlen=window)
        self._max_age_us = max_age_s * 1e6
        self._remote_ref = 0
        self._host_ref = 0.0
        self._rate = 1.0  # host µs per remote µs

    def reset(self) -> None:
        self._samples.clear()

    @property
    def samples(self) -> int:
        return len(self._samples)

    def add(self, host_send_us: int, host_receive_us: int, remote_us: int) -> None:
        rtt = host_receive_us - host_send_us
        self._samples.append(ClockSample((host_send_us + host_receive_us) / 2, remote_us, rtt))
        newest = self._samples[-1].host_mid_us
        while self._samples and newest - self._samples[0].host_mid_us > self._max_age_us:
            self._samples.popleft()
        self._fit()

    def _fit(self) -> None:
        fastest = min(s.round_trip_us for s in self._samples)
        # within 1.5× the fastest round trip (+ 100 µs of scheduler noise): the trustworthy ones
        good = [s for s in self._samples if s.round_trip_us <= 1.5 * fastest + 100]
        remote_ref = good[-1].remote_us
        xs = [s.remote_us - remote_ref for s in good]
        ys = [s.host_mid_us for s in good]
        n = len(good)
        mean_x, mean_y = sum(xs) / n, sum(ys) / n
        var_x = sum((x - mean_x) ** 2 for x in xs)
        rate = 1.0
        if n >= 3 and max(xs) - min(xs) >= 500_000:  # drift only from samples ≥ 0.5 s apart
            rate = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var_x
            rate = min(max(rate, 0.99), 1.01)  # a crystal or resonator is within 1 %
        self._remote_ref = remote_ref
        self._host_ref = mean_y + rate * (0 - mean_x)
        self._rate = rate

    @property
    def drift_ppm(self) -> float:
        return (1.0 / self._rate - 1.0) * 1e6

    def to_host_us(self, remote_us: int) -> int:
        if not self._samples:
            raise ValueError("no clock samples yet")
        return round(self._host_ref + (remote_us - self._remote_ref) * self._rate)

    def to_remote_us(self, host_us: int) -> int:
        if not self._samples:
            raise ValueError("no clock samples yet")
        return round(self._remote_ref + (host_us - self._host_ref) / self._rate)


class ClockKeeper:
    """A thread that takes one clock sample every ``interval_s`` while the link is idle: the line
    follows the remote clock's drift, and the round trip doubles as a keep-alive. The sample runs
    under the driver's ``lock`` and is skipped while a sequence holds it; a failed one is logged
    (the driver finds the fault at its next command)."""

    def __init__(self, name: str, interval_s: float, lock: threading.RLock,
                 sample: Callable[[], None]) -> None:
        self.name = name
        self.interval_s = interval_s
        self._lock = lock
        self._sample = sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self._lock.acquire(timeout=self.interval_s):
                continue
            try:
                self._sample()
            except FlashError as exc:
                log.warning("%s: %s (the next command finds the fault)", self.name, exc)
            finally:
                self._lock.release()
