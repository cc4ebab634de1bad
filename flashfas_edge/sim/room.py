"""The room behind the subject: a textured wall with furniture-like patches and, for backlight
scenes, a bright window. Every class of subject stands in front of the same kind of room, so the
background cannot tell live from spoof.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flashfas_edge.sim.gbuffer import BACKGROUND, GBuffer
from flashfas_edge.sim.raycast import Pose, intersect_plane_z0
from flashfas_edge.sim.texture import sample


@dataclass
class Room:
    pose: Pose
    albedo_tex: np.ndarray  # float32 [256, 256, 3]
    window_tex: np.ndarray  # float32 [256, 256] 0..1 window mask (emissive in backlight scenes)
    extent_m: float

    @staticmethod
    def draw(rng: np.random.Generator, window: bool) -> Room:
        dist = rng.uniform(1.0, 3.0)
        pose = Pose.facing(rng.uniform(-25, 25), rng.uniform(-8, 8), 0.0,
                           np.array([rng.uniform(-0.3, 0.3), 0.0, dist]))
        size = 256
        base = rng.uniform(0.15, 0.85, 3).astype(np.float32)
        tex: np.ndarray = np.ones((size, size, 3), np.float32) * base
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        tex *= (1 + 0.3 * (xx - 0.5) * rng.uniform(-1, 1) + 0.3 * (yy - 0.5) * rng.uniform(-1, 1))[
            ..., None]
        for _ in range(int(rng.integers(2, 9))):
            x0, y0 = rng.integers(0, size, 2)
            w, h = rng.integers(10, 120, 2)
            colour = tuple(float(c) for c in rng.uniform(0.03, 0.9, 3))
            cv2.rectangle(tex, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), colour, -1)
        tex = cv2.GaussianBlur(tex, (0, 0), rng.uniform(0.5, 3.0))
        win: np.ndarray = np.zeros((size, size), np.float32)
        if window:
            x0 = rng.integers(40, 140)
            y0 = rng.integers(20, 100)
            cv2.rectangle(win, (int(x0), int(y0)), (int(x0 + rng.integers(60, 120)),
                                                    int(y0 + rng.integers(80, 150))), 1.0, -1)
            win = cv2.GaussianBlur(win, (0, 0), 2.0)
        return Room(pose, np.clip(tex, 0.01, 0.95), win, extent_m=4.0 * dist)

    def hit(self, rays: np.ndarray) -> np.ndarray:
        o, d = self.pose.to_local(rays)
        return intersect_plane_z0(o, d)

    def fill(self, gb: GBuffer, idx: np.ndarray, rays: np.ndarray, t: np.ndarray,
             window_radiance: float) -> None:
        o, d = self.pose.to_local(rays)
        p = o + d * np.where(np.isfinite(t), t, 50.0)[:, None]
        u = p[:, 0] / self.extent_m + 0.5
        v = p[:, 1] / self.extent_m + 0.5
        gb.position[idx] = self.pose.to_camera(p)
        gb.normal[idx] = np.array([0, 0, 1], np.float32) @ self.pose.rot.T.astype(np.float32)
        gb.albedo[idx] = sample(self.albedo_tex, u, v)
        gb.spec[idx], gb.shininess[idx], gb.obj[idx] = 0.01, 5.0, BACKGROUND
        gb.depth_z[idx] = gb.position[idx][:, 2]
        if window_radiance > 0:
            gb.ambient_emission[idx] = window_radiance * sample(self.window_tex, u, v)[:, None]
