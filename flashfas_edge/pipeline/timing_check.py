"""Step 5, timing verification: the face must show *this* check's onsets, frame by frame.

``reflection_check.py`` verifies the order of the states on one clean frame per state. Here every
frame captured during the sequence is predicted from the played onsets (random state durations,
docs/SAFETY.md §3): each face row integrates the commanded light over its own exposure window
(rolling shutter, latency, the display's rise), and the face-region mean of frame f must follow
m_f = a + b · E_f in linear light. A recording of an earlier check has its transitions where *its*
durations put them; wherever a face row exposed across a moved onset, the observed mean falls off
the line by a sizeable part of a level step.

White (grey) states give one scalar level per state and one line per face. A coloured state
lights each camera channel differently (display primaries × camera channels, and the face's colour
in between), so for a coloured sequence the excitation is the commanded light per primary, E_f in
R³, and the face's linear mean per channel must follow m_f = a + B · E_f with one 3 × 3 B per
check: the same model with the scalar gain grown into the face's response matrix.

The whole face's mean is fitted, not bands of rows: a band sees every timing error of the model
(latency, the display's rise, the flash driver's timestamps) at full size, while the whole
face's mean averages it over the rolling shutter's rows. Fitting four bands apart was tried and
rejected 23 of 40 live faces on the simulated kiosk (docs/SAFETY.md §3).

The residual is measured in level steps: max_f ‖m_f − (a + B·E_f)‖ over the distance between the
two closest states' fitted responses (for white levels: b × the smallest step between levels), so
it does not depend on how bright the flash is on this face. Frames that saw the idle screen
(unknown colour) are left out.

Frame-locked checks (every onset between two frames, pipeline/challenge.py) are fitted a second
time with the room light's own change modelled: mains flicker (lamps ripple at 100 or 120 Hz;
each frame's face rows integrate it over their exposure windows, one sine and one cosine term per
check) and a linear drift. Every locked frame is clean, so what is left of a live face's residual
is mostly that ripple: the second fit leaves live faces about a quarter of the first fit's
residual, and must lie within ``max_ambient_fit_residual_steps``. The first fit still applies: on
its own the second one, with three more free terms, can absorb a timing error in a check of few
frames (docs/SAFETY.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.flash.base import FlashPlayback
from flashfas_edge.pipeline.face_region import face_crop
from flashfas_edge.pipeline.reflection_check import linearise

_ROWS = 12  # face rows sampled per frame
_SAMPLES = 12  # time samples per row's exposure window
RIPPLE_HZ = (100.0, 120.0)  # lamps on 50 Hz and on 60 Hz mains


@dataclass(frozen=True)
class TimingFit:
    residual_steps: float  # worst frame's distance from the predicted line, in level steps
    frames_used: int
    gain: float  # b: linear face response to the full flash
    frames_missing: int = 0  # frame periods in the window with no frame (dropped by the camera)
    # frame-locked checks: the worst residual with the room light's ripple and drift fitted too
    # (the better of 100 and 120 Hz); NaN where not fitted (free timing, too few frames)
    ambient_residual_steps: float = float("nan")


def missing_frames(frames: Sequence[Frame], t0_us: int, t1_us: int, period_us: float) -> int:
    """Frames that should have started in [t0_us, t1_us), one every ``period_us``, and did not: a
    camera that drops frames during the sequence leaves onsets nobody saw, and other timings then
    fit as well as the played one."""
    times = np.sort(np.asarray([f.t_start_us for f in frames], np.float64))
    times = times[(times >= t0_us) & (times < t1_us)]
    if times.size == 0:
        return int(np.ceil((t1_us - t0_us) / period_us))
    inner = np.maximum(np.round(np.diff(times) / period_us) - 1, 0).sum()
    lead = np.floor((times[0] - t0_us) / period_us)  # one period earlier was still in the window
    tail = np.floor((t1_us - 1 - times[-1]) / period_us)  # one period later was still in it
    return int(inner + max(lead, 0) + max(tail, 0))


def _excitation_at(t_us: np.ndarray, onsets_us: np.ndarray, end_us: float, levels: np.ndarray,
                   rise_us: int) -> np.ndarray:
    """Commanded light (0..1 per primary; ``levels`` [S, C]) at light times ``t_us`` → [..., C];
    NaN where the idle screen (an unknown colour) shows or is still fading out."""
    rise = float(max(rise_us, 1))
    k = np.searchsorted(onsets_us, t_us, side="right") - 1  # the state last commanded
    kc = np.clip(k, 0, len(levels) - 1)
    prev = levels[np.clip(kc - 1, 0, len(levels) - 1)]
    prog = np.clip((t_us - onsets_us[kc]) / rise, 0.0, 1.0)[..., None]
    value = prev + prog * (levels[kc] - prev)
    idle = (k < 0) | (t_us >= end_us) | ((k == 0) & (t_us < onsets_us[0] + rise))
    return np.where(idle[..., None], np.nan, value)


def commanded_light(playback: FlashPlayback) -> np.ndarray:
    """[S, C]: each state's commanded light, one luma column for a white sequence, else per
    primary (R, G, B)."""
    states = playback.schedule.states
    if _grey(playback):
        return np.array([[s.intensity * float(np.mean(s.rgb))] for s in states])
    return np.array([[s.intensity * c for c in s.rgb] for s in states], np.float64)


def _exposure_times(frame: Frame, rows: tuple[float, float], height: int) -> np.ndarray:
    """float [_ROWS, _SAMPLES]: sample times (µs) over the face rows' exposure windows."""
    row_idx = np.linspace(rows[0], rows[1], _ROWS)
    frac = (np.arange(_SAMPLES) + 0.5) / _SAMPLES
    starts = frame.t_start_us + frame.readout_us * row_idx / max(height - 1, 1)
    return starts[:, None] + frac[None, :] * frame.exposure_us


