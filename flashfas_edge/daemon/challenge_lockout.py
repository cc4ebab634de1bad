"""Lock-out after repeated challenge mismatches: the brute-force brake on replayed recordings.

With N0 = 5 white levels a recording of an earlier check matches a fresh random order 1 time in
5! = 120 (the challenge verification cannot tell it apart then). A genuine user essentially never
causes ``challenge_mismatch``, an attacker replaying recordings causes it almost every time, so
after ``max_mismatches`` within ``window_s`` the daemon answers ``retry``/``challenge_lockout``
for ``cooldown_s`` without running a check. That turns ~120 tries from minutes into hours, each
one in the audit log.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable


class ChallengeLockout:
    def __init__(self, max_mismatches: int, window_s: float, cooldown_s: float,
                 clock: Callable[[], float] = time.monotonic):
        if max_mismatches < 1 or window_s <= 0 or cooldown_s < 0:
            raise ValueError("lock-out needs max_mismatches ≥ 1, window_s > 0, cooldown_s ≥ 0")
        self.max_mismatches = max_mismatches
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._mismatches: collections.deque[float] = collections.deque()
        self._locked_until = 0.0
        self._lock = threading.Lock()

    def remaining_s(self) -> float:
        """Seconds the lock-out still lasts; 0 when checks may run."""
        with self._lock:
            return max(0.0, self._locked_until - self._clock())

    def record_mismatch(self) -> None:
        with self._lock:
            now = self._clock()
            self._mismatches.append(now)
            while self._mismatches and self._mismatches[0] < now - self.window_s:
                self._mismatches.popleft()
            if len(self._mismatches) >= self.max_mismatches:
                self._locked_until = now + self.cooldown_s
                self._mismatches.clear()
