"""Spectral light transport: each pixel's reflectance spectrum, its flash response per display
primary and its ambient image (the ``spectral`` physics of ``SceneRequest``).

The RGB renderer multiplies an RGB albedo by the flash colour; here the flash image is
``[H, W, 3 primaries, 3 channels]``: what each camera channel sees of the face under each primary
of the flash surface (``spectra.py``). Live skin gets its reflectance from melanin and blood, a
mask's paint from pigments mixed to look like the victim's skin, a print from halftone inks; all
other surfaces (hair, eyes, cloth, room) a smooth spectrum with their RGB colour. Light that
diffuses under a translucent surface (skin, silicone) spreads over each wavelength's own
diffusion length before it leaves: the red flash response of skin is softer than its blue.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import cv2
import numpy as np

from flashfas_edge.sim import spectra
from flashfas_edge.sim.ambient import Ambient
from flashfas_edge.sim.device import DeviceProfile
from flashfas_edge.sim.gbuffer import PAPER, RESIN, SKIN, GBuffer
from flashfas_edge.sim.kiosk_light import KioskDisplay, display_light, mirror_image

PHYSICS_MODES = ("rgb", "spectral")
REFERENCE_CCT_K = 6500.0  # an RGB albedo is the surface's white-balanced colour under this light
_BLUR_RADII_MM = (0.0, 0.5, 2.0)  # diffusion lengths between which each band is interpolated


def device_spectra(profile: DeviceProfile) -> spectra.SpectralDevice:
    """The flash surface's primaries and the camera's channels of a kiosk build: LED bars and
    rings have RGB LEDs, the 7–8" panels OLED, the other displays white-LED LCDs; each camera's
    dyes sit a few nm apart (a fixed draw from the build's name)."""
    if profile.name.startswith("led"):
        kind = "led"
    elif profile.name.startswith("panel"):
        kind = "oled"
    else:
        kind = "lcd"
    rng = np.random.default_rng(zlib.crc32(profile.name.encode()))
    shift = tuple(float(x) for x in np.round(rng.uniform(-8, 8, 3), 1))
    width = float(np.round(rng.uniform(0.85, 1.15), 2))
    return spectra.spectral_device(kind, shift, width)  # type: ignore[arg-type]


def reference_view(device: spectra.SpectralDevice) -> np.ndarray:
    return spectra.illuminant_response(device, spectra.blackbody(REFERENCE_CCT_K), balanced=True)


@dataclass
class Material:
    """A spectral base: reflectance and diffusion length per band. Pixels assigned to it get
    ``base · smooth factor`` so that their reference RGB is their G-buffer albedo."""

    reflectance: np.ndarray  # [N_BANDS]
    diffusion_mm: np.ndarray  # [N_BANDS], 0 for opaque surfaces
    inks: bool = False  # halftone print: the spectrum comes from ink coverage, not a factor


@dataclass
class MaterialMap:
    """Per-pixel material index into ``materials`` (0: a generic opaque smooth spectrum)."""

    materials: list[Material] = field(default_factory=lambda: [
        Material(np.ones(spectra.N_BANDS), np.zeros(spectra.N_BANDS))])
    index: np.ndarray | None = None  # uint8 [N]

    def add(self, material: Material) -> int:
        self.materials.append(material)
        return len(self.materials) - 1


def skin_params_for(skin_rgb: np.ndarray, device: spectra.SpectralDevice) -> spectra.SkinParams:
    """Skin whose modelled colour is closest to the identity's skin tone (melanin from the tone's
    brightness), with this person's own blood volume and oxygenation (fixed per identity)."""
    rng = np.random.default_rng(zlib.crc32(np.asarray(skin_rgb, np.float32).tobytes()))
    blood = float(np.exp(rng.uniform(np.log(0.008), np.log(0.045))))
    oxy = float(rng.uniform(0.6, 0.98))
    scatter = float(rng.uniform(0.8, 1.25))
    ref = reference_view(device)
    target = float(np.mean(skin_rgb))
    grid = np.linspace(0.005, 0.35, 60)
    lum = [float(np.mean(spectra.skin_optics(spectra.SkinParams(m, blood, oxy, scatter=scatter))[0]
                         @ ref)) for m in grid]
    melanin = float(grid[int(np.argmin(np.abs(np.array(lum) - target)))])
    return spectra.SkinParams(melanin, blood, oxy, scatter=scatter)


def skin_material(skin_rgb: np.ndarray, device: spectra.SpectralDevice) -> Material:
    refl, diff = spectra.skin_optics(skin_params_for(skin_rgb, device))
    return Material(refl, diff)


def _diffusion_weights(diffusion_mm: np.ndarray) -> np.ndarray:
    """[N_BANDS, 3]: each band's share of the unblurred and the two blurred irradiance images."""
    r = _BLUR_RADII_MM
    d = np.clip(diffusion_mm, 0.0, r[-1])
    w = np.zeros((len(d), 3))
    lo = d <= r[1]
    w[lo, 0] = 1 - d[lo] / r[1]
    w[lo, 1] = d[lo] / r[1]
    hi = ~lo
    w[hi, 1] = (r[2] - d[hi]) / (r[2] - r[1])
    w[hi, 2] = (d[hi] - r[1]) / (r[2] - r[1])
    return w


def reflectance_image(gb: GBuffer, mats: MaterialMap, ref: np.ndarray) -> np.ndarray:
    """float32 [N, N_BANDS] reflectance of every pixel."""
    n = gb.albedo.shape[0]
    out = np.zeros((n, spectra.N_BANDS), np.float32)
    index = mats.index if mats.index is not None else np.zeros(n, np.uint8)
    for k, mat in enumerate(mats.materials):
        sel = np.nonzero(index == k)[0]
        if not len(sel):
            continue
        alb = gb.albedo[sel].astype(np.float64)
        if mat.inks:
            # coverage of each ink from the colour it must print (ink density ~ −log reflectance)
            paper_rgb = mat.reflectance @ ref
            rel = np.clip(alb / paper_rgb[None, :], 1e-3, 1.0)
            coverage = np.clip(1.0 - rel ** 0.55, 0.0, 1.0)
            out[sel] = spectra.halftone_reflectance(mat.reflectance, coverage)
            continue
        base_rgb = np.maximum(mat.reflectance @ ref, 1e-4)
        ratio = alb / base_rgb[None, :]
        out[sel] = mat.reflectance[None, :] * spectra.smooth_multiplier(mat.reflectance, ratio, ref)
    return np.clip(out, 0.0, 1.0)


def _blurred_irradiance(irr: np.ndarray, translucent: np.ndarray, positions_z: np.ndarray,
                        height: int, width: int, focal_px: float) -> list[np.ndarray]:
    """Irradiance spread over each blur radius inside translucent surfaces only."""
    out = [irr]
    if not np.any(translucent):
        return out + [irr, irr]
    z = float(np.median(positions_z[translucent]))
    img = irr.reshape(height, width)
    m = translucent.reshape(height, width).astype(np.float32)
    for r_mm in _BLUR_RADII_MM[1:]:
        sigma = max(r_mm * 1e-3 * focal_px / z, 0.3)
        num = cv2.GaussianBlur(img * m, (0, 0), sigma)
        den = cv2.GaussianBlur(m, (0, 0), sigma)
        blurred = np.where(m > 0, num / np.maximum(den, 1e-6), img)
        out.append(blurred.reshape(-1).astype(np.float32))
    return out


def flash_primaries(gb: GBuffer, mats: MaterialMap, refl: np.ndarray, rays: np.ndarray,
                    display: KioskDisplay, device: spectra.SpectralDevice, height: int,
                    width: int, focal_px: float) -> tuple[np.ndarray, np.ndarray]:
    """(float32 [H, W, 3 primaries, 3 channels] flash response per unit drive of each primary,
    float32 [H, W] the mirror-image part of the full-white response)."""
    n = gb.position.shape[0]
    irr, spec = display_light(gb, rays, display)
    index = mats.index if mats.index is not None else np.zeros(n, np.uint8)
    diffusing = [k for k, m in enumerate(mats.materials) if np.any(m.diffusion_mm > 0)]
    translucent = np.isin(index, diffusing) if diffusing else np.zeros(n, bool)
    e_k = _blurred_irradiance(irr, translucent, gb.position[:, 2], height, width, focal_px)
    pc = device.primary_channel.transpose(1, 0, 2).reshape(spectra.N_BANDS, 9)  # [bands, p·c]
    out = np.zeros((n, 9), np.float32)
    for k, mat in enumerate(mats.materials):
        sel = np.nonzero(index == k)[0]
        if not len(sel):
            continue
        w = _diffusion_weights(mat.diffusion_mm)  # [bands, 3]
        r = refl[sel]
        for j in range(3):
            if not np.any(w[:, j] > 0):
                continue
            out[sel] += ((r * w[:, j][None, :].astype(np.float32)) @ pc.astype(np.float32)
                         ) * e_k[j][sel, None]
    direct = device.direct_view().reshape(9).astype(np.float32)  # specular: the surface's colour
    out += (gb.spec * spec)[:, None] * direct[None, :]
    mirror_img = mirror_image(gb, rays, display)
    out += mirror_img[:, None] * direct[None, :]
    return (out.reshape(height, width, 3, 3), mirror_img.reshape(height, width))


def ambient_spectrum(amb: Ambient, cct: float) -> np.ndarray:
    """The room light's spectrum: daylight scenes a black body (the sun and sky), offices white
    LEDs, homes incandescent bulbs, streets sodium lamps."""
    if amb.scenario == "office":
        return spectra.white_led_lamp(cct)
    if amb.scenario == "street_light":
        return spectra.sodium_lamp() if cct < 2600 else spectra.white_led_lamp(cct)
    return spectra.blackbody(cct)


def ambient_image(gb: GBuffer, refl: np.ndarray, amb: Ambient, device: spectra.SpectralDevice,
                  rays: np.ndarray, height: int, width: int) -> np.ndarray:
    """float32 [H, W, 3] radiance under the room light, per wavelength."""
    ndotl, sky, spec = amb.shading(gb, rays)
    view_dir = spectra.illuminant_response(device, ambient_spectrum(amb, amb.dir_cct))
    view_sky = spectra.illuminant_response(device, ambient_spectrum(amb, amb.sky_cct))
    out = (amb.dir_level * ndotl)[:, None] * (refl @ view_dir.astype(np.float32))
    out += (amb.sky_level * sky)[:, None] * (refl @ view_sky.astype(np.float32))
    out += spec[:, None] * view_dir.sum(axis=0).astype(np.float32)[None, :]
    out += gb.ambient_emission
    return out.reshape(height, width, 3).astype(np.float32)


def head_materials(gb: GBuffer, idx: np.ndarray, skin: int, paint: int | None,
                   mats: MaterialMap) -> None:
    """Assign a head's pixels: skin to the person's skin, a mask's painted surface to its paint."""
    assert mats.index is not None
    obj = gb.obj[idx]
    mats.index[idx[obj == SKIN]] = skin
    if paint is not None:
        mats.index[idx[obj == RESIN]] = paint


def print_materials(gb: GBuffer, idx: np.ndarray, inks: int, mats: MaterialMap) -> None:
    assert mats.index is not None
    mats.index[idx[gb.obj[idx] == PAPER]] = inks


__all__ = ["PHYSICS_MODES", "Material", "MaterialMap", "ambient_image",
           "device_spectra", "flash_primaries", "head_materials", "print_materials",
           "reference_view", "reflectance_image", "skin_material"]
