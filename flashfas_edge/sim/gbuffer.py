"""Per-pixel surface record (a "G-buffer") that the light transport shades.

Every subject (live head, print, replay screen, mask) and the room background write the same
fields, so one shading routine serves all of them and the flash response of each class differs
only through geometry and material — the physics the model must learn (ATR-FAS §3.2, MoESA §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Object ids (GBuffer.obj): which kind of surface a pixel sees.
BACKGROUND, SKIN, HAIR, BODY, EYE, PAPER, SCREEN, RESIN, HOLE = range(9)
HEAD_OBJECTS = (SKIN, HAIR, EYE, RESIN, HOLE)


@dataclass
class GBuffer:
    position: np.ndarray  # float32 [N, 3] camera metres
    normal: np.ndarray  # float32 [N, 3] unit, towards the camera side
    albedo: np.ndarray  # float32 [N, 3] diffuse reflectance
    spec: np.ndarray  # float32 [N] specular weight (normalised Blinn-Phong lobe)
    shininess: np.ndarray  # float32 [N] Blinn-Phong exponent
    subsurface: np.ndarray  # float32 [N] 1 where light bleeds under the surface (skin)
    mirror: np.ndarray  # float32 [N] Fresnel reflectance of a smooth glass/gloss layer
    emission: np.ndarray  # float32 [N, 3] self-emission of a replay screen (flickers)
    ambient_emission: np.ndarray  # float32 [N, 3] room emitters (windows); follows ambient drift
    obj: np.ndarray  # uint8 [N] object id
    depth_z: np.ndarray  # float32 [N] camera z of the true (displaced) surface

    @staticmethod
    def empty(n: int) -> GBuffer:
        f3 = np.zeros((n, 3), np.float32)
        return GBuffer(
            position=f3.copy(),
            normal=np.tile(np.array([0, 0, -1], np.float32), (n, 1)),
            albedo=f3.copy(),
            spec=np.zeros(n, np.float32),
            shininess=np.full(n, 10.0, np.float32),
            subsurface=np.zeros(n, np.float32),
            mirror=np.zeros(n, np.float32),
            emission=f3.copy(),
            ambient_emission=f3.copy(),
            obj=np.zeros(n, np.uint8),
            depth_z=np.full(n, np.inf, np.float32),
        )
