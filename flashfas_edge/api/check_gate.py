"""One check at a time: the camera and the flash are one physical resource (docs/ARCHITECTURE.md
§9).

Requests wait in a bounded FIFO; when it is full the caller gets 429 with a Retry-After estimated
from recent check durations. A check runs on a single dedicated worker thread. When a check
overruns its deadline the caller gets an answer at once (504), but the camera is only handed to the
next check once the worker has really returned — every pipeline stage has its own timeout, so it
does; if it ever did not, the watchdog stops pinging and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class QueueFullError(RuntimeError):
    def __init__(self, retry_after_s: int, depth: int) -> None:
        super().__init__(f"{depth} checks are running or waiting; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s
        self.depth = depth


class CheckTimeoutError(TimeoutError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the check did not finish within {timeout_s:.1f} s")
        self.timeout_s = timeout_s


class CheckGate:
    def __init__(self, max_waiting: int, default_duration_s: float = 0.5) -> None:
        self.max_waiting = max_waiting
        self._lock = asyncio.Lock()  # FIFO-fair: waiters acquire in arrival order
        self._waiting = 0
        self._running_since: float | None = None  # monotonic seconds; None when idle
        self._recent_durations_s: deque[float] = deque([default_duration_s], maxlen=20)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check")

    @property
    def depth(self) -> int:
        """Checks running or waiting."""
        return self._waiting + (1 if self._running_since is not None else 0)

    def running_for_s(self) -> float | None:
        """How long the current check has been on the worker (None when idle); read by the
        watchdog from another thread, hence a single attribute read."""
        since = self._running_since
        return None if since is None else time.monotonic() - since

    def _retry_after_s(self) -> int:
        typical_s = statistics.median(self._recent_durations_s)
        return max(1, math.ceil(typical_s * (self.depth + 1)))

    def admit(self) -> None:
        """Raise :class:`QueueFullError` now if a new check could not be queued."""
        if self.depth >= 1 + self.max_waiting:
            raise QueueFullError(self._retry_after_s(), self.depth)

    async def run(
        self,
        work: Callable[[], T],
        timeout_s: float,
        on_late_result: Callable[[T, float], None] | None = None,
    ) -> tuple[T, float]:
        """Run ``work`` on the worker when the camera is free; returns (result, queue wait ms).

        When the deadline passes first, :class:`CheckTimeoutError` is raised at once and
        ``on_late_result(result, wait_ms)`` is called if the work still finishes (its audit)."""
        self.admit()
        queued_at = time.monotonic()
        self._waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self._waiting -= 1
        wait_ms = (time.monotonic() - queued_at) * 1000.0
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        self._running_since = started
        try:
            future = loop.run_in_executor(self._worker, work)
        except BaseException:
            self._running_since = None
            self._lock.release()
            raise

        def _free_camera(_: asyncio.Future[T]) -> None:
            self._recent_durations_s.append(time.monotonic() - started)
            self._running_since = None
            self._lock.release()

        future.add_done_callback(_free_camera)
        try:
            # shield: a timeout answers the caller but must not pretend the worker stopped.
            result = await asyncio.wait_for(asyncio.shield(future), timeout=timeout_s)
        except asyncio.TimeoutError as exc:
            if on_late_result is not None:
                callback = on_late_result

                def _late(done: asyncio.Future[T]) -> None:
                    if not done.cancelled() and done.exception() is None:
                        callback(done.result(), wait_ms)

                future.add_done_callback(_late)
            raise CheckTimeoutError(timeout_s) from exc
        return result, wait_ms

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)
