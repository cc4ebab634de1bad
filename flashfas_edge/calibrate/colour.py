"""Colour response and flash SNR: how the camera sees each flash state on the face.

The challenge's white levels are played as one rising ramp (dark first; a monotone ramp is a
single luminance change for the flash limits), then, where the surface shows colour, each primary
alone after dark. In linear light the face's response to a state s = intensity × rgb is
M · s (ATR-FAS §3.2, Lambertian, what challenge verification models): column j of the 3 × 3
mixing matrix M is the response to primary j; each state's gain is its measured response over
M · s (1 = the surface and camera are linear there). A white-only surface has no primaries to
separate, so its gains are against the full white's response.

The flash SNR is the pipeline's own measure (pipeline/flash_gates.py): the range of the face mean
over the states, in camera levels, over the per-pixel noise of the darkest state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashfas_edge.calibrate.exposure import FaceStats, face_stats
from flashfas_edge.calibrate.rig import DARK, WHITE, CalibrationError, Rig
from flashfas_edge.config import ColourResponse, ColourState
from flashfas_edge.flash.base import FlashState

STATE_US = 190_000
_SETTLE_US = 15_000
PRIMARIES = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))


@dataclass(frozen=True)
class StateMeasurement:
    state: FlashState
    stats: FaceStats

    @property
    def luma_dl(self) -> float:
        return self.stats.mean_dl


@dataclass(frozen=True)
class ColourResult:
    levels: tuple[StateMeasurement, ...]  # dark first, then the ramp upwards
    primaries: tuple[StateMeasurement, ...]  # R, G, B at full intensity; empty: white only
    dark_for_primaries: FaceStats | None
    response: ColourResponse

    @property
    def response_dl(self) -> float:
        luma = [m.luma_dl for m in self.levels]
        return float(max(luma) - min(luma))

    @property
    def noise_dl(self) -> float:
        return self.levels[0].stats.noise_dl

    @property
    def flash_snr(self) -> float:
        return self.response_dl / self.noise_dl if self.noise_dl > 0 else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "flash_snr": round(self.flash_snr, 2),
            "flash_response_dl": round(self.response_dl, 2),
            "noise_dl": round(self.noise_dl, 3),
            "levels": [{"intensity": m.state.intensity, "face_dl": round(m.luma_dl, 2)}
                       for m in self.levels],
        }


def _measure(rig: Rig, states: Sequence[FlashState], latency_us: int, points: np.ndarray,
             gamma: float) -> list[FaceStats]:
    recording = rig.play(states, [STATE_US] * len(states), tail_us=latency_us)
    out = []
    for slot in range(len(states)):
        frames = recording.frames_inside(slot, latency_us, _SETTLE_US)
        if not frames:
            raise CalibrationError("the camera delivered no whole frame inside a flash state "
                                   "(a busy machine drops frames): run again")
        out.append(face_stats(frames, points, gamma))
    return out


def _rounded(v: np.ndarray) -> tuple[float, float, float]:
    return (round(float(v[0]), 6), round(float(v[1]), 6), round(float(v[2]), 6))


def _response(stats: FaceStats, dark: FaceStats) -> np.ndarray:
    return np.array(stats.mean_rgb_linear) - np.array(dark.mean_rgb_linear)


def measure_colour(rig: Rig, latency_us: int, levels: Sequence[float], points: np.ndarray,
                   gamma: float) -> ColourResult:
    """Play the ramp (and the primaries where the surface shows colour) and fit the response."""
    ramp = [DARK] + [FlashState(WHITE, float(v)) for v in sorted(levels) if v > 0]
    level_stats = _measure(rig, ramp, latency_us, points, gamma)
    measured = tuple(StateMeasurement(s, st) for s, st in zip(ramp, level_stats, strict=True))
    dark = level_stats[0]
    primaries: tuple[StateMeasurement, ...] = ()
    primary_dark: FaceStats | None = None
    matrix: np.ndarray | None = None
    if rig.flash.supports_colour():
        columns, measured_primaries = [], []
        for rgb in PRIMARIES:
            state = FlashState(rgb, 1.0)
            dark_stats, lit = _measure(rig, [DARK, state], latency_us, points, gamma)
            primary_dark = dark_stats
            columns.append(_response(lit, dark_stats))
            measured_primaries.append(StateMeasurement(state, lit))
        matrix = np.stack(columns, axis=1)  # column j: response to primary j
        primaries = tuple(measured_primaries)
    full_white = _response(level_stats[-1], dark)
    states = []
    for m in measured[1:]:
        response = _response(m.stats, dark)
        excitation = np.array(m.state.rgb) * m.state.intensity
        predicted = matrix @ excitation if matrix is not None else full_white * m.state.intensity
        norm = float(predicted @ predicted)
        gain = float(response @ predicted / norm) if norm > 0 else None
        states.append(ColourState(rgb=m.state.rgb, intensity=m.state.intensity,
                                  response=_rounded(response),
                                  gain=None if gain is None else round(gain, 4)))
    for m in primaries:
        assert matrix is not None and primary_dark is not None
        response = _response(m.stats, primary_dark)
        states.append(ColourState(rgb=m.state.rgb, intensity=1.0,
                                  response=_rounded(response),
                                  gain=1.0))
    shown_matrix = None if matrix is None else tuple(
        tuple(round(float(v), 6) for v in row) for row in matrix)
    return ColourResult(measured, primaries, primary_dark,
                        ColourResponse(mixing_matrix=shown_matrix,  # type: ignore[arg-type]
                                       states=tuple(states), region="face"))
