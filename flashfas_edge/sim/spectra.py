"""Spectra for the spectral renderer: camera channels, flash primaries, room lights and materials.

Colour is formed per wavelength: a pixel's response in camera channel c to display primary p is
``Σ_λ S_p(λ) R(λ) Q_c(λ)`` (S: the primary's emission, R: the surface's reflectance, Q: the
channel's sensitivity). Two surfaces with the same RGB under broadband light (metamers: a
skin-coloured paint and skin) answer narrow primaries differently, which is what a colour challenge
can see and a white flash cannot (docs/DATASET.md, "Spectral physics").

Everything here is data about materials and devices, sampled every 10 nm from 400 to 700 nm:
- skin from a two-layer model (melanin in the epidermis, blood in the dermis) with the molar
  extinction of oxy- and deoxy-haemoglobin (S. Prahl's compilation of Gratzer's and Kollias' data)
  and the melanin and baseline-tissue absorption of S. Jacques' skin-optics summary;
- pigments of skin-coloured paint, silicone and resin (titanium white, iron oxides, cadmium red,
  umber, ultramarine, carbon black) as masstone reflectances mixed with Kubelka–Munk;
- process inks (cyan, magenta, yellow) on paper, mixed as halftone dots (Neugebauer);
- light diffusing under a translucent surface: the diffusion length ``1/√(3 μa (μa + μs'))`` per
  wavelength (red light travels millimetres under skin, blue a fraction of one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

WAVELENGTHS_NM = np.arange(400.0, 701.0, 10.0)
N_BANDS = len(WAVELENGTHS_NM)

# Molar extinction coefficient of haemoglobin [cm⁻¹ / (mol/L)], 400–700 nm every 10 nm
# (oxy, deoxy) — S. Prahl's tabulation of W. B. Gratzer's and N. Kollias' measurements.
_HBO2 = np.array([266232, 466816, 480360, 214120, 44480, 62816, 44480, 33209.2, 26629.2, 23684.4,
                  20932.8, 20035.2, 24202.4, 39956.8, 53236, 43016, 32613.2, 44496, 50104, 14400.8,
                  3200, 1506, 942, 610, 442, 368, 319.6, 294, 277.6, 276, 290], np.float64)
_HB = np.array([223296, 303956, 407560, 528600, 413280, 103292, 23388.8, 16156.4, 14550, 16684,
                20035.2, 25773.6, 31589.6, 39036.4, 46592, 53412, 53788, 45072, 37020, 28324.4,
                14677.2, 9443.6, 6509.6, 5148.8, 4345.2, 3750.12, 3226.56, 2795.12, 2407.92,
                2051.96, 1794.28], np.float64)
_HB_G_PER_L = 150.0  # whole blood
_HB_G_PER_MOL = 64500.0


def _gauss(mu: float, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((WAVELENGTHS_NM - mu) / sigma) ** 2)


def _sigmoid(mid: float, width: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(WAVELENGTHS_NM - mid) / width))


# --- light sources and the camera ---------------------------------------------------------------
def blackbody(kelvin: float) -> np.ndarray:
    """Relative spectral power of a black body (Planck), max 1 over the band."""
    lam = WAVELENGTHS_NM * 1e-9
    c2 = 1.4388e-2
    p = lam**-5 / np.expm1(c2 / (lam * kelvin))
    return p / p.max()


def white_led_lamp(kelvin: float) -> np.ndarray:
    """A phosphor-converted white LED room light: a blue pump plus a broad phosphor hump."""
    warm = np.clip((6500.0 - kelvin) / 3800.0, 0.0, 1.0)
    p = (1.0 - 0.6 * warm) * _gauss(452, 11) + 0.55 * _gauss(555 + 45 * warm, 55 + 10 * warm)
    return p / p.max()


def sodium_lamp() -> np.ndarray:
    """A high-pressure sodium street lamp: the broadened 589 nm line on a weak continuum."""
    p = _gauss(589, 8) + 0.15 * _gauss(560, 40)
    return p / p.max()


# Display and LED flash primaries, per kind of surface. Each [3, N_BANDS] (R, G, B rows).
def _primaries_lcd() -> np.ndarray:
    # white LED backlight (blue pump + YAG phosphor) through the panel's colour filters
    backlight = _gauss(450, 10) + 0.6 * _gauss(560, 45)
    red = backlight * _sigmoid(588, 9)
    green = backlight * _gauss(535, 30)
    blue = backlight * _gauss(455, 22)
    return np.stack([red, green, blue])


def _primaries_oled() -> np.ndarray:
    return np.stack([_gauss(620, 13), _gauss(528, 15), _gauss(462, 11)])


def _primaries_led() -> np.ndarray:
    return np.stack([_gauss(627, 9), _gauss(523, 14), _gauss(465, 10)])


PRIMARY_KINDS = {"lcd": _primaries_lcd, "oled": _primaries_oled, "led": _primaries_led}


def camera_sensitivity(shift_nm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                       width_scale: float = 1.0) -> np.ndarray:
    """[3, N_BANDS] R, G, B channel sensitivities of a colour sensor with an IR-cut filter (the
    red channel keeps a little response in the blue, as Bayer dyes do)."""
    ir_cut = 1.0 - _sigmoid(655, 9)
    r = (_gauss(600 + shift_nm[0], 30 * width_scale) + 0.04 * _gauss(430, 25)) * ir_cut
    g = _gauss(535 + shift_nm[1], 38 * width_scale) * ir_cut
    b = _gauss(458 + shift_nm[2], 30 * width_scale) * ir_cut
    return np.stack([r, g, b])


@dataclass(frozen=True)
class SpectralDevice:
    """The camera and the flash surface of one kiosk build, normalised so that a perfect white
    reflector under the full-white flash reads 1 in every channel (the units of the RGB renderer's
    flash image)."""

    camera: np.ndarray  # [3, N_BANDS]
    primaries: np.ndarray  # [3, N_BANDS] emission of the R, G, B drive of the flash surface

    @property
    def primary_channel(self) -> np.ndarray:
        """[3 primaries, N_BANDS, 3 channels] the weights that turn a reflectance into the
        response of each channel to each primary."""
        return self.primaries[:, :, None] * self.camera.T[None, :, :]

    def direct_view(self) -> np.ndarray:
        """[3 primaries, 3 channels]: the flash surface seen directly (or in a mirror)."""
        return self.primary_channel.sum(axis=1)


@functools.lru_cache(maxsize=64)
def spectral_device(primary_kind: str, camera_shift_nm: tuple[float, float, float] = (0, 0, 0),
                    camera_width: float = 1.0) -> SpectralDevice:
    cam = camera_sensitivity(camera_shift_nm, camera_width)
    prim = PRIMARY_KINDS[primary_kind]()
    # scale channels so the full white reads 1, then primaries so that white is their sum
    white = prim.sum(axis=0)
    cam = cam / (cam @ white)[:, None]
    return SpectralDevice(cam.astype(np.float64), prim.astype(np.float64))


def illuminant_response(device: SpectralDevice, spectrum: np.ndarray, balanced: bool = False
                        ) -> np.ndarray:
    """[N_BANDS, 3] weights turning a reflectance into camera RGB under ``spectrum``, scaled so a
    white reflector reads 1 in green (the RGB renderer's ``cct_rgb`` convention: the light keeps
    its colour), or 1 in every channel with ``balanced`` (a white-balanced view: how a surface's
    colour is described)."""
    w = spectrum[:, None] * device.camera.T
    return w / (w.sum(axis=0, keepdims=True) if balanced else w[:, 1].sum())


# --- reflectance of materials ------------------------------------------------------------------
def _km_reflectance(k_over_s: np.ndarray) -> np.ndarray:
    """Kubelka–Munk reflectance of an opaque layer from its K/S."""
    return 1.0 + k_over_s - np.sqrt(k_over_s**2 + 2.0 * k_over_s)


def _k_over_s(reflectance: np.ndarray) -> np.ndarray:
    r = np.clip(reflectance, 1e-3, 0.999)
    return (1.0 - r) ** 2 / (2.0 * r)


@dataclass(frozen=True)
class SkinParams:
    melanin: float  # volume fraction of melanosomes in the epidermis (0.01 light … 0.3 dark)
    blood: float  # volume fraction of blood in the dermis (0.005 … 0.05)
    oxygenation: float  # haemoglobin oxygen saturation (0.6 … 0.99)
    epidermis_mm: float = 0.06
    scatter: float = 1.0  # dermal scattering relative to the average


def skin_optics(p: SkinParams) -> tuple[np.ndarray, np.ndarray]:
    """(reflectance [N_BANDS], diffusion length mm [N_BANDS]) of skin with these parameters."""
    lam = WAVELENGTHS_NM
    baseline = 0.244 + 85.3 * np.exp(-(lam - 154.0) / 66.2)  # bloodless tissue, cm⁻¹
    mu_mel = 6.6e11 * lam**-3.33  # inside a melanosome, cm⁻¹
    mu_blood = 2.303 * (p.oxygenation * _HBO2 + (1 - p.oxygenation) * _HB) * (
        _HB_G_PER_L / _HB_G_PER_MOL)
    mu_epi = p.melanin * mu_mel + (1 - p.melanin) * baseline
    mu_a = p.blood * mu_blood + (1 - p.blood) * baseline  # dermis
    mu_s = p.scatter * (2e5 * lam**-1.5 + 2e12 * lam**-4)  # reduced scattering, cm⁻¹
    r_dermis = _km_reflectance(2.0 * mu_a / mu_s)
    t_epi = np.exp(-mu_epi * p.epidermis_mm * 0.1)
    diffusion_mm = 10.0 / np.sqrt(3.0 * mu_a * (mu_a + mu_s))
    return t_epi**2 * r_dermis, diffusion_mm


def _pigment(lo: float, hi: float, mid: float, width: float) -> np.ndarray:
    return lo + (hi - lo) * _sigmoid(mid, width)


PIGMENT_NAMES = ("titanium_white", "yellow_oxide", "red_oxide", "cadmium_red", "burnt_umber",
                 "ultramarine", "carbon_black")
# masstone reflectances of the pigments a mask painter mixes skin tones from
_PIGMENT_REFLECTANCE = np.stack([
    _pigment(0.35, 0.93, 415, 6),
    _pigment(0.06, 0.62, 530, 18),
    _pigment(0.05, 0.48, 598, 16),
    _pigment(0.04, 0.72, 603, 8),
    _pigment(0.035, 0.17, 600, 40),
    0.05 + 0.35 * _gauss(455, 35) + 0.3 * _sigmoid(690, 12),
    np.full(N_BANDS, 0.035),
])
PIGMENT_KS = _k_over_s(_PIGMENT_REFLECTANCE)  # [7, N_BANDS]


def paint_reflectance(concentrations: np.ndarray) -> np.ndarray:
    """Kubelka–Munk mixture of the pigments (relative amounts, any scale) → reflectance."""
    c = np.asarray(concentrations, np.float64)
    ks = (c @ PIGMENT_KS) / max(float(c.sum()), 1e-9)
    return _km_reflectance(ks)


def mix_paint_to_match(target_rgb: np.ndarray, viewing: np.ndarray, rng: np.random.Generator,
                       iters: int = 60) -> np.ndarray:
    """Pigment amounts whose paint looks like ``target_rgb`` under the painter's light
    (``viewing``: [N_BANDS, 3] from :func:`illuminant_response`): a metamer of the target, as an
    attacker tunes a mask's paint by eye. Damped Gauss–Newton on the log amounts from a random
    starting mix (each painter's palette and mix differ; the fit changes the mix as little as it
    can)."""
    target = np.log(np.clip(np.asarray(target_rgb, np.float64), 1e-3, 1.0))
    use = rng.uniform(size=len(PIGMENT_NAMES)) < 0.7  # not every painter owns every pigment
    use[[0, 1, 2]] = True
    u = np.log(rng.uniform(0.02, 1.0, len(PIGMENT_NAMES)))
    u[0] = np.log(rng.uniform(2.0, 6.0))
    live = np.nonzero(use)[0]

    def residual(v: np.ndarray) -> np.ndarray:
        c = np.where(use, np.exp(v), 0.0)
        return np.log(np.clip(paint_reflectance(c) @ viewing, 1e-6, None)) - target

    for _ in range(iters):
        r = residual(u)
        if float(r @ r) < 1e-8:
            break
        jac = np.zeros((3, len(live)))
        for j, i in enumerate(live):
            d = u.copy()
            d[i] += 1e-4
            jac[:, j] = (residual(d) - r) / 1e-4
        step = -jac.T @ np.linalg.solve(jac @ jac.T + 1e-4 * np.eye(3), r)
        u[live] += np.clip(step, -1.0, 1.0)
        u = np.clip(u, -12.0, 6.0)
    return np.where(use, np.exp(u), 0.0)


def pigment_diffusion_mm(reflectance: np.ndarray, scatter_per_cm: float) -> np.ndarray:
    """Diffusion length of light in a translucent pigmented material (silicone) whose opaque
    reflectance is ``reflectance`` and reduced scattering ``scatter_per_cm``."""
    mu_a = _k_over_s(reflectance) * scatter_per_cm / 2.0
    return 10.0 / np.sqrt(3.0 * mu_a * (mu_a + scatter_per_cm))


# process inks on paper: single-pass transmittance of each ink layer
_INK_T = np.stack([
    0.05 + 0.83 * (1 - _sigmoid(565, 14)) * (0.6 + 0.4 * _sigmoid(430, 12)),  # cyan
    0.06 + 0.86 * (1 - _gauss(545, 38)),  # magenta
    0.05 + 0.88 * _sigmoid(495, 10),  # yellow
])


def halftone_reflectance(paper: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    """[N, N_BANDS] reflectance of CMY halftone dots with coverage [N, 3] on ``paper``: Demichel
    weights over the eight ink overlaps (Neugebauer), light through each ink twice."""
    c, m, y = (np.clip(coverage[:, k], 0.0, 1.0)[:, None] for k in range(3))
    out = np.zeros((coverage.shape[0], N_BANDS))
    for ci in (0, 1):
        for mi in (0, 1):
            for yi in (0, 1):
                w = (c if ci else 1 - c) * (m if mi else 1 - m) * (y if yi else 1 - y)
                t = np.ones(N_BANDS)
                for use, ink in ((ci, 0), (mi, 1), (yi, 2)):
                    if use:
                        t = t * _INK_T[ink] ** 2
                out += w * (paper * t)[None, :]
    return out


# --- RGB → spectrum for surfaces whose spectrum we only know as a colour --------------------
_SMOOTH_BASIS = np.stack([_sigmoid(590, 25), _gauss(530, 45), 1 - _sigmoid(490, 25)])


def smooth_multiplier(base: np.ndarray, rgb_ratio: np.ndarray, reference: np.ndarray
                      ) -> np.ndarray:
    """[N, N_BANDS] smooth spectral factors m so that ``base · m`` has ``rgb_ratio`` [N, 3] times
    the reference RGB of ``base`` (textures and painted features modulate a material's spectrum
    smoothly; they do not add narrow bands)."""
    ref = (base[None, :] * _SMOOTH_BASIS) @ reference  # [3 basis, 3 channels]
    base_rgb = base @ reference
    a = (rgb_ratio * base_rgb[None, :]) @ np.linalg.inv(ref)
    return np.clip(a @ _SMOOTH_BASIS, 0.0, None)
