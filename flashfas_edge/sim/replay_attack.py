"""Replay attack: a phone, tablet or monitor showing the victim's face.

The screen emits its own light (own brightness and gamma, sub-pixel grid → moiré, PWM refresh
flicker). The kiosk flash only adds the glass's mirror reflection (a specular highlight where the
kiosk display is seen in the glass) and a faint diffuse (docs/ARCHITECTURE.md §8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim.gbuffer import SCREEN, GBuffer
from flashfas_edge.sim.photo import FacePhoto
from flashfas_edge.sim.raycast import Pinhole, Pose
from flashfas_edge.sim.sheet import Sheet
from flashfas_edge.sim.texture import sample_image

# (screen width, screen height) in metres, portrait
_DEVICES = {"phone": (0.068, 0.15), "tablet": (0.15, 0.21), "monitor": (0.30, 0.40)}
_LIFE_IOD_M = 0.058  # inter-ocular distance of the head model's face, about life size


@dataclass
class ReplayAttack:
    device: Sheet  # outer body incl. bezel
    screen_w_m: float
    screen_h_m: float
    photo: FacePhoto
    metres_per_photo_px: float
    peak_radiance: float
    gamma: float
    pixel_pitch_m: float
    grid_depth: float
    pwm_hz: float
    pwm_depth: float
    pwm_phase: float
    glass_mirror: float
    glass_diffuse: float
    camera_m_per_px: float = 0.0  # size of one camera pixel on the screen (set by the scene)

    @staticmethod
    def draw(rng: np.random.Generator, photo: FacePhoto, centre: np.ndarray, yaw: float,
             pitch: float, roll: float) -> ReplayAttack:
        kind = str(rng.choice(list(_DEVICES), p=[0.35, 0.4, 0.25]))
        sw, sh = _DEVICES[kind]
        sw *= rng.uniform(0.9, 1.1)
        sh *= rng.uniform(0.9, 1.1)
        bezel = rng.uniform(0.004, 0.015)
        h, w = photo.image.shape[:2]
        # The attacker zooms the face to about life size, as far as the screen allows, and holds
        # the device where the face looks as large as a live one at the drawn distance (a small
        # phone comes closer). Face size is then no cue; the screen's flash response is ~0 at
        # any distance, so no falloff cue arises either.
        photo_iod = float(np.linalg.norm(photo.landmarks[1] - photo.landmarks[0]))
        shown_iod = min(_LIFE_IOD_M * rng.uniform(0.8, 1.1), sw / 2.6)
        mpp = min(shown_iod / photo_iod, max(sw / w, sh / h))  # never smaller than the screen
        shown_iod = mpp * photo_iod
        z_face = float(centre[2]) - 0.09  # where a live face's front would be
        z_dev = max(0.12, z_face * shown_iod / _LIFE_IOD_M)
        centre = np.asarray(centre, np.float64) * (z_dev / float(centre[2]))
        pose = Pose.facing(yaw, pitch, roll, centre)
        face_px = photo.landmarks.mean(axis=0)
        off = np.array([(face_px[0] - (w - 1) / 2) * mpp, (face_px[1] - (h - 1) / 2) * mpp, 0.0])
        # keep the face on the screen: shift the device by at most the screen's slack
        off[0] = np.clip(off[0], -sw / 2 + 0.02, sw / 2 - 0.02)
        off[1] = np.clip(off[1], -sh / 2 + 0.03, sh / 2 - 0.03)
        pose = Pose(pose.rot, np.asarray(centre, np.float64) - pose.rot @ off)
        device = Sheet(pose, sw + 2 * bezel, sh + 2 * bezel, 0.0)
        pwm = rng.uniform() < 0.35  # PWM-dimmed backlights band under a rolling shutter
        return ReplayAttack(
            device=device, screen_w_m=sw, screen_h_m=sh, photo=photo, metres_per_photo_px=mpp,
            # 100–500 nits: 3–14 units, where 1 unit ≈ a white surface under the full flash
            peak_radiance=float(rng.uniform(3.0, 14.0)), gamma=float(rng.uniform(1.9, 2.6)),
            pixel_pitch_m=float(rng.uniform(0.05e-3, 0.25e-3)),
            grid_depth=float(rng.uniform(0.2, 0.6)),
            pwm_hz=float(rng.uniform(200, 1000)) if pwm else 0.0,
            pwm_depth=float(rng.uniform(0.05, 0.3)) if pwm else 0.0,
            pwm_phase=float(rng.uniform(0, 2 * np.pi)),
            glass_mirror=float(rng.uniform(0.035, 0.06)),
            glass_diffuse=float(rng.uniform(0.004, 0.02)),
        )

    def hit(self, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.device.local_hit(rays)

    def _photo_px(self, p_local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.photo.image.shape[:2]
        return (p_local[:, 0] / self.metres_per_photo_px + (w - 1) / 2,
                p_local[:, 1] / self.metres_per_photo_px + (h - 1) / 2)

    def fill(self, gb: GBuffer, idx: np.ndarray, t: np.ndarray, p_local: np.ndarray) -> None:
        pose = self.device.pose
        gb.position[idx] = pose.to_camera(p_local)
        gb.normal[idx] = self.device.local_normal(p_local) @ pose.rot.T.astype(np.float32)
        gb.depth_z[idx] = gb.position[idx][:, 2]
        on_screen = (np.abs(p_local[:, 0]) <= self.screen_w_m / 2) & (
            np.abs(p_local[:, 1]) <= self.screen_h_m / 2)
        px, py = self._photo_px(p_local)
        # the content is an sRGB-ish picture; the device's own gamma turns it into light
        content = np.clip(sample_image(self.photo.image, px, py), 0, 1) ** (1 / 2.2)
        light = self.peak_radiance * content**self.gamma
        # RGB sub-pixel stripes seen through the camera's pixel aperture and lens: a box filter
        # of one camera pixel (sinc) and a soft optical low-pass; what survives aliases → moiré
        ratio = self.camera_m_per_px / self.pixel_pitch_m
        depth = self.grid_depth * abs(float(np.sinc(ratio))) * float(np.exp(-0.5 * ratio**2))
        depth = max(depth, 0.02 * self.grid_depth)
        phase = 2 * np.pi * p_local[:, 0] / self.pixel_pitch_m
        stripes = np.stack([np.cos(phase - k * 2 * np.pi / 3) for k in range(3)], axis=1)
        rows = np.cos(2 * np.pi * p_local[:, 1] / self.pixel_pitch_m)[:, None]
        light = light * (1 + depth * (0.6 * stripes + 0.4 * rows))
        gb.emission[idx] = np.where(on_screen[:, None], np.maximum(light, 0), 0).astype(np.float32)
        gb.albedo[idx] = np.where(on_screen[:, None], self.glass_diffuse, 0.03)
        gb.spec[idx] = 0.0
        gb.shininess[idx] = 10.0
        gb.mirror[idx] = self.glass_mirror
        gb.obj[idx] = SCREEN

    def emission_factor(self, t0_us: np.ndarray, exposure_us: float) -> np.ndarray:
        """Mean relative screen output over [t0, t0 + exposure] (square-wave PWM backlight),
        integrated exactly: a sampled kHz square wave would alias."""
        t0 = np.asarray(t0_us, np.float64)
        if self.pwm_hz <= 0:
            return np.ones_like(t0)
        f = self.pwm_hz * 1e-6  # cycles per µs

        def integral(t: np.ndarray) -> np.ndarray:  # ∫ sign(sin(2π f t + φ)) dt, periodic
            theta = np.mod(f * t + self.pwm_phase / (2 * np.pi), 1.0)
            return np.where(theta < 0.5, theta, 1.0 - theta) / f

        mean = (integral(t0 + exposure_us) - integral(t0)) / exposure_us
        return 1 + self.pwm_depth * mean

    def landmarks_px(self, cam: Pinhole) -> np.ndarray:
        h, w = self.photo.image.shape[:2]
        lm = self.photo.landmarks
        x_m = (lm[:, 0] - (w - 1) / 2) * self.metres_per_photo_px
        y_m = (lm[:, 1] - (h - 1) / 2) * self.metres_per_photo_px
        return self.device.project_local(cam, x_m, y_m).astype(np.float32)
