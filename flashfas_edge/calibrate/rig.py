"""The calibration rig: the kiosk's camera and flash surface driven directly through their
protocols (``Camera``, ``FlashDriver``), every sequence through the flash-safety checks first.

Calibration plays long, simple sequences (a dark/bright toggle, a monotone ramp of levels, one
colour at a time) rather than liveness challenges. Each one is checked on its own against WCAG
2.3.1 (at most three flashes in any one second, counted with the idle screen before and after it)
and spaced from the previous one by the same :class:`FlashSafetyGovernor` the pipeline uses, so a
toggle repeated many times never exceeds the limit: an unsafe sequence is not played (fail closed,
docs/SAFETY.md).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashfas_edge.capture.base import Camera, CameraError, CameraInfo, Frame
from flashfas_edge.clock import monotonic_us
from flashfas_edge.face.base import LandmarkProvider
from flashfas_edge.flash.base import (
    FlashDriver,
    FlashError,
    FlashPlayback,
    FlashSchedule,
    FlashState,
)
from flashfas_edge.flash.safety import (
    WCAG_MAX_FLASHES_PER_S,
    FlashSafetyGovernor,
    check_schedule,
)

WHITE = (1.0, 1.0, 1.0)
DARK = FlashState(WHITE, 0.0)
BRIGHT = FlashState(WHITE, 1.0)


class CalibrationError(RuntimeError):
    """Calibration cannot go on: the camera cannot be locked, no face, no flash seen...; the
    message says what to do."""


@dataclass(frozen=True)
class Recording:
    """One played sequence and the frames exposed while it played (µs, host monotonic).
    ``onsets_us`` holds one onset per *state* asked for (a split state: its first step's)."""

    playback: FlashPlayback
    frames: list[Frame]
    onsets_us: tuple[int, ...]

    def state_window_us(self, slot: int, latency_us: int) -> tuple[int, int]:
        """When slot ``slot``'s light was on the face: from its onset to the next one (or the
        end), both moved by the latency."""
        onsets = self.onsets_us
        end = onsets[slot + 1] if slot + 1 < len(onsets) else self.playback.end_us
        return onsets[slot] + latency_us, end + latency_us

    def frames_inside(self, slot: int, latency_us: int, settle_us: int) -> list[Frame]:
        """Frames whose every row was exposed wholly inside slot ``slot`` (after ``settle_us``
        for the surface's transition and the latency's uncertainty)."""
        t0, t1 = self.state_window_us(slot, latency_us)
        return [f for f in self.frames
                if f.t_start_us >= t0 + settle_us
                and f.t_start_us + f.readout_us + f.exposure_us <= t1 - settle_us]


# Surfaces cap one step's length (the LED panel's firmware: 250 ms, firmware_ctrl/PROTOCOL.md):
# a longer state is played as several steps of the same state (no luminance change between).
MAX_STEP_US = 200_000
# ... and a whole sequence's (the panel: 1 s); every calibration sequence stays within it.
MAX_SEQUENCE_US = 1_000_000


def schedule_of(states: Sequence[FlashState], durations_us: Sequence[int]) -> FlashSchedule:
    """A calibration sequence: these states for these durations (not a challenge), each state
    split into equal steps of at most ``MAX_STEP_US``."""
    if sum(durations_us) > MAX_SEQUENCE_US:
        raise ValueError(f"a calibration sequence is at most {MAX_SEQUENCE_US} µs")
    steps: list[FlashState] = []
    lengths: list[int] = []
    for state, duration in zip(states, durations_us, strict=True):
        parts = -(-duration // MAX_STEP_US)
        steps += [state] * parts
        lengths += [duration // parts + (1 if k < duration % parts else 0) for k in range(parts)]
    return FlashSchedule(states=tuple(steps), state_duration_us=min(lengths),
                         nonce=secrets.token_hex(16), durations_us=tuple(lengths))


class Rig:
    """Camera + flash + landmarks, started together; plays sequences within the flash limits."""

    def __init__(self, camera: Camera, flash: FlashDriver, landmarks: LandmarkProvider,
                 idle: FlashState | None = None,
                 max_flashes_per_s: int = WCAG_MAX_FLASHES_PER_S) -> None:
        self.camera = camera
        self.flash = flash
        self.landmarks = landmarks
        self.idle = idle  # None: the worst idle screen is assumed (safety)
        self.max_flashes_per_s = max_flashes_per_s
        self.governor = FlashSafetyGovernor(max_flashes_per_s, idle)
        self.played = 0  # sequences played (each one within the limits)

    def start(self, timeout_s: float = 10.0, flash_wait_s: float = 0.0) -> None:
        """Start camera and flash; ``flash_wait_s``: how long the flash's self-test may keep
        failing (a browser display waits for the kiosk page to connect)."""
        self.camera.start()
        deadline = time.monotonic() + timeout_s
        while self.camera.last_frame_time_us() is None:
            if time.monotonic() > deadline:
                raise CameraError(f"no frame within {timeout_s:.0f} s of start")
            time.sleep(0.02)
        self.flash.start()
        flash_deadline = time.monotonic() + flash_wait_s
        while True:
            try:
                self.flash.self_test()
                return
            except FlashError:
                if time.monotonic() >= flash_deadline:
                    raise
                time.sleep(0.25)

    def stop(self) -> None:
        for part in (self.flash, self.camera):
            part.stop()

    def info(self) -> CameraInfo:
        return self.camera.info()

    @property
    def frame_period_us(self) -> float:
        return 1e6 / self.info().fps

    def play(self, states: Sequence[FlashState], durations_us: Sequence[int],
             tail_us: int = 0) -> Recording:
        """Play one sequence once it fits the flash limits, then return the frames that started
        from its first onset until ``tail_us`` after its end."""
        schedule = schedule_of(states, durations_us)
        check_schedule(schedule, self.max_flashes_per_s, self.idle)  # UnsafeFlashError: not played
        start_us = self.governor.earliest_start_us(schedule, monotonic_us())
        wait_s = (start_us - monotonic_us()) / 1e6
        if wait_s > 0:
            time.sleep(wait_s)
        playback = self.flash.play(schedule, timeout_s=schedule.total_us / 1e6 + 2.0)
        self.governor.record(playback)
        self.played += 1
        frames = self.camera.frames_between(playback.onsets_us[0], playback.end_us + tail_us,
                                            timeout_s=2.0 + tail_us / 1e6)
        firsts, k = [], 0
        for duration in durations_us:
            firsts.append(playback.onsets_us[k])
            k += -(-duration // MAX_STEP_US)
        return Recording(playback, frames, tuple(firsts))

    def frames_for(self, duration_s: float) -> list[Frame]:
        """Frames of the next ``duration_s`` seconds with no flash played (ambient only)."""
        t0 = monotonic_us()
        return self.camera.frames_between(t0, t0 + int(duration_s * 1e6),
                                          timeout_s=duration_s + 2.0)

    def face_points(self, frames: Sequence[Frame]) -> np.ndarray:
        """float [5, 2]: the face's landmarks, the median over the frames where exactly one face
        was found; CalibrationError when none shows one."""
        found = []
        for frame in frames:
            faces = self.landmarks.detect(frame)
            if len(faces) == 1:
                found.append(faces[0].points)
        if not found:
            raise CalibrationError("no single face in view: ask someone to stand where users "
                                   "stand (or hold a face-sized grey card there) and run again")
        return np.median(np.stack(found), axis=0)
