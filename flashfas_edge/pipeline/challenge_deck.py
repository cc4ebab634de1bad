"""The next check's challenge, drawn between checks (docs/ARCHITECTURE.md §1 step 1).

Drawing a safe challenge is Python work: each candidate sequence's flashes are counted against
every idle screen it may meet (docs/SAFETY.md), and some candidates are drawn again. On a 2-core
kiosk that took 2–20 ms of the request's time, after the presence gate and before the flash. So
the next challenge is drawn in the background once a check has answered, after a short delay
that leaves the answer's way out alone, and the next check starts with it ready. Not while a
sequence plays: the flash thread must wake on time to command each state, and a thread busy in
Python can hold it back by a switch interval.

A challenge drawn ahead is the same draw made earlier: it stays inside the daemon until it is
played, it is taken once, and only by a check with the timing it was drawn for. Another timing,
a draw not finished yet, or one that failed, and the check draws anew on its own thread, as
before.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from flashfas_edge.flash.base import FlashSchedule
from flashfas_edge.pipeline.challenge import ChallengeTiming

log = logging.getLogger(__name__)


class ChallengeDeck:
    def __init__(self, draw: Callable[[ChallengeTiming], FlashSchedule]) -> None:
        self._draw = draw
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="challenge-draw")
        self._lock = threading.Lock()
        self._next: tuple[ChallengeTiming, Future[FlashSchedule]] | None = None
        self._closed = False

    def prepare(self, timing: ChallengeTiming, delay_s: float = 0.0) -> None:
        """Draw the next challenge for ``timing`` in the background, ``delay_s`` from now. One
        drawn (or being drawn) for the same timing and not failed is kept: a check that ended
        before its flash (presence said retry) took none. A closed deck draws nothing."""

        def draw() -> FlashSchedule:
            time.sleep(delay_s)
            return self._draw(timing)

        with self._lock:
            pending = self._next
            if self._closed or (pending is not None and pending[0] == timing
                                and not (pending[1].done() and pending[1].exception())):
                return
            self._next = (timing, self._executor.submit(draw))

    def take(self, timing: ChallengeTiming) -> FlashSchedule:
        """The challenge drawn ahead for ``timing``, or a fresh draw; each is handed out once."""
        with self._lock:
            pending, self._next = self._next, None
        if pending is not None and pending[0] == timing and pending[1].done():
            try:
                return pending[1].result()
            except Exception:  # an unsafe draw fails again below, on the check's own thread
                log.debug("the challenge drawn ahead failed; drawing anew", exc_info=True)
        return self._draw(timing)

    def close(self) -> None:
        with self._lock:
            self._closed, self._next = True, None
            self._executor.shutdown(wait=False, cancel_futures=True)
