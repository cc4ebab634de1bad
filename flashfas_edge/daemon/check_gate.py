"""One check at a time: the camera and the flash are one physical resource (docs/ARCHITECTURE.md
§9).

Requests take a place in a bounded FIFO *before* anything of theirs is read (an upload's body is
only read once its place is reserved, so concurrent uploads cannot pile up in memory); when it is
full the caller gets 429 with a Retry-After estimated from how long recent checks of each kind took.
A check runs on a single dedicated worker thread.

Who answers for a check is settled by a :class:`Ticket`: the work itself (on the worker thread)
records its own outcome — the audit line — as soon as it has one, saying what its caller was told:
the answer (still waiting), a 504 (the deadline passed first) or a 503 (the daemon stopped, or the
caller went away). So every check that started is accounted for even when the request that asked
for it is cancelled. When a check overruns its deadline the caller gets an answer at once (504),
but the camera is only handed to the next check once the worker has really returned.

On shutdown (:meth:`CheckGate.close_admission`) new checks and those still waiting are answered
503 at once; the running one finishes (every pipeline stage has its own timeout) and is audited.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal, TypeVar

T = TypeVar("T")

# What a check's caller was told, as the work sees it when it settles.
CallerState = Literal["waiting", "timed_out", "abandoned"]


class QueueFullError(RuntimeError):
    def __init__(self, retry_after_s: int, depth: int) -> None:
        super().__init__(f"{depth} checks are running or waiting; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s
        self.depth = depth


class CheckTimeoutError(TimeoutError):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"the check did not finish within {timeout_s:.1f} s")
        self.timeout_s = timeout_s


class ShuttingDownError(RuntimeError):
    """The daemon is stopping: no new check starts (503)."""

    def __init__(self) -> None:
        super().__init__("the daemon is shutting down; no new check is started")


@dataclass
class Ticket:
    """One admitted check: whether its caller is still waiting for the answer."""

    kind: str
    wait_ms: float = 0.0
    _state: Literal["waiting", "settled", "timed_out", "abandoned"] = "waiting"
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def settle(self) -> CallerState:
        """Called by the work once its outcome is known: what its caller has been told so far.
        After this the caller gets the work's answer (a deadline passing no longer matters)."""
        with self._lock:
            prior = self._state
            if prior == "waiting":
                self._state = "settled"
                return "waiting"
            assert prior != "settled", "a check settles once"
            return prior

    def give_up(self, why: Literal["timed_out", "abandoned"]) -> bool:
        """The caller stops waiting; False if the work has already settled (its answer stands)."""
        with self._lock:
            if self._state == "settled":
                return False
            self._state = why
            return True


class Reservation:
    """A place in the queue, taken before the request's body is read; released by ``run``."""

    def __init__(self, gate: CheckGate, kind: str) -> None:
        self._gate = gate
        self.kind = kind
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._gate._reserved.remove(self.kind)


