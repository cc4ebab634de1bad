"""Consistency of a recorded session before the pipeline trusts it (``run_recorded``).

The API validates the upload's format; this checks what the pipeline relies on: shapes, dtypes,
ordering of times, and that ``order`` really sorts the flash levels brightest first (diffnorm
would otherwise subtract the wrong frames, ATR-FAS §3.2).
"""

from __future__ import annotations

import numpy as np

from flashfas_edge.data.session import Session
from flashfas_edge.flash_levels import level_colours


class SessionInvalid(ValueError):
    """A recorded session is inconsistent; the message names the field."""


def validate_session(session: Session, n0: int, family: str = "white_levels") -> None:
    frames = session.frames
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4:
        raise SessionInvalid("frames must be a uint8 array [T, H, W, 3]")
    if frames.shape[3] != 3 or frames.shape[0] < 1 or min(frames.shape[1:3]) < 16:
        raise SessionInvalid(f"frames must be [T>=1, H>=16, W>=16, 3], got {frames.shape}")
    t = frames.shape[0]
    times = np.asarray(session.frame_times_us)
    if times.shape != (t,) or not np.issubdtype(times.dtype, np.integer):
        raise SessionInvalid(f"frame_times_us must be int [{t}], got {times.dtype} {times.shape}")
    if t > 1 and np.any(np.diff(times) < 0):
        raise SessionInvalid("frame_times_us must be non-decreasing")
    if session.n0 != n0:
        raise SessionInvalid(f"the session has {session.n0} flash states, the model expects {n0}")
    rgb = np.asarray(session.flash_rgb, dtype=np.float64)
    levels = np.asarray(session.flash_intensity, dtype=np.float64)
    if rgb.shape != (n0, 3) or not np.all(np.isfinite(rgb)) or rgb.min() < 0 or rgb.max() > 1:
        raise SessionInvalid(f"flash_rgb must be [{n0}, 3] in [0, 1]")
    if not np.all(np.isfinite(levels)) or levels.min() < 0 or levels.max() > 1:
        raise SessionInvalid("flash_intensity must lie in [0, 1]")
    onsets = np.asarray(session.flash_onsets_us)
    if onsets.shape != (n0,) or not np.issubdtype(onsets.dtype, np.integer):
        raise SessionInvalid(f"flash_onsets_us must be int [{n0}]")
    if np.any(np.diff(onsets) <= 0):
        raise SessionInvalid("flash_onsets_us must be strictly increasing")
    order = np.asarray(session.order)
    if sorted(order.tolist()) != list(range(n0)):
        raise SessionInvalid(f"order must be a permutation of 0..{n0 - 1}")
    if np.any(np.diff(levels[order]) > 0):
        raise SessionInvalid("order must list the flash states from brightest to darkest")
    if family == "hue_levels":  # the model knows each level's hue: a recording must show them
        ladder = np.asarray(level_colours(family, tuple(levels[order])), dtype=np.float64)
        if not np.allclose(rgb[order], ladder, atol=1e-3):
            raise SessionInvalid("the session's flash colours are not the hue_levels ladder the "
                                 "model was trained on")
    for name in ("exposure_us", "readout_us", "state_duration_us", "latency_us"):
        value = getattr(session, name)
        if not isinstance(value, int | np.integer) or value < 0:
            raise SessionInvalid(f"{name} must be a non-negative integer")
    if session.state_duration_us <= 0:
        raise SessionInvalid("state_duration_us must be positive")
    if session.landmarks is not None:
        marks = np.asarray(session.landmarks)
        if marks.shape != (t, 5, 2) or not np.all(np.isfinite(marks)):
            raise SessionInvalid(f"landmarks must be finite float [{t}, 5, 2]")