def predicted_excitation(frames: Sequence[Frame], rows: tuple[float, float], height: int,
                         playback: FlashPlayback, latency_us: int, rise_us: int) -> np.ndarray:
    """float [F, C]: mean commanded light over the face rows' exposure windows (NaN: saw idle);
    C = 1 for a white sequence, 3 (per primary) for a coloured one."""
    levels = commanded_light(playback)
    onsets = np.asarray(playback.onsets_us, np.float64) + latency_us
    end = float(playback.end_us + latency_us)
    out = np.empty((len(frames), levels.shape[1]))
    for i, f in enumerate(frames):
        t = _exposure_times(f, rows, height)
        out[i] = np.mean(_excitation_at(t, onsets, end, levels, rise_us), axis=(0, 1))
    return out


def ambient_terms(frames: Sequence[Frame], rows: tuple[float, float], height: int,
                  ripple_hz: float) -> np.ndarray:
    """float [F, 3]: per frame, the mean over its face rows' exposure windows of sin and cos of
    the ripple, and the window's mean time (s, from the frames' mean): the room light's change
    is a combination of these (its level, the ripple's amplitude and phase, the drift)."""
    out = np.empty((len(frames), 3))
    for i, f in enumerate(frames):
        t = _exposure_times(f, rows, height)
        phase = 2 * np.pi * ripple_hz * t * 1e-6
        out[i] = (np.sin(phase).mean(), np.cos(phase).mean(), t.mean() * 1e-6)
    if len(frames):
        out[:, 2] -= out[:, 2].mean()
    return out


def _grey(playback: FlashPlayback) -> bool:
    """Every state is white/grey light (equal channels): one scalar level per state."""
    return all(max(s.rgb) - min(s.rgb) < 1e-6 for s in playback.schedule.states)


def fit_timing(frames: Sequence[Frame], landmarks: np.ndarray, playback: FlashPlayback,
               latency_us: int, rise_us: int, gamma: float,
               period_us: float | None = None) -> TimingFit | None:
    """The timing fit of the frames against the playback (None: no frames). ``frames_used`` <
    N0 + 1, or ``frames_missing`` > 0 (with the camera's frame period), when the frames cannot
    verify the timing: the caller answers retry, an unverified timing never passes."""
    if not frames:
        return None
    missing = 0
    if period_us is not None:
        first = frames[0]
        t0 = int(playback.onsets_us[0]) + latency_us
        t1 = int(playback.end_us) + latency_us - first.exposure_us - first.readout_us + 1
        missing = missing_frames(frames, t0, t1, period_us)
    rows = face_crop(frames[0].image, landmarks).row_span()  # one geometry: mean landmarks
    if rows is None:
        return TimingFit(residual_steps=float("nan"), frames_used=0, gain=float("nan"),
                         frames_missing=missing)
    height = frames[0].image.shape[0]
    e = predicted_excitation(frames, rows, height, playback, latency_us, rise_us)
    keep = np.flatnonzero(np.all(np.isfinite(e), axis=1))
    if keep.size < playback.schedule.n0 + 1:  # too few frames to tell one timing from another
        return TimingFit(residual_steps=float("nan"), frames_used=int(keep.size),
                         gain=float("nan"), frames_missing=missing)
    m = np.array([linearise(face_crop(frames[int(j)].image, landmarks).mean_rgb(), gamma)
                  for j in keep])
    light = commanded_light(playback)
    residual, gain = _fit_line(e[keep], m, light)
    ambient = float("nan")
    # with the ambient terms the design has 4 + C columns: keep two frames more than that
    if playback.schedule.frame_locked and keep.size >= 6 + e.shape[1]:
        kept = [frames[int(j)] for j in keep]
        ambient = min(_fit_line(e[keep], m, light,
                                ambient_terms(kept, rows, height, hz))[0] for hz in RIPPLE_HZ)
    return TimingFit(residual_steps=residual, frames_used=int(keep.size), gain=gain,
                     frames_missing=missing, ambient_residual_steps=ambient)


def _fit_line(e: np.ndarray, m: np.ndarray, light: np.ndarray,
              extra: np.ndarray | None = None) -> tuple[float, float]:
    """(worst residual in level steps, gain): the face's linear means ``m`` [K, 3] against the
    excitation ``e`` [K, C] on one line (C = 1: their channel mean) or one 3 × 3 response;
    ``extra`` [K, E]: more terms fitted beside it (the room light's change)."""
    if e.shape[1] == 1:
        m = m.mean(axis=1, keepdims=True)
    columns = [np.ones((e.shape[0], 1)), e] + ([] if extra is None else [extra])
    design = np.concatenate(columns, axis=1)
    coef, *_ = np.linalg.lstsq(design, m, rcond=None)
    response = coef[1:1 + e.shape[1]]  # [C, channels]: the face's response per primary (or luma)
    gain = float(np.ones(response.shape[0]) @ response.mean(axis=1))  # full white's response
    fitted = light @ response  # each state's fitted response
    distinct = [(a, b) for a in range(len(light)) for b in range(a + 1, len(light))
                if not np.allclose(light[a], light[b])]
    step = min((float(np.linalg.norm(fitted[a] - fitted[b])) for a, b in distinct), default=0.0)
    if gain <= 0 or step <= 0:
        return float("inf"), gain
    residual = np.linalg.norm(m - design @ coef, axis=1) / step
    return float(residual.max()), gain
