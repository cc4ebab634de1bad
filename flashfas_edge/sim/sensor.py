"""The camera's signal chain: locked exposure/gain, shot + read noise, locked white balance,
gamma, 8-bit quantisation and optional JPEG (docs/ARCHITECTURE.md §8).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from flashfas_edge.sim.device import DeviceProfile

_UNITY_SCALE = 0.25  # sensor value of radiance 1 at analog gain 1 (before exposure scaling)
_AE_TARGET = 0.25  # exposure aims the face under the brightest state at this level, then locks
MIN_EXPOSURE_US = 100  # the sensor's shortest exposure
_LUT_SIZE = 1 << 14
_NOISE_BANK_SIZE = 1 << 22  # 4 Mi unit normals (16 MB), shared by every frame of a process


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    return np.random.default_rng(0x5EED).standard_normal(_NOISE_BANK_SIZE, dtype=np.float32)


def unit_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal noise of ``shape``: a random window into a fixed bank (5× faster than
    drawing fresh normals; windows at different offsets are uncorrelated pixel by pixel)."""
    n = int(np.prod(shape))
    bank = _noise_bank()
    if n > bank.size // 2:
        return rng.standard_normal(shape, dtype=np.float32)
    start = int(rng.integers(0, bank.size - n))
    return bank[start : start + n].reshape(shape)


@functools.lru_cache(maxsize=16)
def _gamma_lut(gamma: float) -> np.ndarray:
    x = np.arange(_LUT_SIZE, dtype=np.float64) / (_LUT_SIZE - 1)
    return np.clip(x ** (1.0 / gamma) * 255.0 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class SensorState:
    """What exposure settled on before the sequence (then locked, as calibrate does)."""

    scale: float  # linear radiance → sensor value
    analog_gain: float
    exposure_us: int
    wb_gains: tuple[float, float, float] | None = None  # None: the profile's locked gains


def manual_sensor(profile: DeviceProfile, exposure_us: int, analog_gain: float,
                  wb_gains: tuple[float, float, float] | None = None) -> SensorState:
    """The sensor held at a setting chosen by hand (calibration), not by auto exposure."""
    exposure_us = max(MIN_EXPOSURE_US, int(exposure_us))
    gain = float(min(max(analog_gain, 1.0), profile.max_gain))
    base = _UNITY_SCALE * exposure_us / 8000.0
    return SensorState(scale=base * gain, analog_gain=gain, exposure_us=exposure_us,
                       wb_gains=wb_gains)


def settle_exposure(profile: DeviceProfile, face_radiance: float) -> SensorState:
    """Gain first up to the profile's maximum in dim light; in bright light a shorter exposure
    (never below 100 µs) keeps the face from clipping."""
    base = _UNITY_SCALE * profile.exposure_us / 8000.0
    needed = _AE_TARGET / max(face_radiance * base, 1e-9)
    if needed >= 1.0:
        gain = float(min(needed, profile.max_gain))
        return SensorState(scale=base * gain, analog_gain=gain, exposure_us=profile.exposure_us)
    exposure = max(MIN_EXPOSURE_US, int(round(profile.exposure_us * needed)))
    return SensorState(scale=base * exposure / profile.exposure_us, analog_gain=1.0,
                       exposure_us=exposure)


def develop(linear: np.ndarray, profile: DeviceProfile, state: SensorState,
            rng: np.random.Generator) -> np.ndarray:
    """Radiance image float32 [H, W, 3] → uint8 RGB frame as the camera would deliver it."""
    v = linear * np.float32(state.scale)
    e_per_unit = profile.full_well_e / state.analog_gain
    # shot noise (Poisson ≈ Gaussian at these counts) + read noise, in sensor units; in place,
    # the same float32 operations in the same order as the plain expressions
    sigma = np.maximum(v, 0)
    sigma /= e_per_unit
    sigma += (profile.read_noise_e / e_per_unit) ** 2
    np.sqrt(sigma, out=sigma)
    sigma *= unit_noise(rng, v.shape)
    v += sigma
    v *= np.array(state.wb_gains or profile.wb_gains, np.float32)
    # gamma + 8-bit quantisation through a 14-bit lookup table (the sensor's ADC depth)
    v *= np.float32(_LUT_SIZE - 1)
    v += np.float32(0.5)
    code = np.clip(v, 0, _LUT_SIZE - 1, out=v)
    out = _gamma_lut(profile.gamma)[code.astype(np.int32)]
    if profile.jpeg_quality is not None:
        ok, buf = cv2.imencode(".jpg", out[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY,
                                                         profile.jpeg_quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = decoded[..., ::-1].copy()
    return out
