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


def _locked_playback(periods) -> FlashPlayback:
    """Frame-locked: states of whole frame periods, every onset 2.5 ms before a frame starts
    (in the gap after the previous frame's last row: 8 ms exposure + 20 ms readout)."""
    levels = (1.0, 0.75, 0.5, 0.25, 0.0)
    states = tuple(FlashState((1.0, 1.0, 1.0), v) for v in levels)
    durations = tuple(n * PERIOD_US for n in periods)
    schedule = FlashSchedule(states, PERIOD_US, "n", (0, 1, 2, 3, 4), durations_us=durations,
                             frame_locked=True)
    onsets = np.concatenate([[0], np.cumsum(durations)[:-1]]) + 90_000 + PERIOD_US - 2_500
    return FlashPlayback(schedule, tuple(int(t) for t in onsets),
                         int(onsets[-1] + durations[-1]))


def _rippling_frames(playback: FlashPlayback, ripple: float, hz: float = 100.0) -> list[Frame]:
    """A face lit by a lamp on 50 Hz mains (its light ripples by ``ripple`` at 100 Hz, each row
    integrating it over its own exposure) and by the played flash; a fast readout (5 ms), so the
    face rows do not average the ripple away."""
    readout_us = 5_000
    from flashfas_edge.pipeline.timing_check import ambient_terms

    frames = []
    rows = np.arange(H, dtype=np.float64)
    for k in range(20):
        t0 = 90_000 + k * PERIOD_US
        probe = Frame(k, t0, EXPOSURE_US, readout_us, np.zeros((H, W, 3), np.uint8))
        e = np.array([predicted_excitation([probe], (r, r), H, playback, 0, 1)[0, 0]
                      for r in rows])
        lamp = np.array([ambient_terms([probe], (r, r), H, hz)[0, 0] for r in rows])
        # office-like: the lamp far brighter on the face than the flash
        value = 150 * (1 + ripple * lamp) + np.where(np.isfinite(e), 60 * np.nan_to_num(e), 0)
        image = np.repeat(np.repeat(value[:, None, None], W, 1), 3, 2).round().astype(np.uint8)
        frames.append(Frame(k, t0, EXPOSURE_US, readout_us, image))
    return frames


def test_locked_frames_are_fitted_with_the_lamps_ripple_and_a_timing_one_frame_off_is_not():
    """Frame-locked, every frame is clean: what a live face leaves of the timing fit is the room
    light's ripple, which the second fit models. A recording whose third state lasted one frame
    longer (and its fourth one shorter) cannot hide in it."""
    played = _locked_playback((2, 1, 2, 2, 1))
    frames = _rippling_frames(played, ripple=0.15)
    fit = fit_timing(frames, LANDMARKS, played, latency_us=0, rise_us=1, gamma=1.0)
    assert fit is not None and fit.frames_used == 8
    assert fit.ambient_residual_steps < 0.05 < fit.residual_steps  # the ripple, modelled
    other = _locked_playback((2, 1, 3, 1, 1))
    wrong = fit_timing(frames, LANDMARKS, other, latency_us=0, rise_us=1, gamma=1.0)
    assert wrong is not None and (wrong.residual_steps > 0.5
                                  or wrong.ambient_residual_steps > 0.2), wrong
    free = _playback(lambda i: (1.0, 1.0, 1.0), (66_000, 91_000, 66_000, 116_000, 66_000))
    unlocked = fit_timing(_frames_seeing(free), LANDMARKS, free, 0, 1, 1.0)
    assert unlocked is not None and np.isnan(unlocked.ambient_residual_steps)  # free timing


def test_a_lamp_the_locked_fit_cannot_model_gets_retry_not_spoof():
    """Light that changes in a way neither fit models (here a 41 Hz ripple) leaves the first fit
    within its half step but the second above its limit: retry / challenge_unclear, never a
    spoof verdict for what may be a live face."""
    import dataclasses

    import pytest

    from flashfas_edge.pipeline.config import PipelineConfig
    from flashfas_edge.pipeline.pipeline import Pipeline
    from flashfas_edge.pipeline.rejection import CheckRejected
    from flashfas_edge.pipeline.result import Reason, Verdict

    @dataclasses.dataclass
    class _Cap:
        playback: FlashPlayback
        frames: list

    played = _locked_playback((2, 1, 2, 2, 1))
    pipeline = Pipeline.__new__(Pipeline)  # only the timing rule and its config
    pipeline.config = PipelineConfig(latency_us=0, display_rise_us=1, camera_gamma=1.0)
    pipeline._camera = None
    detail: dict = {}
    pipeline._verify_timing(_Cap(played, _rippling_frames(played, 0.15)),
                            np.stack([LANDMARKS]), {"flash_snr": 50.0}, detail)  # mains: passes
    assert detail["ambient_fit_residual_steps"] < 0.05
    odd = _Cap(played, _rippling_frames(played, 0.06, hz=41.0))
    with pytest.raises(CheckRejected) as info:
        pipeline._verify_timing(odd, np.stack([LANDMARKS]), {"flash_snr": 50.0}, {})
    assert info.value.verdict is Verdict.RETRY and info.value.reason is Reason.CHALLENGE_UNCLEAR
