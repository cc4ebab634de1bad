"""The ring buffer behind every Camera: the ``frames_between`` contract of capture/base.py.

A capture thread appends frames and reports its failure; callers wait for a complete window.
One implementation, shared by the V4L2 and the simulated camera (``RingCamera``), so both keep the
same promise.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

from flashfas_edge.capture.base import CameraError, Frame


class FrameRing:
    def __init__(self, capacity: int, name: str):
        self.name = name  # "camera /dev/video0", used in error messages
        self._frames: collections.deque[Frame] = collections.deque(maxlen=capacity)
        self._cond = threading.Condition()
        self._error: str | None = None

    def reset(self) -> None:
        """Empty the buffer and forget a previous failure (the camera is starting again)."""
        with self._cond:
            self._frames.clear()
            self._error = None

    def append(self, frame: Frame) -> bool:
        """Add the newest frame; a frame not later than the newest is refused (False)."""
        with self._cond:
            if self._frames and frame.t_start_us <= self._frames[-1].t_start_us:
                return False  # a stamp going backwards would break the window order
            self._frames.append(frame)
            self._cond.notify_all()
            return True

    def fail(self, message: str) -> None:
        """The capture thread stopped for good: waiting callers get a CameraError."""
        with self._cond:
            self._error = message
            self._cond.notify_all()

    def wake(self) -> None:
        """Let waiting callers re-check (the capture thread ended)."""
        with self._cond:
            self._cond.notify_all()

    def frames_between(self, t0_us: int, t1_us: int, timeout_s: float,
                       running: Callable[[], bool],
                       complete_at_us: int | None = None) -> list[Frame]:
        """Frames starting in [t0_us, t1_us) once a frame at or after ``complete_at_us``
        (default t1_us) has arrived."""
        deadline = time.monotonic() + timeout_s
        ready_us = t1_us if complete_at_us is None else min(complete_at_us, t1_us)
        with self._cond:
            while True:
                if self._frames and self._frames[-1].t_start_us >= ready_us:
                    return [f for f in self._frames if t0_us <= f.t_start_us < t1_us]
                if self._error is not None:
                    raise CameraError(f"{self.name}: {self._error}")
                if not running():
                    raise CameraError(f"{self.name} is not running (call start())")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CameraError(f"{self.name}: no frame starting at or after "
                                      f"t={ready_us} µs within {timeout_s} s")
                self._cond.wait(left)

    def last_start_us(self) -> int | None:
        with self._cond:
            return self._frames[-1].t_start_us if self._frames else None


class RingCamera:
    """The reading half of a Camera whose capture thread fills a ``FrameRing``."""

    _ring: FrameRing
    _thread: threading.Thread | None = None

    def frames_between(self, t0_us: int, t1_us: int, timeout_s: float,
                       complete_at_us: int | None = None) -> list[Frame]:
        return self._ring.frames_between(t0_us, t1_us, timeout_s, self._running,
                                         complete_at_us)

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def last_frame_time_us(self) -> int | None:
        return self._ring.last_start_us()
