"""Timing verification (pipeline/timing_check.py) on hand-made frames: a face that followed the
played onsets fits, the same face under onsets moved by one extra state duration does not; a
colour challenge is fitted per display primary (a 3 × 3 response per face) with the same
answers. Which hue each state showed is the reflection check's to verify (a free response matrix
absorbs part of a hue swap)."""

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


# A face's linear response per camera channel (rows) to each display primary (columns): skin-like,
# red strongest, with the cross-talk of real primaries and camera filters.
SKIN = np.array([[150.0, 30.0, 10.0], [40.0, 110.0, 20.0], [15.0, 35.0, 90.0]])


def _frames_seeing(playback: FlashPlayback) -> list[Frame]:
    """Frames of a face whose brightness follows ``playback`` row by row (gamma 1): grey
    for a white sequence, through SKIN for a coloured one."""
    frames = []
    rows = np.arange(H, dtype=np.float64)
    for k in range(20):
        t0 = 90_000 + k * PERIOD_US
        probe = Frame(k, t0, EXPOSURE_US, READOUT_US, np.zeros((H, W, 3), np.uint8))
        e = np.array([predicted_excitation([probe], (r, r), H, playback, 0, 1)[0] for r in rows])
        light = np.nan_to_num(e)
        lit = 180 * np.repeat(light, 3, 1) if e.shape[1] == 1 else light @ SKIN.T
        value = np.where(np.isfinite(e).all(axis=1)[:, None], 40 + lit, 40)
        image = np.repeat(value[:, None, :], W, 1).round().astype(np.uint8)
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


HUES = ((1.0, 1.0, 1.0), (1.0, 0.55, 0.25), (0.25, 1.0, 0.35), (0.3, 0.45, 1.0), (0, 0, 0))


def test_a_colour_challenge_is_fitted_per_primary_and_moved_onsets_do_not_fit():
    played = _playback(lambda i: HUES[i], (66_000, 91_000, 66_000, 116_000, 66_000))
    frames = _frames_seeing(played)
    fit = fit_timing(frames, LANDMARKS, played, latency_us=0, rise_us=1, gamma=1.0)
    assert fit is not None and fit.residual_steps < 0.2, fit
    assert fit.gain > 0
    other = _playback(lambda i: HUES[i], (116_000, 66_000, 91_000, 66_000, 66_000))
    wrong = fit_timing(frames, LANDMARKS, other, latency_us=0, rise_us=1, gamma=1.0)
    assert wrong is not None and wrong.residual_steps > 0.5, wrong


def test_too_few_frames_to_verify_the_timing_is_reported_not_passed():
    """A starved camera (frames lost) must not switch the timing check off: the fit says how
    few frames it had, and the pipeline answers retry instead of passing on the order alone."""
    grey = lambda i: (1.0, 1.0, 1.0)  # noqa: E731
    played = _playback(grey, (66_000, 91_000, 66_000, 116_000, 66_000))
    frames = _frames_seeing(played)[::4]  # most frames lost
    fit = fit_timing(frames, LANDMARKS, played, latency_us=0, rise_us=1, gamma=1.0)
    assert fit is not None and fit.frames_used < played.schedule.n0 + 1
    assert np.isnan(fit.residual_steps)


def test_a_frame_dropped_mid_sequence_is_counted_so_the_timing_is_not_verified():
    """A dropped frame leaves an onset nobody saw, and other timings then fit as well as the
    played one (scripts/measure_replay_space.py found them): the fit counts the missing periods
    and the pipeline answers retry."""
    grey = lambda i: (1.0, 1.0, 1.0)  # noqa: E731
    played = _playback(grey, (66_000, 91_000, 66_000, 116_000, 66_000))
    frames = _frames_seeing(played)
    whole = fit_timing(frames, LANDMARKS, played, 0, 1, 1.0, period_us=PERIOD_US)
    assert whole is not None and whole.frames_missing == 0
    dropped = frames[:7] + frames[8:]
    fit = fit_timing(dropped, LANDMARKS, played, 0, 1, 1.0, period_us=PERIOD_US)
    assert fit is not None and fit.frames_missing == 1
    assert fit.residual_steps < 0.2  # the frames left still fit: only the gap gives it away


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
    pipeline._camera = None  # a recording's frames: no frame period to check gaps against
    cap = _Cap(played, _frames_seeing(played)[::4])
    with pytest.raises(CheckRejected) as info:
        pipeline._verify_timing(cap, np.stack([LANDMARKS]), {"flash_snr": 50.0}, {})
    assert info.value.verdict is Verdict.RETRY and info.value.reason is Reason.NO_CLEAN_FRAME
    full = _Cap(played, _frames_seeing(played))
    pipeline._verify_timing(full, np.stack([LANDMARKS]), {"flash_snr": 50.0}, {})  # passes


def test_a_timing_just_past_its_limit_is_unclear_and_far_past_it_a_mismatch():
    """Live faces' timing error reaches 0.5–0.9 steps about once in 40 checks: retry /
    challenge_unclear up to max_timing_residual_for_retry, spoof beyond."""
    import dataclasses

    import pytest

    from flashfas_edge.pipeline.config import PipelineConfig
    from flashfas_edge.pipeline.pipeline import Pipeline
    from flashfas_edge.pipeline.rejection import CheckRejected
    from flashfas_edge.pipeline.result import Reason, Verdict

    grey = lambda i: (1.0, 1.0, 1.0)  # noqa: E731
    played = _playback(grey, (66_000, 91_000, 66_000, 116_000, 66_000))
    frames = _frames_seeing(played)
    residual = fit_timing(frames, LANDMARKS, played, 0, 1, 1.0).residual_steps  # type: ignore[union-attr]

    @dataclasses.dataclass
    class _Cap:
        playback: FlashPlayback
        frames: list

    pipeline = Pipeline.__new__(Pipeline)
    pipeline._camera = None
    for limit, retry_limit, expected in ((residual / 2, residual * 2, Verdict.RETRY),
                                         (residual / 4, residual / 2, Verdict.SPOOF)):
        pipeline.config = PipelineConfig(latency_us=0, display_rise_us=1, camera_gamma=1.0,
                                         gates={"max_timing_residual_steps": limit,
                                                "max_timing_residual_for_retry": retry_limit})
        with pytest.raises(CheckRejected) as info:
            pipeline._verify_timing(_Cap(played, frames), np.stack([LANDMARKS]),
                                    {"flash_snr": 50.0}, {})
        want = Reason.CHALLENGE_UNCLEAR if expected is Verdict.RETRY else Reason.CHALLENGE_MISMATCH
        assert (info.value.verdict, info.value.reason) == (expected, want)
