"""Ambient flicker from mains lighting, from frame statistics alone.

Lamps on 50 Hz mains ripple at 100 Hz, on 60 Hz mains at 120 Hz. A 30 fps camera samples whole
frames far too slowly to see that directly: frame means alias 100 Hz to 10 Hz and 120 Hz to 0 Hz
(120 = 4 × 30, the ripple's phase is the same in every frame, a constant). Two things recover the
true frequency:

- **Every row is its own sample.** A rolling shutter starts row r ``readout · r / (H − 1)`` after
  the first, so within one frame the rows sample the light every ~30 µs: the ripple shows as
  horizontal bands, ~1.6 per 16 ms readout at 100 Hz, ~1.9 at 120 Hz. The fit below uses every
  row's own exposure time, so it sees 100 and 120 Hz as the different frequencies they are.
- **Two exposures.** Where the bands stand still from frame to frame (the 120 Hz case), they are
  indistinguishable from the scene's own rows; changing the exposure by ~a quarter ripple
  period moves their phase (the row integrates ``[t_r, t_r + E]``), the scene stays: half the
  frames are taken at a second exposure, and each half gets its own phase in the fit.

Model, per frame f and row r: the row's level over the frame's mean, minus that row's mean over
all frames, is ``c_f + a_g cos(2π F t) + b_g sin(2π F t)`` with t the row's mid-exposure time and
g the exposure group, on linear light (levels through the camera's gamma, so that the two
exposures scale the scene alike). The amplitude at F = 100 and 120 Hz must stand out from the
same fit at control frequencies whose alias at the frame rate differs from both (the noise
floor), and must be the largest of its alias family (F ± fps: frames alone cannot tell those
apart, the rows can). The amplitude seen is divided by the exposure's attenuation, |sinc(F · E)|,
to give the light's own modulation depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashfas_edge.capture.base import Frame

MAINS_RIPPLE_HZ = (100.0, 120.0)  # 50 Hz and 60 Hz mains
_SCAN_HZ = tuple(float(f) for f in range(60, 181, 5))
DETECT_RATIO = 5.0  # ripple amplitude over the median control amplitude
DETECT_MIN = 0.005  # and at least 0.5 % of the light as the camera sees it (less is harmless)


@dataclass(frozen=True)
class FlickerResult:
    amplitudes: dict[float, float]  # relative amplitude seen, by frequency (Hz)
    ripple_hz: float | None  # detected ripple frequency; None: no mains flicker seen
    seen_modulation: float  # relative amplitude in the frames (after exposure averaging)
    light_modulation: float | None  # the light's own depth (seen / exposure attenuation)
    frames: int

    @property
    def mains_hz(self) -> float | None:
        return None if self.ripple_hz is None else self.ripple_hz / 2

    def summary(self) -> dict[str, object]:
        return {
            "mains_hz": self.mains_hz,
            "ripple_hz": self.ripple_hz,
            "seen_modulation": round(self.seen_modulation, 5),
            "light_modulation": None if self.light_modulation is None
            else round(self.light_modulation, 5),
            "amplitudes": {f"{k:g}": round(v, 6) for k, v in sorted(self.amplitudes.items())},
            "frames": self.frames,
        }


def _fold(hz: float, fps: float) -> float:
    """Where ``hz`` lands when sampled once per frame (0 … fps / 2)."""
    r = hz % fps
    return min(r, fps - r)


def _band(frame: Frame) -> np.ndarray:
    w = frame.image.shape[1]
    return frame.image[:, w // 4: 3 * w // 4]


def _linear_rows(frame: Frame, lut: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """float [H]: mean linear light of each row's valid pixels, middle half of the frame."""
    lin = lut[_band(frame)].sum(axis=2) * valid
    return lin.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)