class CheckGate:
    def __init__(self, max_waiting: int, default_duration_s: float = 0.5) -> None:
        self.max_waiting = max_waiting
        self.default_duration_s = default_duration_s
        self._busy = False
        self._waiters: deque[asyncio.Future[None]] = deque()  # FIFO: served in arrival order
        self._reserved: list[str] = []  # kinds of the admitted checks not yet running
        self._running: tuple[str, float] | None = None  # (kind, monotonic start); None: idle
        # Durations of checks that ran to a result, per kind (camera checks take the flash
        # sequence; an evaluation of an upload takes a fraction of it). Failed work — an upload
        # that did not decode — is not a duration a waiting caller can expect.
        self._durations_s: dict[str, deque[float]] = {}
        self._closing = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check")

    @property
    def depth(self) -> int:
        """Checks running or holding a place in the queue."""
        return len(self._reserved) + (1 if self._running is not None else 0)

    @property
    def closing(self) -> bool:
        return self._closing

    def running_for_s(self) -> float | None:
        """How long the current check has been on the worker (None when idle); read by the
        watchdog from another thread, hence a single attribute read."""
        running = self._running
        return None if running is None else time.monotonic() - running[1]

    # ----- Retry-After ---------------------------------------------------------------------------
    def _typical_s(self, kind: str) -> float:
        """A cautious duration for one check of ``kind``: the upper quartile of recent ones."""
        recent = sorted(self._durations_s.get(kind, ()))
        if not recent:
            return self.default_duration_s
        return recent[min(len(recent) - 1, (3 * len(recent)) // 4)]

    def drain_estimate_s(self) -> float:
        """How long until the queue as it stands now has drained."""
        total = sum(self._typical_s(kind) for kind in self._reserved)
        if self._running is not None:
            kind, since = self._running
            total += max(self._typical_s(kind) - (time.monotonic() - since), 0.0)
        return total

    def retry_after_s(self, kind: str) -> int:
        """Seconds after which a new check of ``kind`` would find a place: the queue drains and
        the check itself runs."""
        return max(1, math.ceil(self.drain_estimate_s() + self._typical_s(kind)))

    # ----- admission ------------------------------------------------------------------------------
    def reserve(self, kind: str) -> Reservation:
        """Take a place now or raise (:class:`QueueFullError`, :class:`ShuttingDownError`)."""
        if self._closing:
            raise ShuttingDownError()
        if self.depth >= 1 + self.max_waiting:
            raise QueueFullError(self.retry_after_s(kind), self.depth)
        self._reserved.append(kind)
        return Reservation(self, kind)

    async def _acquire(self) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by _release handing the camera over, or failed by close
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._release()  # handed over just as this caller left: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the camera goes straight to the next in line
                return
        self._busy = False

    def close_admission(self) -> None:
        """Shutdown: refuse new checks and fail the waiting ones (503); the running one ends.
        Called on the event loop's thread."""
        self._closing = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ShuttingDownError())

    # ----- running --------------------------------------------------------------------------------
    async def run(
        self,
        work: Callable[[Ticket], T],
        timeout_s: float,
        *,
        kind: str = "camera",
        reservation: Reservation | None = None,
    ) -> T:
        """Run ``work(ticket)`` on the worker when the camera is free and return its value.

        ``work`` calls ``ticket.settle()`` when its outcome is known. When the deadline passes
        before that, :class:`CheckTimeoutError` is raised at once (the work then settles with
        ``"timed_out"``); when the caller is cancelled, the work settles with ``"abandoned"``."""
        if reservation is None:
            reservation = self.reserve(kind)
        ticket = Ticket(kind)
        queued_at = time.monotonic()
        try:
            await self._acquire()
        finally:
            reservation.release()
        if self._closing:
            self._release()
            raise ShuttingDownError()
        ticket.wait_ms = (time.monotonic() - queued_at) * 1000.0
        started = time.monotonic()
        self._running = (kind, started)
        loop = asyncio.get_running_loop()
        try:
            concurrent = self._worker.submit(work, ticket)
        except BaseException:
            self._running = None
            self._release()
            raise

        def _free_camera(done: object) -> None:
            # On the worker thread: hand the camera over on the event loop.
            ok = not concurrent.cancelled() and concurrent.exception() is None
            elapsed_s = time.monotonic() - started

            def _on_loop() -> None:
                if ok:
                    self._durations_s.setdefault(kind, deque(maxlen=20)).append(elapsed_s)
                self._running = None
                self._release()

            try:
                loop.call_soon_threadsafe(_on_loop)
            except RuntimeError:  # the loop has closed (shutdown): nobody waits any more
                self._running = None

        concurrent.add_done_callback(_free_camera)
        future = asyncio.wrap_future(concurrent)
        try:
            # shield: a timeout answers the caller but must not pretend the worker stopped.
            return await asyncio.wait_for(asyncio.shield(future), timeout=timeout_s)
        except asyncio.TimeoutError as exc:
            if ticket.give_up("timed_out"):
                raise CheckTimeoutError(timeout_s) from exc
            return await asyncio.shield(future)  # it settled just in time: its answer stands
        except asyncio.CancelledError:
            ticket.give_up("abandoned")
            raise

    def close(self, wait_s: float = 0.0) -> None:
        """Stop the worker; with ``wait_s`` give a running check that long to finish (and be
        audited) first."""
        self._closing = True
        if wait_s > 0:
            done = threading.Event()
            self._worker.submit(done.set)
            done.wait(wait_s)
        self._worker.shutdown(wait=False, cancel_futures=True)
