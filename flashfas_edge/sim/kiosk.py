"""The simulated kiosk: one live scene shared by a virtual camera and a virtual flash surface.

The flash driver (``kiosk_flash.py``) commands display states; each command
changes the light ``latency`` later (display pipeline + panel response, docs/ARCHITECTURE.md §1
step 2). The
camera (``kiosk_camera.py``) renders frames on the host monotonic clock, each
row integrating the display light over its own exposure window (rolling shutter), from the
scene's basis images (ambient, flash response, replay emission), so it keeps up with 30 fps.

Test and demo hooks choose the subject (live / print / replay / mask, ambient scenario, seed) and
provoke every quality gate: no face, two faces, too far / too near, strong motion, too dark /
overexposed, very strong ambient (low flash SNR), a flash that never shows, and a camera stream
replaced by an earlier recording (challenge mismatch).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from flashfas_edge.flash.base import FlashState
from flashfas_edge.sim.device import PROFILES, DeviceProfile
from flashfas_edge.sim.frame_composer import warp_frame, warp_points
from flashfas_edge.sim.scene import (
    Scene,
    SceneRequest,
    build_scene,
    face_mean_radiance,
    state_light,
)
from flashfas_edge.sim.schedule import IDLE_STATE
from flashfas_edge.sim.sensor import SensorState, develop, manual_sensor, settle_exposure

_SUBSAMPLES = 8


@dataclass(frozen=True)
class Subject:
    """What stands in front of the simulated kiosk, and how the conditions are disturbed."""

    attack_type: str = "live"
    scenario: str = "office"
    seed: int = 0
    identity: int | None = None  # default: derived from seed
    faces: int = 1  # 2: a second person behind the first
    face_present: bool = True
    distance_range_m: tuple[float, float] = (0.3, 0.5)
    motion_px: float = 0.2  # random-walk step per frame (at 640 px width)
    exposure_scale: float = 1.0  # <1 underexposed, >1 overexposed (after exposure locked)
    ambient_scale: float = 1.0  # >1: very strong ambient; exposure re-locks → low flash SNR
    flash_visible: bool = True  # False: the driver reports onsets but the light never changes
    # Room light flicker: mains frequency (the light ripples at twice it) and, when set, its
    # relative amplitude instead of the scenario's drawn one (calibration's flicker detection).
    mains_hz: float = 50.0
    flicker: float | None = None

    # named presets for the quality gates
    @staticmethod
    def preset(name: str, **kw: Any) -> Subject:
        presets: dict[str, dict[str, Any]] = {
            "live": {},
            "no_face": {"face_present": False},
            "two_faces": {"faces": 2},
            "too_far": {"distance_range_m": (1.6, 1.8)},
            "too_near": {"distance_range_m": (0.1, 0.11)},
            # well past the alignment budget within one ~0.3 s sequence, every time (a 12 px walk
            # stayed inside it on some draws)
            "strong_motion": {"motion_px": 30.0},
            "too_dark": {"exposure_scale": 0.004},
            "overexposed": {"exposure_scale": 12.0},
            "strong_ambient": {"scenario": "sunlight", "ambient_scale": 40.0},
            "flash_never_shows": {"flash_visible": False},
        }
        if name not in presets:
            raise ValueError(f"unknown subject preset {name!r}; known: {sorted(presets)}")
        return Subject(**{**presets[name], **kw})


class SimKiosk:
    """Shared state of the simulated kiosk (thread-safe)."""

    def __init__(self, profile: DeviceProfile = PROFILES[1], width: int = 640, height: int = 480,
                 seed: int = 0, subject: Subject | None = None, physics: str = "rgb",
                 face_shape: str = "scanned"):
        self.profile = profile
        self.face_shape = face_shape
        self.width = width
        self.height = height
        self.physics = physics  # the renderer's light transport (SceneRequest.physics)
        self.readout_us = int(round(profile.readout_us * height / 480))
        self.exposure_us = int(profile.exposure_us)
        self.latency_us = int(profile.latency_us)  # what calibration would measure
        self._rng = np.random.default_rng(np.random.SeedSequence([seed, 23]))
        self._lock = threading.Lock()
        # display light timeline: change times (µs, when the light starts to change) + colours
        self._edges_us: list[float] = [0.0]
        self._colours: list[np.ndarray] = [self._state_colour(IDLE_STATE)]
        self._stream: list[tuple[np.ndarray, np.ndarray | None]] | None = None
        self._stream_pos = 0
        # An injected recording restarts at its first frame when a new sequence's first light
        # reaches the camera: the attacker who watches the kiosk and aligns the replay.
        self._showing_idle = True
        self._stream_restart_us: float | None = None
        self._walk = np.zeros(4)  # tx, ty, rot_deg, log scale
        # A manual sensor setting held across subjects (calibration locked it); None: auto
        # exposure settles on each new subject, then locks.
        self._manual: SensorState | None = None
        self.last_other_faces: list[np.ndarray] = []
        self.scene: Scene
        self.subject: Subject
        self._sensor: SensorState
        self.set_subject(subject or Subject())

    # --- subject and hooks ------------------------------------------------------------------
    def set_subject(self, subject: Subject) -> None:
        """Render the new subject's scene (≈0.1–0.5 s) and swap it in atomically."""
        identity = subject.identity if subject.identity is not None else 1000 + subject.seed
        req = SceneRequest(subject.attack_type, subject.scenario, self.profile, identity,
                           subject.seed, width=self.width, height=self.height,
                           distance_range_m=subject.distance_range_m, faces=subject.faces,
                           face_present=subject.face_present, physics=self.physics,
                           face_shape=self.face_shape)
        scene = build_scene(req)
        if subject.ambient_scale != 1.0:
            scene = replace(scene, ambient=scene.ambient * np.float32(subject.ambient_scale),
                            face_radiance=scene.face_radiance
                            + face_mean_radiance(scene.ambient, scene.landmarks)
                            * (subject.ambient_scale - 1))
        light = scene.ambient_light
        if subject.mains_hz != light.mains_hz or subject.flicker is not None:
            flicker = light.flicker if subject.flicker is None else subject.flicker
            scene = replace(scene, ambient_light=replace(light, mains_hz=subject.mains_hz,
                                                         flicker=flicker))
        sensor = self._manual or settle_exposure(self.profile, scene.face_radiance)
        sensor = replace(sensor, scale=sensor.scale * subject.exposure_scale)
        with self._lock:
            self.scene, self.subject, self._sensor = scene, subject, sensor
            self.exposure_us = sensor.exposure_us
            self._walk[:] = 0

    def lock_sensor(self, exposure_us: int, analog_gain: float,
                    wb_gains: tuple[float, float, float] | None) -> SensorState:
        """Hold a manual exposure, gain and white balance from now on, for every subject."""
        manual = manual_sensor(self.profile, exposure_us, analog_gain, wb_gains)
        with self._lock:
            self._manual = manual
            self._sensor = replace(manual, scale=manual.scale * self.subject.exposure_scale)
            self.exposure_us = manual.exposure_us
        return manual

    def sensor_state(self) -> SensorState:
        with self._lock:
            return self._sensor

    def inject_stream(self, images: list[np.ndarray] | None,
                      landmarks: list[np.ndarray | None] | None = None) -> None:
        """Replace the camera's view by these frames, looped (a replayed recording); None ends."""
        with self._lock:
            if images is None:
                self._stream = None
            else:
                lms = landmarks or [None] * len(images)
                self._stream = [(np.asarray(im, np.uint8), lm) for im, lm in
                                zip(images, lms, strict=True)]
            self._stream_pos = 0
            self._stream_restart_us = None

    # --- display light (flash driver side) ------------------------------------------------------
    def _state_colour(self, state: FlashState) -> np.ndarray:
        return state_light(self.physics, self.profile, np.asarray([state.rgb]),
                           np.asarray([state.intensity]))[0]

    def command_display(self, state: FlashState, t_command_us: int) -> None:
        """Show ``state`` from ``t_command_us`` on; the light follows after the latency."""
        self._command(state, t_command_us, idle=False)

    def _command(self, state: FlashState, t_command_us: int, idle: bool) -> None:
        with self._lock:
            if self._showing_idle and not idle and self._stream is not None:
                self._stream_restart_us = float(t_command_us + self.latency_us)
            self._showing_idle = idle
            if not self.subject.flash_visible:
                return
            jitter = self._rng.uniform(-self.profile.latency_jitter_us,
                                       self.profile.latency_jitter_us)
            t_light = t_command_us + self.latency_us + jitter
            # keep the timeline short: drop edges long past
            horizon = t_light - 5_000_000
            while len(self._edges_us) > 2 and self._edges_us[1] < horizon:
                self._edges_us.pop(0)
                self._colours.pop(0)
            self._edges_us.append(float(t_light))
            self._colours.append(self._state_colour(state))

    def command_idle(self, t_command_us: int) -> None:
        self._command(IDLE_STATE, t_command_us, idle=True)

    def _display_rows(self, row_times: np.ndarray) -> np.ndarray:
        """[H, 3] mean display colour over each row's exposure window."""
        edges = np.asarray(self._edges_us)
        cols = np.stack(self._colours)
        rise = max(self.profile.display_rise_us, 1)
        t = row_times[:, None] + (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES * self.exposure_us
        light = np.broadcast_to(cols[0], t.shape + (3,)).astype(np.float64).copy()
        for k in range(1, len(edges)):
            if edges[k] > t.max():
                break
            prog = np.clip((t - edges[k]) / rise, 0.0, 1.0)[..., None]
            light += prog * (cols[k] - cols[k - 1])
        return light.mean(axis=1).astype(np.float32)

    # --- camera side ------------------------------------------------------------------------
    def render_frame(self, t_start_us: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The camera frame whose first row starts exposing at ``t_start_us`` (+ landmarks of the
        main face, None without one); ``last_other_faces`` then holds any other faces' points."""
        with self._lock:
            if self._stream is not None:
                restart = self._stream_restart_us
                if restart is not None and t_start_us >= restart:
                    self._stream_pos, self._stream_restart_us = 0, None
                img, lm = self._stream[self._stream_pos % len(self._stream)]
                self._stream_pos += 1
                return img.copy(), (None if lm is None else np.array(lm, np.float32))
            scene, subject, sensor = self.scene, self.subject, self._sensor
            rows = t_start_us + self.readout_us * np.arange(self.height) / max(self.height - 1, 1)
            display = self._display_rows(rows)
            step = subject.motion_px * self.width / 640.0
            self._walk += self._rng.normal(0, 1, 4) * np.array([step, step, 0.1, 0.002])
            self._walk[:2] *= 0.97  # a person stays roughly in place
            walk = self._walk.copy()
            rng = np.random.default_rng(self._rng.integers(2**63))
        t_s = (rows + self.exposure_us / 2) * 1e-6
        # slow drift (clouds, people moving) and mains flicker of the room light (twice mains)
        light = scene.ambient_light
        amb_rows = (1 + 0.02 * np.sin(2 * np.pi * t_s / 7.0) + light.flicker
                    * np.sin(2 * np.pi * light.flicker_hz * t_s + light.flicker_phase))
        lin = scene.ambient * amb_rows.astype(np.float32)[:, None, None] + scene.flash_image(
            display)
        if scene.replay is not None:
            em = scene.replay.emission_factor(rows, sensor.exposure_us).astype(np.float32)
            lin += scene.emission * em[:, None, None]
        lm = scene.landmarks
        if np.all(np.isfinite(lm)):
            import cv2

            c = lm.mean(axis=0)
            m = cv2.getRotationMatrix2D((float(c[0]), float(c[1])), float(walk[2]),
                                        float(np.exp(walk[3])))
            m[:, 2] += walk[:2]
            lin = warp_frame(lin, m)
            lm_out: np.ndarray | None = warp_points(lm, m)
            self.last_other_faces = [warp_points(o, m) for o in scene.other_faces]
        else:
            lm_out = None
            self.last_other_faces = []
        return develop(lin, self.profile, sensor, rng), lm_out
