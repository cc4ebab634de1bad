"""A video-injection attack for the simulated kiosk: the camera's frames are replaced by the
frames of an earlier check, re-timed to the current request.

This is the attack the random challenge exists for (DESIGN.md §1 step 5): the injected faces are
real and their reflections are physically valid — but they follow the *earlier* challenge's
order, so verification answers ``spoof`` / ``challenge_mismatch``. Only the sim kiosk arms it
(``PUT /v1/sim/scene {"scene": "injected_replay"}``); a real kiosk has no such switch.
"""

from __future__ import annotations

import dataclasses
import threading

from flashfas_edge.capture.base import Camera, CameraError, CameraInfo, Frame
from flashfas_edge.flash.base import FlashPlayback


@dataclasses.dataclass(frozen=True)
class Recording:
    frames: tuple[Frame, ...]
    window_start_us: int  # the earlier check's capture window start (first onset + latency)

    @classmethod
    def of_check(cls, frames: list[Frame], playback: FlashPlayback, latency_us: int) -> Recording:
        return cls(tuple(frames), int(playback.onsets_us[0]) + latency_us)


class InjectedStreamCamera:
    def __init__(self, camera: Camera) -> None:
        self.inner = camera
        self._lock = threading.Lock()
        self._recording: Recording | None = None

    def inject(self, recording: Recording | None) -> None:
        """Replace the live stream by ``recording`` for every following check (None: stop)."""
        if recording is not None and not recording.frames:
            raise CameraError("an injected recording needs frames")
        with self._lock:
            self._recording = recording

    @property
    def injecting(self) -> bool:
        return self._recording is not None

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> None:
        self.inner.stop()

    def info(self) -> CameraInfo:
        return self.inner.info()

    def last_frame_time_us(self) -> int | None:
        return self.inner.last_frame_time_us()

    def frames_between(self, t0_us: int, t1_us: int, timeout_s: float) -> list[Frame]:
        live = self.inner.frames_between(t0_us, t1_us, timeout_s)  # keeps real-time pacing
        with self._lock:
            recording = self._recording
        if recording is None:
            return live
        # The attacker aligns the old recording to the new flash perfectly (same offset from the
        # first onset as before) — the best a replay can do without knowing the new order.
        shift_us = t0_us - recording.window_start_us
        injected = []
        base_index = live[0].index if live else 0
        for k, frame in enumerate(recording.frames):
            t_us = frame.t_start_us + shift_us
            if t0_us <= t_us < t1_us:
                injected.append(dataclasses.replace(frame, index=base_index + k, t_start_us=t_us))
        return injected

    def __getattr__(self, name: str):
        return getattr(self.inner, name)
