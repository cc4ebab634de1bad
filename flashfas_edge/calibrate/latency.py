"""Flash-to-camera latency: when does the light the driver reports as started reach the sensor?

The surface is toggled dark → bright → dark many times (each toggle one flash, spaced by the
safety governor). Every camera row integrates the light over its own window
``[t_r, t_r + exposure]``, ``t_r = t_start + readout · r / (H − 1)`` (rolling shutter, capture/
base.py), so in the frame that first sees a change, the rows that started before it see part of
it: the row profile of that frame pins the change to well under a frame period. Per edge the
light is modelled as a ramp of the surface's rise time starting at ``onset + latency``; the
latency that best explains every row of the frames around the edge (least squares, each row
referenced to its own dark and bright level) is that edge's sample. The median over all edges is
the calibrated latency, the spread says how steady the surface and the camera clock are.

A coarse pass first finds the latency on whole frames, jointly over every toggle, within
``[0, max_latency_us]``; the dark guards before and after each toggle are longer than that, so
the idle screen never enters the frames analysed, whatever the surface shows between sequences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashfas_edge.calibrate.rig import BRIGHT, DARK, CalibrationError, Recording, Rig
from flashfas_edge.capture.base import Frame

MAX_LATENCY_US = 250_000  # longer than any display pipeline measured (sim/device.py: ≤ 80 ms)
BRIGHT_US = 200_000  # bright long enough for whole frames inside it
_COARSE_STEP_US = 1_000
_FINE_HALF_US = 25_000  # the fine search around the coarse estimate
_FINE_STEP_US = 100


@dataclass(frozen=True)
class EdgeTiming:
    """One change of the light: the reported onset, when the light really started to change, the
    first frame that saw it and that frame's first row that did."""

    rising: bool
    onset_us: int
    light_us: float
    first_frame: int
    first_row: int

    @property
    def latency_us(self) -> float:
        return self.light_us - self.onset_us


@dataclass(frozen=True)
class LatencyResult:
    edges: tuple[EdgeTiming, ...]
    toggles: int

    @property
    def samples_ms(self) -> np.ndarray:
        return np.array([e.latency_us / 1000 for e in self.edges])

    @property
    def median_us(self) -> int:
        return int(round(float(np.median([e.latency_us for e in self.edges]))))

    @property
    def spread_ms(self) -> float:
        """Interquartile range of the edge latencies, ms."""
        q1, q3 = np.percentile(self.samples_ms, [25, 75])
        return float(q3 - q1)

    @property
    def std_ms(self) -> float:
        return float(np.std(self.samples_ms))

    def summary(self) -> dict[str, object]:
        return {
            "median_ms": round(self.median_us / 1000, 2),
            "iqr_ms": round(self.spread_ms, 2),
            "std_ms": round(self.std_ms, 2),
            "edges": len(self.edges),
            "toggles": self.toggles,
            "samples_ms": [round(float(v), 2) for v in self.samples_ms],
            "first_frame_and_row": [[e.first_frame, e.first_row] for e in self.edges],
        }


def guard_us(frame_period_us: float) -> int:
    """Dark before and after the bright state: the longest latency plus two whole frames."""
    return int(MAX_LATENCY_US + 2 * frame_period_us + 20_000)


def _ramp_integral(x: np.ndarray, rise_us: float) -> np.ndarray:
    """∫₀ˣ clip(u / rise, 0, 1) du (0 for x < 0): the light a row has collected by x."""
    x = np.maximum(x, 0.0)
    if rise_us <= 0:
        return x
    return np.where(x <= rise_us, x * x / (2 * rise_us), x - rise_us / 2)


def lit_fraction(row_start_us: np.ndarray, exposure_us: float, change_us: np.ndarray,
                 rise_us: float) -> np.ndarray:
    """Share of each row's exposure after the light changed (0: none, 1: all), broadcasting
    rows against candidate change times."""
    a = row_start_us - change_us
    return (_ramp_integral(a + exposure_us, rise_us) - _ramp_integral(a, rise_us)) / exposure_us


