"""Step 5, timing verification: the face must show *this* check's onsets, frame by frame.

``reflection_check.py`` verifies the order of the states on one clean frame per state. Here every
frame captured during the sequence is predicted from the played onsets (random state durations,
docs/SAFETY.md §3): each face row integrates the commanded light over its own exposure window
(rolling shutter, latency, the display's rise), and the face-region mean of frame f must follow
m_f = a + b · E_f in linear light. A recording of an earlier check has its transitions where *its*
durations put them; wherever a face row exposed across a moved onset, the observed mean falls off
the line by a sizeable part of a level step.

The model is one scalar light level per state, which holds for white (grey) states. A colour
challenge (``colour_palette``, off by default) lights each channel of the face differently, so the
scalar line does not hold for it; its states are verified per channel by the reflection check, and
:func:`fit_timing` returns None (nothing verified here).

The residual is measured in level steps: max_f |m_f − (a + b·E_f)| / (b · smallest step between
commanded levels), so it does not depend on how bright the flash is on this face. Frames that saw
the idle screen (unknown colour) are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.flash.base import FlashPlayback
from flashfas_edge.pipeline.face_region import face_crop, interocular_px
from flashfas_edge.pipeline.reflection_check import linearise

_ROWS = 12  # face rows sampled per frame
_SAMPLES = 12  # time samples per row's exposure window


@dataclass(frozen=True)
class TimingFit:
    residual_steps: float  # worst frame's distance from the predicted line, in level steps
    frames_used: int
    gain: float  # b: linear face response to the full flash


def face_rows(landmarks: np.ndarray, height: int) -> tuple[float, float]:
    """Top and bottom sensor rows of the face ellipse (face_region.py's proportions)."""
    iod = max(interocular_px(landmarks), 1.0)
    centre_y = float(landmarks[:, 1].mean()) - 0.15 * iod
    top, bottom = centre_y - 1.25 * iod, centre_y + 1.25 * iod
    return max(top, 0.0), min(bottom, height - 1.0)


def _excitation_at(t_us: np.ndarray, onsets_us: np.ndarray, end_us: float, levels: np.ndarray,
                   rise_us: int) -> np.ndarray:
    """Commanded light (luma, 0..1) at light times ``t_us``; NaN where the idle screen (an unknown
    colour) shows or is still fading out."""
    rise = float(max(rise_us, 1))
    k = np.searchsorted(onsets_us, t_us, side="right") - 1  # the state last commanded
    kc = np.clip(k, 0, len(levels) - 1)
    prev = levels[np.clip(kc - 1, 0, len(levels) - 1)]
    prog = np.clip((t_us - onsets_us[kc]) / rise, 0.0, 1.0)
    value = prev + prog * (levels[kc] - prev)
    idle = (k < 0) | (t_us >= end_us) | ((k == 0) & (t_us < onsets_us[0] + rise))
    return np.where(idle, np.nan, value)


def predicted_excitation(frames: Sequence[Frame], rows: tuple[float, float], height: int,
                         playback: FlashPlayback, latency_us: int, rise_us: int) -> np.ndarray:
    """float [F]: mean commanded light over the face rows' exposure windows (NaN: saw idle)."""
    schedule = playback.schedule
    levels = np.array([s.intensity * float(np.mean(s.rgb)) for s in schedule.states])
    onsets = np.asarray(playback.onsets_us, np.float64) + latency_us
    end = float(playback.end_us + latency_us)
    row_idx = np.linspace(rows[0], rows[1], _ROWS)
    frac = (np.arange(_SAMPLES) + 0.5) / _SAMPLES
    out = np.empty(len(frames))
    for i, f in enumerate(frames):
        starts = f.t_start_us + f.readout_us * row_idx / max(height - 1, 1)
        t = starts[:, None] + frac[None, :] * f.exposure_us
        out[i] = float(np.mean(_excitation_at(t, onsets, end, levels, rise_us)))
    return out


def _grey(playback: FlashPlayback) -> bool:
    """Every state is white/grey light (equal channels): one scalar level per state."""
    return all(max(s.rgb) - min(s.rgb) < 1e-6 for s in playback.schedule.states)


def fit_timing(frames: Sequence[Frame], landmarks: np.ndarray, playback: FlashPlayback,
               latency_us: int, rise_us: int, gamma: float) -> TimingFit | None:
    """The timing fit of the frames against the playback; None for a coloured sequence (not
    verified here: the fit is per luminance); ``frames_used`` < N0 + 1 when too few frames saw
    only the sequence to verify it (the caller answers retry: an unverified timing never passes).
    """
    if not frames or not _grey(playback):
        return None
    height = frames[0].image.shape[0]
    rows = face_rows(landmarks, height)
    e = predicted_excitation(frames, rows, height, playback, latency_us, rise_us)
    keep = np.flatnonzero(np.isfinite(e))
    if keep.size < playback.schedule.n0 + 1:  # too few frames to tell one timing from another
        return TimingFit(residual_steps=float("nan"), frames_used=int(keep.size),
                         gain=float("nan"))
    m = np.array([
        float(linearise(face_crop(frames[int(i)].image, landmarks).mean_rgb(), gamma).mean())
        for i in keep
    ])
    ek = e[keep]
    design = np.stack([np.ones_like(ek), ek], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, m, rcond=None)
    levels = sorted({s.intensity * float(np.mean(s.rgb)) for s in playback.schedule.states})
    step = min((y - x for x, y in zip(levels, levels[1:], strict=False)), default=1.0)
    if b <= 0 or step <= 0:
        return TimingFit(residual_steps=float("inf"), frames_used=int(keep.size), gain=float(b))
    residual = np.abs(m - (a + b * ek)) / (b * step)
    return TimingFit(residual_steps=float(residual.max()), frames_used=int(keep.size),
                     gain=float(b))
