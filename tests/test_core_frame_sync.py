"""assign_frames (docs/ARCHITECTURE.md §1 step 4): one clean frame per flash state, rolling shutter
too."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashfas_edge import _core


def _reference(times, exposure, readout, onsets, latency, duration) -> list[int]:
    chosen = []
    for s, onset in enumerate(onsets):
        start = onset + latency
        end = (onsets[s + 1] if s + 1 < len(onsets) else onset + duration) + latency
        best, best_margin = -1, -1
        for t, ft in enumerate(times):
            if ft >= start and ft + readout + exposure <= end:
                margin = min(ft - start, end - (ft + readout + exposure))
                if margin > best_margin:
                    best, best_margin = t, margin
        chosen.append(best)
    return chosen


def _assign(times, exposure, readout, onsets, latency, duration):
    return _core.assign_frames(
        np.asarray(times, np.int64),
        exposure,
        readout,
        np.asarray(onsets, np.int64),
        latency,
        duration,
    )


def test_30fps_camera_with_200ms_states_gets_the_central_frame() -> None:
    frame_period = 33_333
    times = np.arange(40) * frame_period
    onsets = 50_000 + np.arange(5) * 200_000
    got = _assign(times, 8_000, 10_000, onsets, 40_000, 200_000)
    assert got.dtype == np.int64 and got.shape == (5,)
    assert got.tolist() == _reference(
        times.tolist(), 8_000, 10_000, onsets.tolist(), 40_000, 200_000
    )
    for s, t in enumerate(got):  # each chosen exposure sits inside its state, far from the edges
        window_start = onsets[s] + 40_000
        assert window_start <= times[t] and times[t] + 18_000 <= window_start + 200_000


def test_frame_straddling_a_transition_is_never_chosen() -> None:
    # One frame per state, each starting 1 µs too early to be clean: every state is reported empty.
    onsets = np.array([0, 100_000, 200_000])
    times = onsets - 1
    assert _assign(times, 5_000, 0, onsets, 0, 100_000).tolist() == [-1, -1, -1]
    assert _assign(times + 1, 5_000, 0, onsets, 0, 100_000).tolist() == [0, 1, 2]


def test_rolling_shutter_readout_disqualifies_a_frame_global_shutter_would_keep() -> None:
    onsets = np.array([0, 20_000])
    times = np.array([2_000, 22_000])
    assert _assign(times, 10_000, 0, onsets, 0, 20_000).tolist() == [0, 1]
    assert _assign(times, 10_000, 9_000, onsets, 0, 20_000).tolist() == [-1, -1]


def test_latency_shifts_the_windows() -> None:
    onsets = np.array([0, 100_000])
    times = np.array([40_000, 90_000, 140_000, 190_000, 240_000])
    assert _assign(times, 20_000, 0, onsets, 0, 100_000).tolist() == [0, 2]
    assert _assign(times, 20_000, 0, onsets, 50_000, 100_000).tolist() == [1, 3]


def test_state_longer_than_exposure_is_required() -> None:
    onsets = np.array([0, 10_000])
    times = np.arange(0, 30_000, 1_000)
    assert _assign(times, 15_000, 0, onsets, 0, 10_000).tolist() == [-1, -1]


@settings(max_examples=80, deadline=None)
@given(
    frame_count=st.integers(0, 60),
    state_count=st.integers(1, 8),
    frame_period=st.integers(1_000, 70_000),
    jitter=st.integers(0, 3_000),
    exposure=st.integers(1, 40_000),
    readout=st.integers(0, 30_000),
    latency=st.integers(-20_000, 120_000),
    state_period=st.integers(10_000, 300_000),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_brute_force_reference(
    frame_count, state_count, frame_period, jitter, exposure, readout, latency, state_period, seed
) -> None:
    rng = np.random.default_rng(seed)
    times = np.sort(
        np.arange(frame_count) * frame_period + rng.integers(0, jitter + 1, frame_count)
    )
    onsets = np.cumsum(rng.integers(state_period // 2, state_period + 1, state_count))
    duration = int(rng.integers(1, state_period + 1))
    got = _assign(times, exposure, readout, onsets, latency, duration)
    want = _reference(times.tolist(), exposure, readout, onsets.tolist(), latency, duration)
    assert got.tolist() == want
    chosen = [t for t in want if t >= 0]
    assert len(chosen) == len(set(chosen))  # a frame never serves two states


def test_bad_timings_give_clear_errors() -> None:
    times = np.array([0, 10, 20])
    onsets = np.array([0, 100])
    with pytest.raises(ValueError, match="sorted"):
        _assign(times[::-1], 5, 0, onsets, 0, 100)
    with pytest.raises(ValueError, match="strictly increasing"):
        _assign(times, 5, 0, np.array([0, 0]), 0, 100)
    with pytest.raises(ValueError, match="must not be empty"):
        _assign(times, 5, 0, np.array([], np.int64), 0, 100)
    with pytest.raises(ValueError, match="exposure_us"):
        _assign(times, 0, 0, onsets, 0, 100)
    with pytest.raises(ValueError, match="readout_us"):
        _assign(times, 5, -1, onsets, 0, 100)
    with pytest.raises(ValueError, match="state_duration_us"):
        _assign(times, 5, 0, onsets, 0, 0)
    with pytest.raises(TypeError, match="integer"):
        _core.assign_frames(times.astype(np.float64), 5, 0, onsets, 0, 100)
    with pytest.raises(ValueError, match="shape"):
        _core.assign_frames(times.reshape(1, 3), 5, 0, onsets, 0, 100)
