"""Timing verification (pipeline/timing_check.py) on hand-made frames: a face that followed the
played onsets fits, the same face under onsets moved by one extra state duration does not, and a
colour challenge (one scalar level per state does not hold) is left to the per-channel check."""

from __future__ import annotations

import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.flash.base import FlashPlayback, FlashSchedule, FlashState
from flashfas_edge.pipeline.timing_check import fit_timing, predicted_excitation

H, W = 120, 160
LANDMARKS = np.array([[60, 50], [100, 50], [80, 70], [66, 90], [94, 90]], np.float32)
EXPOSURE_US, READOUT_US, PERIOD_US = 8_000, 20_000, 33_333


def _playback(rgb_of, durations_us) -> FlashPlayback:
    levels = (1.0, 0.75, 0.5, 0.25, 0.0)
    states = tuple(FlashState(rgb_of(i), v) for i, v in enumerate(levels))
    schedule = FlashSchedule(states, min(durations_us), "n", (0, 1, 2, 3, 4),
                             durations_us=tuple(durations_us))
    onsets = np.concatenate([[0], np.cumsum(durations_us)[:-1]]).astype(int) + 100_000
    return FlashPlayback(schedule, tuple(int(t) for t in onsets), int(onsets[-1] +
                                                                      durations_us[-1]))


def _frames_seeing(playback: FlashPlayback) -> list[Frame]:
    """Frames of a grey face whose brightness follows ``playback`` row by row (gamma 1)."""
    frames = []
    for k in range(20):
        t0 = 90_000 + k * PERIOD_US
        probe = Frame(k, t0, EXPOSURE_US, READOUT_US, np.zeros((H, W, 3), np.uint8))
        rows = np.arange(H, dtype=np.float64)
        e = np.array([predicted_excitation([probe], (r, r), H, playback, 0, 1)[0] for r in rows])
        value = np.where(np.isfinite(e), 40 + 180 * np.nan_to_num(e), 40)
        image = np.repeat(np.repeat(value[:, None, None], W, 1), 3, 2).round().astype(np.uint8)
        frames.append(Frame(k, t0, EXPOSURE_US, READOUT_US, image))
    return frames


def test_a_face_that_saw_the_played_onsets_fits_and_moved_onsets_do_not():
    grey = lambda i: (1.0, 1.0, 1.0)  # noqa: E731
    played = _playback(grey, (66_000, 91_000, 66_000, 116_000, 66_000))
    frames = _frames_seeing(played)
    fit = fit_timing(frames, LANDMARKS, played, latency_us=0, rise_us=1, gamma=1.0)
    assert fit is not None and fit.residual_steps < 0.2, fit
    other = _playback(grey, (116_000, 66_000, 91_000, 66_000, 66_000))  # an earlier challenge
    wrong = fit_timing(frames, LANDMARKS, other, latency_us=0, rise_us=1, gamma=1.0)
    assert wrong is not None and wrong.residual_steps > 0.5, wrong


def test_a_colour_challenge_is_not_judged_by_the_scalar_timing_model():
    palette = ((1.0, 0.3, 0.3), (0.3, 1.0, 0.3), (0.3, 0.3, 1.0), (1, 1, 1), (1, 1, 1))
    played = _playback(lambda i: palette[i], (66_000,) * 5)
    frames = _frames_seeing(_playback(lambda i: (1.0, 1.0, 1.0), (66_000,) * 5))
    assert fit_timing(frames, LANDMARKS, played, latency_us=0, rise_us=1, gamma=1.0) is None


def test_too_few_frames_to_verify_the_timing_is_reported_not_passed():
    """A starved camera (frames lost) must not switch the timing check off: the fit says how
    few frames it had, and the pipeline answers retry instead of passing on the order alone."""
    grey = lambda i: (1.0, 1.0, 1.0)  # noqa: E731
    played = _playback(grey, (66_000, 91_000, 66_000, 116_000, 66_000))
    frames = _frames_seeing(played)[::4]  # most frames lost
    fit = fit_timing(frames, LANDMARKS, played, latency_us=0, rise_us=1, gamma=1.0)
    assert fit is not None and fit.frames_used < played.schedule.n0 + 1
    assert np.isnan(fit.residual_steps)


def test_the_pipeline_answers_retry_when_the_timing_cannot_be_verified():
    import dataclasses

    import pytest

    from flashfas_edge.pipeline.config import PipelineConfig
    from flashfas_edge.pipeline.pipeline import Pipeline
    from flashfas_edge.pipeline.rejection import CheckRejected
    from flashfas_edge.pipeline.result import Reason, Verdict

    grey = lambda i: (1.0, 1.0, 1.0)  # noqa: E731
    played = _playback(grey, (66_000, 91_000, 66_000, 116_000, 66_000))

    @dataclasses.dataclass
    class _Cap:
        playback: FlashPlayback
        frames: list

    pipeline = Pipeline.__new__(Pipeline)  # only the timing rule and its config
    pipeline.config = PipelineConfig(latency_us=0, display_rise_us=1, camera_gamma=1.0)
    cap = _Cap(played, _frames_seeing(played)[::4])
    with pytest.raises(CheckRejected) as info:
        pipeline._verify_timing(cap, np.stack([LANDMARKS]), {"flash_snr": 50.0}, {})
    assert info.value.verdict is Verdict.RETRY and info.value.reason is Reason.NO_CLEAN_FRAME
    full = _Cap(played, _frames_seeing(played))
    pipeline._verify_timing(full, np.stack([LANDMARKS]), {"flash_snr": 50.0}, {})  # passes
