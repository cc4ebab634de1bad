"""Frames from a scene's basis images: per-row light weights (rolling shutter, exposure, display
latency and rise time), ambient drift/flicker, replay PWM, small head/hand motion, then the sensor.
"""

from __future__ import annotations

import cv2
import numpy as np

from flashfas_edge.flash.base import FlashState
from flashfas_edge.sim.scene import Scene
from flashfas_edge.sim.sensor import SensorState, develop, settle_exposure
from flashfas_edge.sim.timing import row_state_weights, row_windows


class FrameComposer:
    def __init__(self, scene: Scene, readout_us: int, sensor: SensorState | None = None):
        self.scene = scene
        self.profile = scene.request.profile
        self.readout_us = readout_us
        self.sensor: SensorState = sensor or settle_exposure(self.profile, scene.face_radiance)
        self.exposure_us = self.sensor.exposure_us

    def state_colours(self, states: tuple[FlashState, ...], idle: FlashState) -> np.ndarray:
        """[N0 + 1, 3] camera-channel display light of each state (last = idle)."""
        rgb = np.array([s.rgb for s in states] + [idle.rgb], np.float32)
        inten = np.array([s.intensity for s in states] + [idle.intensity], np.float32)
        return self.scene.state_light(rgb, inten)

    def linear_frame(self, start_us: float, t_ref_us: float, colours: np.ndarray,
                     onsets_light_us: np.ndarray, state_duration_us: int,
                     flash_scale: float = 1.0) -> np.ndarray:
        """float32 [H, W, 3] radiance integrated over each row's exposure (before the sensor)."""
        sc = self.scene
        h = sc.ambient.shape[0]
        w_rows = row_state_weights(start_us, h, self.exposure_us, self.readout_us,
                                   onsets_light_us, state_duration_us,
                                   self.profile.display_rise_us)  # [H, N0 + 1]
        flash_rows = (w_rows @ colours).astype(np.float32) * np.float32(flash_scale)  # [H, 3]
        t = row_windows(start_us, h, self.exposure_us, self.readout_us) - t_ref_us
        amb_rows = sc.ambient_light.factor(t).mean(axis=1).astype(np.float32)  # [H]
        out = sc.ambient * amb_rows[:, None, None] + sc.flash_image(flash_rows)
        if sc.replay is not None:
            rows = start_us + self.readout_us * np.arange(h) / max(h - 1, 1)
            em_rows = sc.replay.emission_factor(rows, self.exposure_us).astype(np.float32)
            out += sc.emission * em_rows[:, None, None]
        return out

    def develop(self, linear: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return develop(linear, self.profile, self.sensor, rng)


def shake_path(rng: np.random.Generator, n: int, step_px: float, centre: np.ndarray,
               steps_between: np.ndarray) -> list[np.ndarray]:
    """Per-frame 2×3 similarity warps of a slowly wandering subject (random walk)."""
    warps = []
    tx = ty = rot = 0.0
    scale = 1.0
    for k in range(n):
        s = float(np.sqrt(max(steps_between[k], 0.0)))
        tx += rng.normal(0, step_px) * s
        ty += rng.normal(0, step_px) * s
        rot += rng.normal(0, 0.08) * s
        scale *= 1 + rng.normal(0, 0.0015) * s
        m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), rot, scale)
        m[:, 2] += np.array([tx, ty])
        warps.append(m)
    return warps


def warp_frame(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def warp_points(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    return (pts @ m[:, :2].T + m[:, 2]).astype(np.float32)
