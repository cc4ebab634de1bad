"""The victim's face photo that print and replay attacks show.

It is rendered with the same head model under its own (photographer's) light, so the printed or
displayed face carries *baked-in* shading from another light — exactly why a print's image alone
looks 3D while its flash response does not (ATR-FAS §1, MoESA §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim.gbuffer import GBuffer
from flashfas_edge.sim.head import HeadIdentity, HeadTracer, landmarks_local, place_head
from flashfas_edge.sim.raycast import Pinhole
from flashfas_edge.sim.room import Room


@dataclass
class FacePhoto:
    image: np.ndarray  # float32 [H, W, 3] linear RGB, white ≈ 1
    landmarks: np.ndarray  # float32 [5, 2] pixels in ``image``
    metres_per_px: float  # life size of one photo pixel at the face's front


def render_photo(rng: np.random.Generator, ident: HeadIdentity, width: int = 240,
                 height: int = 300) -> FacePhoto:
    cam = Pinhole.from_hfov(width, height, rng.uniform(28, 40))
    dist = rng.uniform(0.45, 0.8)
    centre = np.array([rng.uniform(-0.01, 0.01), rng.uniform(0.0, 0.03), dist])
    place = place_head(centre, rng.uniform(-12, 12), rng.uniform(-8, 8), rng.uniform(-6, 6))
    head = HeadTracer(ident, place)
    room = Room.draw(rng, window=False)
    rays = cam.rays()
    n = rays.shape[0]
    gb = GBuffer.empty(n)
    t_head, part = head.hit(rays)
    t_room = room.hit(rays)
    on_head = t_head < t_room
    idx = np.nonzero(on_head)[0]
    head.fill(gb, idx, rays[idx], t_head[idx], part[idx])
    idx_r = np.nonzero(~on_head)[0]
    room.fill(gb, idx_r, rays[idx_r], t_room[idx_r], 0.0)
    # Photographer's light: a key light from a random direction plus soft fill.
    key = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.9, 0.2), -1.0])
    key /= np.linalg.norm(key)
    ndotl = np.clip(gb.normal @ key.astype(np.float32), 0, None)
    key_col = rng.uniform(0.85, 1.15, 3).astype(np.float32)
    fill = rng.uniform(0.25, 0.6)
    shade = ndotl[:, None] * key_col + fill * (0.6 + 0.4 * np.clip(-gb.normal[:, 2:3], 0, 1))
    img = gb.albedo * shade
    img = img / max(float(np.percentile(img, 99)), 1e-3)
    lm_cam = place.pose.to_camera(landmarks_local(ident))
    lm = cam.project(lm_cam).astype(np.float32)
    return FacePhoto(
        image=np.clip(img, 0, 1).reshape(height, width, 3).astype(np.float32),
        landmarks=lm,
        metres_per_px=float((dist - ident.axes[2]) / cam.focal_px),
    )
