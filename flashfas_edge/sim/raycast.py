"""Analytic ray casting for the scene: pinhole rays, ellipsoids and planes in camera coordinates.

Camera frame (metres): origin at the pinhole, x to the image right, y to the image bottom, z out
of the lens towards the subject. Every primitive is analytic, so a whole 640×480 frame is a few
vectorised numpy operations, not a mesh rasteriser (docs/ARCHITECTURE.md §8: numpy/OpenCV, no GPU).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pinhole:
    width: int
    height: int
    focal_px: float
    cx: float
    cy: float

    @staticmethod
    def from_hfov(width: int, height: int, hfov_deg: float) -> Pinhole:
        focal = 0.5 * width / np.tan(np.radians(hfov_deg) / 2.0)
        return Pinhole(width, height, float(focal), (width - 1) / 2.0, (height - 1) / 2.0)

    def rays(self) -> np.ndarray:
        """float32 [H*W, 3] unit ray directions, row-major (cached; do not modify)."""
        return _rays(self.width, self.height, self.focal_px, self.cx, self.cy)

    def _rays_uncached(self) -> np.ndarray:
        ys, xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
        d = np.stack(
            [(xs - self.cx) / self.focal_px, (ys - self.cy) / self.focal_px, np.ones_like(xs)],
            axis=-1,
        ).reshape(-1, 3)
        return d / np.linalg.norm(d, axis=1, keepdims=True)

    def project(self, points: np.ndarray) -> np.ndarray:
        """[..., 3] camera points → [..., 2] pixel coordinates (x, y)."""
        z = points[..., 2:3]
        return np.concatenate(
            [points[..., 0:1] / z * self.focal_px + self.cx,
             points[..., 1:2] / z * self.focal_px + self.cy],
            axis=-1,
        )


@functools.lru_cache(maxsize=4)
def _rays(width: int, height: int, focal_px: float, cx: float, cy: float) -> np.ndarray:
    r = Pinhole(width, height, focal_px, cx, cy)._rays_uncached()
    r.setflags(write=False)
    return r


def rays_near(rays: np.ndarray, centre: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the rays that can hit a sphere (a cheap cull before exact intersection)."""
    dist = float(np.linalg.norm(centre))
    if dist <= radius:
        return np.arange(rays.shape[0])
    cos_max = np.sqrt(1.0 - (radius / dist) ** 2)
    return np.nonzero(rays @ (centre / dist).astype(np.float32) >= cos_max)[0]


def rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Rotation (float64 3×3) of a local frame: yaw about y, pitch about x, roll about z."""
    y, p, r = np.radians([yaw_deg, pitch_deg, roll_deg])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


# Subject-local frames face the camera: local +z points at the lens, i.e. camera −z.
FACING_CAMERA = np.diag([1.0, 1.0, -1.0])


@dataclass(frozen=True)
class Pose:
    """camera_point = rot @ local_point + centre (rot already includes FACING_CAMERA)."""

    rot: np.ndarray
    centre: np.ndarray

    @staticmethod
    def facing(yaw: float, pitch: float, roll: float, centre: np.ndarray) -> Pose:
        return Pose(rotation(yaw, pitch, roll) @ FACING_CAMERA, np.asarray(centre, np.float64))

    def to_local(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ray origin (the pinhole) and directions in the local frame."""
        origin = (self.rot.T @ (-self.centre)).astype(np.float32)
        dirs = rays @ self.rot.astype(np.float32)  # == (rot.T @ d.T).T
        return origin, dirs

    def to_camera(self, local: np.ndarray) -> np.ndarray:
        return local @ self.rot.T.astype(local.dtype) + self.centre.astype(local.dtype)


def intersect_ellipsoid(
    origin: np.ndarray, dirs: np.ndarray, axes: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest positive hit of rays (local frame) with an axis-aligned ellipsoid at the origin.

    Returns (t [N] with +inf for misses, t_far [N]: the exit distance, +inf for misses).
    """
    inv = np.array([1.0 / a for a in axes], np.float32)
    o = origin * inv
    d = dirs * inv
    a = np.einsum("ij,ij->i", d, d)
    b = 2.0 * (d @ o)
    c = float(o @ o) - 1.0
    disc = b * b - 4.0 * a * c
    hit = disc > 0
    sq = np.sqrt(np.where(hit, disc, 0.0))
    t0 = (-b - sq) / (2.0 * a)
    t1 = (-b + sq) / (2.0 * a)
    t_near = np.where(hit & (t0 > 1e-4), t0, np.inf).astype(np.float32)
    t_far = np.where(hit & (t1 > 1e-4), t1, np.inf).astype(np.float32)
    return t_near, t_far


def intersect_plane_z0(origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Hit distance of rays (local frame) with the local plane z = 0; +inf when parallel/behind."""
    dz = dirs[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = -origin[2] / dz
    return np.where(np.isfinite(t) & (t > 1e-4), t, np.inf).astype(np.float32)
