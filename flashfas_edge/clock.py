"""The one clock of a liveness check: host monotonic time in whole microseconds.

Flash onsets (``FlashPlayback.onsets_us``), frame exposure starts (``Frame.t_start_us``), the
calibrated latency and the watchdog's frame age are all compared with one another, so every one
of them is read from this function (docs/ARCHITECTURE.md §3). ``CLOCK_MONOTONIC`` never jumps
with wall-clock changes and is what V4L2 stamps its buffers with.
"""

from __future__ import annotations

import time


def monotonic_us() -> int:
    """Host monotonic time in µs (``time.monotonic_ns() // 1000``)."""
    return time.monotonic_ns() // 1000


def sleep_until_us(t_us: int) -> None:
    """Sleep until ``monotonic_us()`` reaches ``t_us``: coarse first, the last 20 ms in short
    steps (a flash state starts within ~2 ms of its time on a loaded machine)."""
    while True:
        left = (t_us - monotonic_us()) / 1e6
        if left <= 0:
            return
        time.sleep(min(left, 0.005) if left < 0.02 else left - 0.01)
