"""The ring buffer's window contract (capture/frame_ring.py): a window is complete once a frame
at or after its end has arrived, or, when the caller says so, once a frame less than a period
before its end has (the pipeline's capture step: the frame after it starts outside the window)."""

from __future__ import annotations

import numpy as np
import pytest

from flashfas_edge.capture.base import CameraError, Frame
from flashfas_edge.capture.frame_ring import FrameRing

PERIOD = 33_333


def _ring(starts: list[int]) -> FrameRing:
    ring = FrameRing(16, "test camera")
    for i, t in enumerate(starts):
        ring.append(Frame(i, t, 6_000, 16_000, np.zeros((2, 2, 3), np.uint8)))
    return ring


def test_a_window_waits_for_a_frame_past_its_end_unless_told_when_it_is_complete():
    starts = [0, PERIOD, 2 * PERIOD, 3 * PERIOD]  # the next frame would start at 133 332
    ring = _ring(starts)
    t1 = 3 * PERIOD + 20_000  # the window ends 20 ms after the last frame started
    with pytest.raises(CameraError):
        ring.frames_between(0, t1, 0.05, lambda: True)  # waits for a frame ≥ t1: none comes
    ready = t1 - int(0.75 * PERIOD)
    frames = ring.frames_between(0, t1, 0.05, lambda: True, complete_at_us=ready)
    assert [f.t_start_us for f in frames] == starts
    # not yet complete: the newest frame starts before complete_at_us
    with pytest.raises(CameraError):
        _ring(starts[:3]).frames_between(0, t1, 0.05, lambda: True, complete_at_us=ready)
