"""When the light changes and when each camera row sees it: flash onsets, latency, exposure and
the rolling-shutter readout (docs/ARCHITECTURE.md §1 steps 2–4). Output: per row, how much of its
exposure
each flash state (and the idle display) contributed.
"""

from __future__ import annotations

import numpy as np

_SUBSAMPLES = 12  # time samples per row exposure window


def light_weights(t_us: np.ndarray, onsets_light_us: np.ndarray, state_duration_us: int,
                  rise_us: int) -> np.ndarray:
    """[..., N0 + 1] weights of each state (last = idle) in the display light at times t_us.

    The display moves linearly from one state to the next over ``rise_us`` (LCD response).
    """
    n0 = len(onsets_light_us)
    edges = np.concatenate([onsets_light_us, [onsets_light_us[-1] + state_duration_us]])
    t = t_us[..., None].astype(np.float64)
    rise = max(rise_us, 1)
    # progress through each edge: 0 before it, 1 once the transition has finished
    prog = np.clip((t - edges) / rise, 0.0, 1.0)  # [..., N0 + 1]
    w = np.zeros(t_us.shape + (n0 + 1,), np.float64)
    # state i is on between edge i (rising) and edge i+1 (falling)
    w[..., :n0] = prog[..., :n0] - prog[..., 1:]
    w[..., n0] = 1.0 - prog[..., 0] + prog[..., n0]
    return w


def row_windows(frame_start_us: float, height: int, exposure_us: int,
                readout_us: int) -> np.ndarray:
    """[H, S] sample times inside each row's exposure window."""
    rows = frame_start_us + readout_us * np.arange(height) / max(height - 1, 1)
    frac = (np.arange(_SUBSAMPLES) + 0.5) / _SUBSAMPLES
    return rows[:, None] + frac[None, :] * exposure_us


def row_state_weights(frame_start_us: float, height: int, exposure_us: int, readout_us: int,
                      onsets_light_us: np.ndarray, state_duration_us: int,
                      rise_us: int) -> np.ndarray:
    """[H, N0 + 1] mean light weights over each row's exposure."""
    t = row_windows(frame_start_us, height, exposure_us, readout_us)
    return light_weights(t, onsets_light_us, state_duration_us, rise_us).mean(axis=1)
