"""The eight ambient light scenarios of ATR-FAS §4.1 and the ambient image they produce.

Levels are in flash units: 1 = the irradiance of a full-white kiosk display on a frontal surface at
35 cm. Real sunlight is hundreds of flash units; the "sunlight" scene is a face in sun near a
window (10–25), already enough to bury the flash below the noise for the low-SNR gate to act.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim.gbuffer import GBuffer

SCENARIOS = ("dark_room", "office", "bedroom", "backlight", "shadow", "cloudy", "sunlight",
             "street_light")

# name: (directional level, sky level, CCT range K, light from behind?, window radiance,
#        mains flicker max)
_TABLE = {
    "dark_room": ((0.0, 0.03), (0.005, 0.04), (2700, 4000), False, 0.0, 0.0),
    "office": ((0.4, 1.5), (0.8, 3.0), (3800, 5200), False, 0.0, 0.05),
    "bedroom": ((0.2, 0.8), (0.15, 0.6), (2600, 3300), False, 0.0, 0.02),
    "backlight": ((2.0, 8.0), (0.3, 1.2), (5000, 6500), True, 15.0, 0.0),
    "shadow": ((0.0, 0.3), (2.0, 6.0), (7000, 9500), False, 0.0, 0.0),
    "cloudy": ((0.5, 2.0), (4.0, 10.0), (6000, 7500), False, 0.0, 0.0),
    "sunlight": ((8.0, 25.0), (1.5, 5.0), (5000, 5900), False, 0.0, 0.0),
    "street_light": ((0.1, 0.6), (0.02, 0.1), (1900, 4200), False, 0.0, 0.1),
}


def cct_rgb(kelvin: float) -> np.ndarray:
    """Approximate linear camera RGB of a black body, green = 1 (Tanner Helland fit)."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.7 * (t - 60) ** -0.1332
    g = 99.47 * np.log(t) - 161.1 if t <= 66 else 288.1 * (t - 60) ** -0.0755
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5 * np.log(t - 10) - 305.0)
    srgb = np.clip(np.array([r, g, b]) / 255.0, 1e-3, 1.0)
    lin = srgb**2.2
    return (lin / lin[1]).astype(np.float32)


@dataclass
class Ambient:
    scenario: str
    dir_level: float
    dir_vec: np.ndarray  # unit, from the surface towards the light (camera frame)
    dir_rgb: np.ndarray
    sky_level: float
    sky_rgb: np.ndarray
    window_radiance: float
    drift_per_s: float  # relative change of all ambient light per second
    flicker: float  # relative amplitude of the mains flicker (light ripples at twice mains)
    flicker_phase: float
    dir_cct: float = 5000.0  # colour temperature of each part (the spectral renderer's light)
    sky_cct: float = 5000.0
    mains_hz: float = 50.0  # 50 Hz mains: 100 Hz ripple; 60 Hz mains: 120 Hz

    @property
    def flicker_hz(self) -> float:
        return 2.0 * self.mains_hz

    @staticmethod
    def draw(rng: np.random.Generator, scenario: str) -> Ambient:
        d_rng, s_rng, cct_rng, behind, window, flick = _TABLE[scenario]
        cct = rng.uniform(*cct_rng)
        if behind:
            v = np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.1), 1.0])
        else:
            v = np.array([rng.uniform(-1.0, 1.0), rng.uniform(-1.2, 0.1), -rng.uniform(0.2, 1.2)])
        v /= np.linalg.norm(v)
        # drawn in this order since the first datasets: keep it (renders stay reproducible)
        dir_level = float(rng.uniform(*d_rng))
        sky_level = float(rng.uniform(*s_rng))
        sky_cct = cct + rng.uniform(-500, 1500)
        return Ambient(
            scenario=scenario,
            dir_level=dir_level,
            dir_vec=v.astype(np.float32),
            dir_rgb=cct_rgb(cct),
            sky_level=sky_level,
            sky_rgb=cct_rgb(sky_cct),
            window_radiance=float(window * rng.uniform(0.5, 1.5)),
            drift_per_s=float(rng.normal(0.0, 0.04)),
            flicker=float(rng.uniform(0, flick)),
            flicker_phase=float(rng.uniform(0, 2 * np.pi)),
            dir_cct=float(cct),
            sky_cct=float(sky_cct),
        )

    def factor(self, t_rel_us: np.ndarray) -> np.ndarray:
        """Ambient level relative to its mean at times t_rel_us (µs from the sequence middle)."""
        t_s = t_rel_us * 1e-6
        return 1 + self.drift_per_s * t_s + self.flicker * np.sin(
            2 * np.pi * self.flicker_hz * t_s + self.flicker_phase)

    def shading(self, gb: GBuffer, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per pixel (cos θ to the directional light, sky term, specular radiance of the
        directional light per unit of its colour)."""
        n = gb.normal
        ndotl = np.clip(n @ self.dir_vec, 0.0, None)
        up = np.array([0.0, -1.0, 0.0], np.float32)
        sky = 0.55 + 0.45 * (n @ up)
        spec = np.zeros(len(n), np.float32)
        shiny = np.nonzero(gb.spec >= 0.015)[0]
        if len(shiny) and self.dir_level > 0:
            h = self.dir_vec[None, :] - rays[shiny]
            h /= np.linalg.norm(h, axis=1, keepdims=True)
            ndoth = np.clip(np.einsum("ij,ij->i", n[shiny], h), 0.0, None)
            shin = gb.shininess[shiny]
            spec[shiny] = (gb.spec[shiny] * (shin + 8) / 8 * ndoth**shin * ndotl[shiny]
                           * self.dir_level)
        return ndotl, sky, spec

    def image(self, gb: GBuffer, rays: np.ndarray, height: int, width: int) -> np.ndarray:
        """float32 [H, W, 3] radiance under the ambient light (mean level), windows included."""
        ndotl, sky, spec = self.shading(gb, rays)
        irr = (self.dir_level * ndotl)[:, None] * self.dir_rgb + (self.sky_level * sky)[:, None] * (
            self.sky_rgb)
        out = gb.albedo * irr + spec[:, None] * self.dir_rgb + gb.ambient_emission
        return out.reshape(height, width, 3).astype(np.float32)
