"""Transparent wrappers that remember what one check captured and played.

They sit between the pipeline and the real (or simulated) camera and flash, so the daemon can keep
the frames of a check for the audit log (only when configured) and ``flashfas-edge record`` can
write kiosk sessions in the dataset format, without the pipeline knowing.
"""

from __future__ import annotations

import threading

import numpy as np

from flashfas_edge.capture.base import Camera, CameraInfo, Frame
from flashfas_edge.data.session import Session
from flashfas_edge.flash.base import (
    FlashDriver,
    FlashPlayback,
    FlashSchedule,
    FlashState,
    OnsetGrid,
)


class RecordingCamera:
    def __init__(self, camera: Camera) -> None:
        self.inner = camera
        self._lock = threading.Lock()
        self._frames: dict[int, Frame] = {}

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> None:
        self.inner.stop()

    def info(self) -> CameraInfo:
        return self.inner.info()

    def frames_between(self, t0_us: int, t1_us: int, timeout_s: float,
                       complete_at_us: int | None = None) -> list[Frame]:
        frames = self.inner.frames_between(t0_us, t1_us, timeout_s, complete_at_us)
        with self._lock:
            for frame in frames:
                self._frames[frame.index] = frame
        return frames

    def last_frame_time_us(self) -> int | None:
        return self.inner.last_frame_time_us()

    def take_frames(self) -> list[Frame]:
        """The frames handed to the pipeline since the last call, oldest first; clears them."""
        with self._lock:
            frames = [self._frames[i] for i in sorted(self._frames)]
            self._frames.clear()
        return frames


class RecordingFlash:
    def __init__(self, flash: FlashDriver) -> None:
        self.inner = flash
        self.last_playback: FlashPlayback | None = None

    def start(self) -> None:
        self.inner.start()

    def stop(self) -> None:
        self.inner.stop()

    def self_test(self) -> None:
        self.inner.self_test()

    def play(self, schedule: FlashSchedule, timeout_s: float,
             grid: OnsetGrid | None = None) -> FlashPlayback:
        self.last_playback = None
        playback = self.inner.play(schedule, timeout_s, grid)
        self.last_playback = playback
        return playback

    def supports_colour(self) -> bool:
        return self.inner.supports_colour()

    def holds_timing(self) -> bool:
        return self.inner.holds_timing()

    def idle_state(self) -> FlashState | None:
        return self.inner.idle_state()


class CheckRecording:
    """The recording pair the pipeline is given instead of the devices themselves; the daemon
    reads what the last check captured and played through it (``daemon.service.CheckRecorder``)."""

    def __init__(self, camera: Camera, flash: FlashDriver) -> None:
        self.camera = RecordingCamera(camera)
        self.flash = RecordingFlash(flash)

    def take_frames(self) -> list[Frame]:
        """The check's frames from its first flash onset on (what a session file holds); the
        frames the pipeline read before the flash to find a face are left out. All frames when
        nothing was played."""
        frames = self.camera.take_frames()
        playback = self.flash.last_playback
        if playback is None or not playback.onsets_us:
            return frames
        return [f for f in frames if f.t_start_us >= playback.onsets_us[0]]

    def last_playback(self) -> FlashPlayback | None:
        return self.flash.last_playback


class NothingRecordedError(RuntimeError):
    """The check ended before the flash played or frames arrived; there is no session to write."""


def session_from_capture(
    frames: list[Frame], playback: FlashPlayback | None, latency_us: int
) -> Session:
    """The dataset-format session of one check: every frame in the flash window + the schedule."""
    if playback is None or not frames:
        raise NothingRecordedError("no flash playback or no frames were captured")
    schedule = playback.schedule
    order = schedule.order or tuple(
        sorted(range(schedule.n0), key=lambda i: -schedule.states[i].intensity)
    )
    landmarks = None
    if all("landmarks" in f.meta for f in frames):
        landmarks = np.stack([np.asarray(f.meta["landmarks"], np.float32) for f in frames])
    return Session(
        frames=np.stack([f.image for f in frames]).astype(np.uint8),
        frame_times_us=np.array([f.t_start_us for f in frames], np.int64),
        exposure_us=int(frames[0].exposure_us),
        readout_us=int(frames[0].readout_us),
        flash_rgb=np.array([s.rgb for s in schedule.states], np.float32),
        flash_intensity=np.array([s.intensity for s in schedule.states], np.float32),
        flash_onsets_us=np.array(playback.onsets_us, np.int64),
        state_duration_us=int(schedule.state_duration_us),
        latency_us=int(latency_us),
        order=np.array(order, np.int64),
        nonce=schedule.nonce,
        landmarks=landmarks,
    )
