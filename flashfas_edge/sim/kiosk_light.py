"""The kiosk display as an extended area light, and the flash response image it produces.

The display is a rectangle in the camera's plane (z = 0), below the lens, facing the subject. It is
split into patches; each patch adds L · A · cos θ_screen · cos θ_surface / d² of irradiance (an
area light — a point light is 13 % off at kiosk distances, docs/ARCHITECTURE.md §8). Diffuse
response is
albedo · E (ATR-FAS §3.2, I_d · k_d · cos θ); skin adds a Blinn-Phong lobe; glass and glossy paper
add the mirror image of the display (the only flash response of a replay screen).

Image formation is linear in the light, so one flash basis image per scene suffices: a frame is
ambient · drift + Σ_state weight_row(state) · colour(state) ⊙ basis (see ``frame_composer.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from flashfas_edge.sim.gbuffer import BACKGROUND, SCREEN, GBuffer
from flashfas_edge.sim.texture import smoothstep


@dataclass(frozen=True)
class KioskDisplay:
    width_m: float
    height_m: float
    centre_y_m: float  # below the camera (camera y points down)
    radiance: float  # full-white radiance, in units where E ≈ 1 at 35 cm in front
    patches_x: int = 4
    patches_y: int = 3

    def patches(self, nx: int, ny: int) -> tuple[np.ndarray, float]:
        xs = (np.arange(nx) + 0.5) / nx - 0.5
        ys = (np.arange(ny) + 0.5) / ny - 0.5
        gx, gy = np.meshgrid(xs * self.width_m, ys * self.height_m + self.centre_y_m)
        centres = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], axis=1).astype(np.float32)
        return centres, self.width_m * self.height_m / (nx * ny)


def area_light(gb: GBuffer, idx: np.ndarray, rays: np.ndarray, display: KioskDisplay,
                nx: int, ny: int) -> tuple[np.ndarray, np.ndarray]:
    """(irradiance E [n], specular radiance [n]) from the full-white display, per unit albedo."""
    centres, area = display.patches(nx, ny)
    px, py, pz = (np.ascontiguousarray(gb.position[idx, k]) for k in range(3))
    nx_, ny_, nz_ = (np.ascontiguousarray(gb.normal[idx, k]) for k in range(3))
    e_total = np.zeros(len(idx), np.float32)
    s_total = np.zeros(len(idx), np.float32)
    # the specular lobe only where a material has one worth computing
    shiny = np.nonzero(gb.spec[idx] >= 0.015)[0]
    vx, vy, vz = (-np.ascontiguousarray(rays[idx[shiny], k]) for k in range(3))
    shin = gb.shininess[idx[shiny]]
    norm_lobe = (shin + 8) / 8
    for c in centres:
        dx, dy, dz = c[0] - px, c[1] - py, c[2] - pz
        d2 = dx * dx + dy * dy + dz * dz
        inv = 1.0 / np.sqrt(d2)
        cos_p = np.maximum((nx_ * dx + ny_ * dy + nz_ * dz) * inv, 0.0)
        cos_s = np.maximum(-dz * inv, 0.0)  # the display faces +z
        e = (display.radiance * area) * cos_s * cos_p / d2
        e_total += e
        if len(shiny):
            inv_s = inv[shiny]
            hx = dx[shiny] * inv_s + vx
            hy = dy[shiny] * inv_s + vy
            hz = dz[shiny] * inv_s + vz
            ndoth = (nx_[shiny] * hx + ny_[shiny] * hy + nz_[shiny] * hz) / np.sqrt(
                hx * hx + hy * hy + hz * hz)
            s_total[shiny] += norm_lobe * np.maximum(ndoth, 0.0) ** shin * e[shiny]
    return e_total, s_total


def mirror_view(gb: GBuffer, idx: np.ndarray, rays: np.ndarray, display: KioskDisplay,
                 blur_m: np.ndarray) -> np.ndarray:
    """Fraction of the mirror direction that sees the lit display (soft-edged by ``blur_m``)."""
    p = gb.position[idx]
    n = gb.normal[idx]
    d = rays[idx]
    r = d - 2 * np.einsum("ij,ij->i", d, n)[:, None] * n
    towards = r[:, 2] < -1e-3
    t = np.where(towards, -p[:, 2] / np.where(towards, r[:, 2], -1.0), 0.0)
    hx = p[:, 0] + t * r[:, 0]
    hy = p[:, 1] + t * r[:, 1] - display.centre_y_m
    # blur grows with the path length (a rough / gloss surface spreads the reflection)
    soft = np.maximum(blur_m * np.maximum(t, 0.05), 1e-3)
    cov_x = smoothstep(-1.0, 1.0, (display.width_m / 2 - np.abs(hx)) / soft)
    cov_y = smoothstep(-1.0, 1.0, (display.height_m / 2 - np.abs(hy)) / soft)
    return np.where(towards, cov_x * cov_y, 0.0).astype(np.float32)


def display_light(gb: GBuffer, rays: np.ndarray, display: KioskDisplay
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(irradiance [N], specular radiance [N]) of every pixel under the full-white display."""
    n = gb.position.shape[0]
    irr = np.zeros(n, np.float32)
    spec = np.zeros(n, np.float32)
    fg = np.nonzero(gb.obj != BACKGROUND)[0]
    bg = np.nonzero(gb.obj == BACKGROUND)[0]
    if len(fg):
        irr[fg], spec[fg] = area_light(gb, fg, rays, display, display.patches_x, display.patches_y)
    if len(bg):  # 1–3 m away: the display is nearly a point for the room (< 2 % off)
        irr[bg], spec[bg] = area_light(gb, bg, rays, display, 1, 1)
    return irr, spec


def mirror_image(gb: GBuffer, rays: np.ndarray, display: KioskDisplay) -> np.ndarray:
    """float32 [N]: the display's mirror image in glass (sharp) and glossy paper (blurred)."""
    mirror_img = np.zeros(gb.position.shape[0], np.float32)
    mirror_px = np.nonzero(gb.mirror > 0)[0]
    if len(mirror_px):
        blur = np.where(gb.obj[mirror_px] == SCREEN, 0.004, 0.05).astype(np.float32)
        cov = mirror_view(gb, mirror_px, rays, display, blur)
        mirror_img[mirror_px] = gb.mirror[mirror_px] * cov * display.radiance
    return mirror_img


def flash_basis(gb: GBuffer, rays: np.ndarray, display: KioskDisplay, height: int, width: int,
                focal_px: float) -> tuple[np.ndarray, np.ndarray]:
    """float32 [H, W, 3]: the camera-side radiance under the full-white display (unit intensity),
    and float32 [H, W]: the part of it that is the display's mirror image (glass, gloss)."""
    irr, spec = display_light(gb, rays, display)
    # Subsurface scattering softens the diffuse shading of skin (~1.5 mm), nothing else.
    sss = gb.subsurface.reshape(height, width)
    if np.any(sss > 0):
        z = float(np.median(gb.position[gb.subsurface > 0, 2]))
        sigma = max(0.0015 * focal_px / z, 0.3)
        img = irr.reshape(height, width)
        num = cv2.GaussianBlur(img * sss, (0, 0), sigma)
        den = cv2.GaussianBlur(sss, (0, 0), sigma)
        blurred = num / np.maximum(den, 1e-6)
        irr = np.where(sss > 0, blurred, img).reshape(-1)
    out = gb.albedo * irr[:, None] + (gb.spec * spec)[:, None]
    mirror_img = mirror_image(gb, rays, display)
    out += mirror_img[:, None]
    return out.reshape(height, width, 3).astype(np.float32), mirror_img.reshape(height, width)
