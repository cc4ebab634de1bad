"""Lock-out after repeated challenge mismatches: the brute-force brake on replayed recordings.

A recording of an earlier check, aligned with a fresh challenge, passes verification about once
in 1 200 tries with the default challenge (docs/SAFETY.md §4). A genuine user essentially never
causes ``challenge_mismatch``, an attacker replaying recordings causes it almost every time, so
after ``max_mismatches`` within ``window_s`` the daemon answers ``retry``/``challenge_lockout``
for a cooldown without running a check. Each lock-out that follows another within
``escalation_window_s`` lasts ``escalation`` times longer, up to ``max_cooldown_s``: a fixed
cooldown would still allow an attacker about one try a minute (≈ 1 400 a day); doubling from
5 minutes up to 4 hours allows about 60 a day. A live face does not reset the escalation (an
attacker could show their own face between replays); a quiet ``escalation_window_s`` does. Every
lock-out is in the audit log.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable


class ChallengeLockout:
    def __init__(self, max_mismatches: int, window_s: float, cooldown_s: float,
                 clock: Callable[[], float] = time.monotonic, escalation: float = 1.0,
                 max_cooldown_s: float | None = None, escalation_window_s: float = 86_400.0):
        if max_mismatches < 1 or window_s <= 0 or cooldown_s < 0:
            raise ValueError("lock-out needs max_mismatches ≥ 1, window_s > 0, cooldown_s ≥ 0")
        if escalation < 1 or escalation_window_s <= 0:
            raise ValueError("lock-out escalation must be ≥ 1, its window > 0")
        if max_cooldown_s is not None and max_cooldown_s < cooldown_s:
            raise ValueError("max_cooldown_s must be at least cooldown_s")
        self.max_mismatches = max_mismatches
        self.window_s = window_s
        self.cooldown_s = cooldown_s
        self.escalation = escalation
        self.max_cooldown_s = cooldown_s if max_cooldown_s is None else max_cooldown_s
        self.escalation_window_s = escalation_window_s
        self._clock = clock
        self._mismatches: collections.deque[float] = collections.deque()
        self._locked_until = 0.0
        self._lockouts = 0  # lock-outs in a row, each within escalation_window_s of the last
        self._lock = threading.Lock()

    def remaining_s(self) -> float:
        """Seconds the lock-out still lasts; 0 when checks may run."""
        with self._lock:
            return max(0.0, self._locked_until - self._clock())

    def next_cooldown_s(self) -> float:
        """How long the next lock-out would last, were it to start now."""
        with self._lock:
            return self._cooldown(self._repeats(self._clock()))

    def _repeats(self, now: float) -> int:
        """Lock-outs in a row so far: none once a quiet escalation window has passed."""
        return self._lockouts if now - self._locked_until <= self.escalation_window_s else 0

    def _cooldown(self, repeats: int) -> float:
        return min(self.cooldown_s * self.escalation ** repeats, self.max_cooldown_s)

    def record_mismatch(self) -> None:
        with self._lock:
            now = self._clock()
            self._mismatches.append(now)
            while self._mismatches and self._mismatches[0] < now - self.window_s:
                self._mismatches.popleft()
            if len(self._mismatches) >= self.max_mismatches:
                repeats = self._repeats(now)
                self._locked_until = now + self._cooldown(repeats)
                self._lockouts = repeats + 1
                self._mismatches.clear()
