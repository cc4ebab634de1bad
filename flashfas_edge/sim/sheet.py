"""A flat or bent rectangle (paper, a phone/tablet/monitor front) held in front of the camera.

Local frame: x across, y down, z towards the camera; the surface is z = bend · x² (a sheet bent
about its vertical axis), so a ray hit is one quadratic per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim.raycast import Pinhole, Pose


@dataclass
class Sheet:
    pose: Pose
    width_m: float
    height_m: float
    bend_per_m: float  # curvature term of z = bend · x² (0 = flat)

    def local_hit(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(t [N] with +inf outside the rectangle, local points [N, 3])."""
        o, d = self.pose.to_local(rays)
        k = np.float32(self.bend_per_m)
        if abs(self.bend_per_m) < 1e-6:
            with np.errstate(divide="ignore", invalid="ignore"):
                t = -o[2] / d[:, 2]
        else:
            qa = k * d[:, 0] ** 2
            qb = 2 * k * o[0] * d[:, 0] - d[:, 2]
            qc = k * o[0] ** 2 - o[2]
            disc = qb * qb - 4 * qa * qc
            sq = np.sqrt(np.maximum(disc, 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                t1 = (-qb - sq) / (2 * qa)
                t2 = (-qb + sq) / (2 * qa)
            t1 = np.where(t1 > 1e-4, t1, np.inf)
            t2 = np.where(t2 > 1e-4, t2, np.inf)
            t = np.where(disc >= 0, np.minimum(t1, t2), np.inf)
        t = np.where(np.isfinite(t) & (t > 1e-4), t, np.inf).astype(np.float32)
        p = o + d * np.where(np.isfinite(t), t, 0.0)[:, None]
        inside = (np.abs(p[:, 0]) <= self.width_m / 2) & (np.abs(p[:, 1]) <= self.height_m / 2)
        return np.where(inside, t, np.inf).astype(np.float32), p

    def local_normal(self, p_local: np.ndarray) -> np.ndarray:
        n = np.stack([-2 * self.bend_per_m * p_local[:, 0], np.zeros(len(p_local)),
                      np.ones(len(p_local))], axis=1).astype(np.float32)
        return n / np.linalg.norm(n, axis=1, keepdims=True)

    def local_point(self, x_m: np.ndarray, y_m: np.ndarray) -> np.ndarray:
        return np.stack([x_m, y_m, self.bend_per_m * x_m**2], axis=-1)

    def project_local(self, cam: Pinhole, x_m: np.ndarray, y_m: np.ndarray) -> np.ndarray:
        return cam.project(self.pose.to_camera(self.local_point(x_m, y_m)))