def row_profile(frame: Frame, columns: tuple[int, int] | None = None) -> np.ndarray:
    """float [H]: mean level of each row over ``columns`` (default: the middle half of the
    frame, where the face is)."""
    w = frame.image.shape[1]
    x0, x1 = columns or (w // 4, 3 * w // 4)
    band = frame.image[:, x0:x1]
    return band.mean(axis=(1, 2), dtype=np.float64)


def _row_starts(frame: Frame) -> np.ndarray:
    h = frame.image.shape[0]
    return frame.t_start_us + frame.readout_us * np.arange(h) / max(h - 1, 1)


@dataclass
class _Toggle:
    recording: Recording
    frames: list[Frame]  # inside the analysable window
    profiles: np.ndarray  # [F, H]
    starts: np.ndarray  # [F, H] row start times

    @property
    def rise_onset(self) -> int:
        return self.recording.onsets_us[1]

    @property
    def fall_onset(self) -> int:
        return self.recording.onsets_us[2]


def _prepare(recording: Recording, max_latency_us: int,
             columns: tuple[int, int] | None) -> _Toggle | None:
    onsets = recording.onsets_us
    t0, t1 = onsets[0] + max_latency_us, recording.playback.end_us
    frames = [f for f in recording.frames
              if f.t_start_us >= t0 and f.t_start_us + f.readout_us + f.exposure_us <= t1]
    if len(frames) < 4:
        return None
    return _Toggle(recording, frames, np.stack([row_profile(f, columns) for f in frames]),
                   np.stack([_row_starts(f) for f in frames]))


def _bright_fraction(t: _Toggle, latency_us: np.ndarray, rise_us: float) -> np.ndarray:
    """[L, F, H] predicted share of bright light per candidate latency, frame and row."""
    exposure = t.frames[0].exposure_us
    rows = t.starts[None]
    lat = latency_us[:, None, None]
    up = lit_fraction(rows, exposure, t.rise_onset + lat, rise_us)
    down = lit_fraction(rows, exposure, t.fall_onset + lat, rise_us)
    return up - down


def _coarse_latency(toggles: Sequence[_Toggle], rise_us: float, max_latency_us: int) -> int:
    """Whole-frame fit, jointly over every toggle: the latency that best explains each frame's
    mean level as dark + (bright − dark) × its predicted bright share."""
    grid = np.arange(0, max_latency_us + 1, _COARSE_STEP_US, dtype=np.float64)
    cost = np.zeros(len(grid))
    for t in toggles:
        v = t.profiles.mean(axis=1)  # [F]
        p = _bright_fraction(t, grid, rise_us).mean(axis=2)  # [L, F]
        pc = p - p.mean(axis=1, keepdims=True)
        vc = v - v.mean()
        var_p = (pc**2).sum(axis=1)
        slope = np.where(var_p > 1e-12, (pc * vc).sum(axis=1) / np.maximum(var_p, 1e-12), 0.0)
        slope = np.maximum(slope, 0.0)  # more flash cannot darken the face
        resid = ((vc[None] - slope[:, None] * pc) ** 2).sum(axis=1)
        cost += resid / max(float((vc**2).sum()), 1e-9)
    return int(grid[int(np.argmin(cost))])


def _fine_edge(t: _Toggle, rising: bool, coarse_us: int, rise_us: float,
               frame_period_us: float) -> EdgeTiming | None:
    """The edge's own latency, from every row of the frames around it."""
    onset = t.rise_onset if rising else t.fall_onset
    exposure = t.frames[0].exposure_us
    span = t.frames[0].readout_us + exposure
    change = onset + coarse_us
    margin = _FINE_HALF_US + rise_us
    starts = np.array([f.t_start_us for f in t.frames], dtype=np.float64)
    before = starts + span <= change - margin  # every row done before the change
    after = starts >= change + margin  # every row after it (rise included)
    near = ~before & ~after
    # the state on each side of the edge, per row: dark then bright (rising) or the reverse
    lo_side, hi_side = (before, after) if rising else (after, before)
    if rising:  # bright frames must also lie before the falling edge
        hi_side &= starts + span <= t.fall_onset + coarse_us - margin
    else:  # and after the rising edge
        hi_side &= starts >= t.rise_onset + coarse_us + margin
    if not lo_side.any() or not hi_side.any() or not near.any():
        return None
    dark = t.profiles[lo_side].mean(axis=0)
    bright = t.profiles[hi_side].mean(axis=0)
    grid = coarse_us + np.arange(-_FINE_HALF_US, _FINE_HALF_US + 1, _FINE_STEP_US,
                                 dtype=np.float64)
    rows = t.starts[near][None]  # [1, N, H]
    frac = lit_fraction(rows, exposure, onset + grid[:, None, None], rise_us)  # [L, N, H]
    if not rising:
        frac = 1.0 - frac
    predicted = dark + (bright - dark) * frac
    cost = ((t.profiles[near][None] - predicted) ** 2).sum(axis=(1, 2))
    # Where the change falls between two frames' exposures, every latency in that gap fits
    # equally: take the middle of the flat minimum.
    best = np.flatnonzero(cost <= cost.min() + 0.01 * (cost.max() - cost.min()))
    # Between two frames no face row is exposing for up to a frame period less the exposure
    # and the face's share of the readout; wider than a period, a frame next to the edge was
    # dropped and the change is not pinned down.
    if (best[-1] - best[0]) * _FINE_STEP_US > frame_period_us:
        return None
    latency = float(grid[best].mean())
    light = onset + latency
    seen = [i for i in range(len(t.frames))
            if t.starts[i, -1] + exposure > light]  # the last row ends after the change
    first = seen[0]
    rows_seen = np.flatnonzero(t.starts[first] + exposure > light)
    return EdgeTiming(rising=rising, onset_us=int(onset), light_us=light,
                      first_frame=t.frames[first].index, first_row=int(rows_seen[0]))


def measure_latency(rig: Rig, toggles: int, rise_us: float,
                    max_latency_us: int = MAX_LATENCY_US, progress: object = None,
                    columns: tuple[int, int] | None = None) -> LatencyResult:
    """Toggle the flash ``toggles`` times and fit the latency of every edge; ``columns``: the
    face's columns (where the flash shows most), default the middle half."""
    period = rig.frame_period_us
    guard = guard_us(period)
    prepared: list[_Toggle] = []
    for k in range(toggles):
        recording = rig.play([DARK, BRIGHT, DARK], [guard, BRIGHT_US, guard])
        toggle = _prepare(recording, max_latency_us, columns)
        if toggle is not None:
            prepared.append(toggle)
        if callable(progress):
            progress(k + 1, toggles)
    if not prepared:
        raise CalibrationError("the camera delivered too few frames during the flash toggles")
    coarse = _coarse_latency(prepared, rise_us, max_latency_us)
    edges = [e for t in prepared for rising in (True, False)
             if (e := _fine_edge(t, rising, coarse, rise_us, period)) is not None]
    if len(edges) < max(2, toggles // 2):
        raise CalibrationError(
            f"the flash was seen at only {len(edges)} of {2 * toggles} edges: is the flash "
            "pointed at the face, and the face in view? (a busy machine also drops frames)")
    if np.median([e.latency_us for e in edges]) >= max_latency_us - _FINE_HALF_US:
        raise CalibrationError(f"the latency is {max_latency_us / 1000:.0f} ms or more, beyond "
                               "what calibrate measures: check the flash surface's driver")
    return LatencyResult(tuple(edges), toggles)