def _samples(groups: Sequence[Sequence[Frame]], gamma: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(relative residual, time s, frame id, group id), one per row of every frame."""
    values, times, frame_ids, group_ids = [], [], [], []
    profiles = []
    lut = np.power(np.arange(256) / 255.0, gamma)
    # Pixels clipped (or black) in any frame do not scale with the light: left out everywhere,
    # or the two exposures would differ by the scene's own structure.
    valid = np.ones(_band(groups[0][0]).shape[:2], bool)
    for frames in groups:
        for frame in frames:
            band = _band(frame)
            valid &= (band.max(axis=2) < 245) & (band.min(axis=2) > 4)
    for g, frames in enumerate(groups):
        for frame in frames:
            p = _linear_rows(frame, lut, valid)
            profiles.append((g, frame, p / max(float(p.mean()), 1e-6)))
    if not profiles:
        raise ValueError("no frames")
    reference = np.mean([p for _, _, p in profiles], axis=0)  # the scene's own rows
    for k, (g, frame, p) in enumerate(profiles):
        h = len(p)
        t = (frame.t_start_us + frame.readout_us * np.arange(h) / max(h - 1, 1)
             + frame.exposure_us / 2) * 1e-6
        values.append(p - reference)
        times.append(t)
        frame_ids.append(np.full(h, k))
        group_ids.append(np.full(h, g))
    return (np.concatenate(values), np.concatenate(times), np.concatenate(frame_ids),
            np.concatenate(group_ids))


def _demean_by(x: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """x minus its mean within each id (the per-frame offset c_f, projected out)."""
    sums = np.bincount(ids, weights=x)
    counts = np.bincount(ids)
    return x - (sums / np.maximum(counts, 1))[ids]


def _amplitude(y: np.ndarray, t: np.ndarray, frame_ids: np.ndarray, group_ids: np.ndarray,
               hz: float) -> float:
    """Least-squares ripple amplitude at ``hz``, its own phase per exposure group, the
    amplitudes of the groups averaged."""
    amps = []
    for g in np.unique(group_ids):
        sel = group_ids == g
        cos = _demean_by(np.cos(2 * np.pi * hz * t[sel]), frame_ids[sel])
        sin = _demean_by(np.sin(2 * np.pi * hz * t[sel]), frame_ids[sel])
        design = np.stack([cos, sin], axis=1)
        coef, *_ = np.linalg.lstsq(design, y[sel], rcond=None)
        amps.append(float(np.hypot(*coef)))
    return float(np.mean(amps))


def measure_flicker(groups: Sequence[Sequence[Frame]], fps: float, gamma: float
                    ) -> FlickerResult:
    """Frames of a steady (dark) flash state, in groups taken at different exposures."""
    y, t, frame_ids, group_ids = _samples(groups, gamma)
    y = _demean_by(y, frame_ids)
    amplitudes = {hz: _amplitude(y, t, frame_ids, group_ids, hz) for hz in _SCAN_HZ}
    folds = [_fold(hz, fps) for hz in MAINS_RIPPLE_HZ]
    controls = [hz for hz in _SCAN_HZ if all(abs(_fold(hz, fps) - f) >= 4 for f in folds)]
    floor = float(np.median([amplitudes[hz] for hz in controls])) if controls else 0.0
    best = max(MAINS_RIPPLE_HZ, key=lambda hz: amplitudes[hz])
    seen = amplitudes[best]
    twins = [hz for hz in _SCAN_HZ if hz != best
             and abs(_fold(hz, fps) - _fold(best, fps)) < 1.0]
    detected = (seen >= DETECT_MIN and seen >= DETECT_RATIO * max(floor, 1e-9)
                and all(seen >= amplitudes[hz] for hz in twins))
    light = None
    if detected:
        exposures = [frames[0].exposure_us * 1e-6 for frames in groups if frames]
        attenuation = float(np.mean([abs(np.sinc(best * e)) for e in exposures]))
        light = seen / attenuation if attenuation > 0.05 else None
    n = sum(len(f) for f in groups)
    return FlickerResult(amplitudes, best if detected else None, seen if detected else 0.0,
                         light, n)
