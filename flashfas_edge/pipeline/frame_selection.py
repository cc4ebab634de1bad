"""Step 4, sync: one clean frame per flash state, chosen by the C++ core (``_core.assign_frames``).

A frame is clean for a state when every sensor row integrated light only while that state was on
camera (schedule + calibrated latency + exposure + rolling-shutter readout). A state with no
clean frame is reported (``retry``, ``no_clean_frame``), never filled in with a straddling frame:
a mixed frame would blend two flash levels and corrupt the differential frames (ATR-FAS §3.2).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flashfas_edge import _core
from flashfas_edge.pipeline.rejection import retry
from flashfas_edge.pipeline.result import Reason


def select_state_frames(
    frame_times_us: Sequence[int] | np.ndarray,
    exposure_us: int,
    readout_us: int,
    onsets_us: Sequence[int] | np.ndarray,
    latency_us: int,
    state_duration_us: int,
) -> np.ndarray:
    """int64 [N0]: index into the frames for each flash state (play order)."""
    times = np.ascontiguousarray(frame_times_us, dtype=np.int64)
    onsets = np.ascontiguousarray(onsets_us, dtype=np.int64)
    if times.size == 0:
        raise retry(Reason.NO_CLEAN_FRAME, frames=0, states=int(onsets.size))
    chosen = np.asarray(
        _core.assign_frames(
            times,
            int(exposure_us),
            int(readout_us),
            onsets,
            int(latency_us),
            int(state_duration_us),
        ),
        dtype=np.int64,
    )
    missing = [int(s) for s in np.flatnonzero(chosen < 0)]
    if missing:
        raise retry(
            Reason.NO_CLEAN_FRAME,
            states_without_frame=missing,
            frames=int(times.size),
            exposure_us=int(exposure_us),
            readout_us=int(readout_us),
            state_duration_us=int(state_duration_us),
        )
    return chosen
