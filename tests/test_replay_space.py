"""The replay match measurement's parts (pipeline/replay_space.py): the challenge space is the one
``draw_challenge`` draws from, an aligned replay against its own challenge is the recording
itself, and ``Pipeline.verify_frames`` passes a real recording's own challenge and refuses a
recording replayed against another order or another timing."""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from flashfas_edge.capture.base import CameraInfo, Frame
from flashfas_edge.flash.base import FlashPlayback
from flashfas_edge.pipeline.challenge import (
    ChallengeTiming,
    draw_challenge,
    free_timing,
    locked_timing,
)
from flashfas_edge.pipeline.config import ChallengeConfig, PipelineConfig
from flashfas_edge.pipeline.rejection import CheckRejected
from flashfas_edge.pipeline.replay_space import (
    challenge_space,
    pattern_of,
    play_order_of,
    replayed,
    upper_bound_95,
)

CAMERA = CameraInfo(640, 480, 30.0, 8_000, 20_000)
BUNDLE = Path(__file__).resolve().parents[1] / "engines" / "edge-default"


def test_the_space_is_what_draw_challenge_draws():
    config = ChallengeConfig()
    timing = free_timing(config, CAMERA)
    space = challenge_space(config, "white_levels", timing)
    assert len(space.play_orders) == 40 and space.timing_patterns == 3 ** 4
    assert math.isclose(1 / space.size, 1 / (40 * 81))
    orders = set(space.play_orders)
    for _ in range(300):
        drawn = draw_challenge(config, supports_colour=False, camera=CAMERA)
        order, pattern = play_order_of(drawn), pattern_of(drawn, timing)
        assert order in orders and pattern[-1] == 0 and max(pattern) < 3
        rebuilt = space.schedule(order, pattern)
        assert rebuilt.states == drawn.states and rebuilt.order == drawn.order
        assert rebuilt.durations_us == drawn.durations_us
    patterns = Counter(space.all_patterns())
    assert len(patterns) == 81 and set(patterns.values()) == {1}
    hue = challenge_space(config, "hue_levels", timing)
    assert len(hue.play_orders) == 60  # docs/SAFETY.md: 60 of the 120 hue orders are safe


def test_the_frame_locked_space_is_what_draw_challenge_draws_with_it():
    """Frame-locked timing: whole frame periods, 4 per state but the last: 40 × 4⁴ challenges,
    1 in 10 240 (docs/SAFETY.md §3)."""
    config = ChallengeConfig()
    timing = locked_timing(config, CAMERA)
    assert timing.locked and timing.base_us == timing.step_us == 33_333
    space = challenge_space(config, "white_levels", timing)
    assert len(space.play_orders) == 40 and space.timing_patterns == 4 ** 4
    assert 1 / space.size < 1e-4
    for _ in range(300):
        drawn = draw_challenge(config, supports_colour=False, camera=CAMERA, timing=timing)
        pattern = pattern_of(drawn, timing)
        assert pattern[-1] == 0 and max(pattern) < 4
        assert drawn.durations_us == space.schedule(play_order_of(drawn), pattern).durations_us
        assert all(d % 33_333 == 0 for d in drawn.durations_us)


def _recording(playback: FlashPlayback, n: int = 14) -> list[Frame]:
    t0 = playback.onsets_us[0] + 5_000
    return [Frame(i, t0 + int(i * 33_333), 8_000, 20_000,
                  np.full((4, 4, 3), i, np.uint8), {"i": i}) for i in range(n)]


def test_an_aligned_replay_against_its_own_challenge_is_the_recording():
    config = ChallengeConfig()
    space = challenge_space(config, "white_levels", ChallengeTiming(63_000, 25_000, 3))
    schedule = space.schedule(space.play_orders[3], (2, 0, 1, 2, 0))
    # the recording's onsets missed the schedule by a few ms, as a busy flash driver does
    onsets = (1_000_000, 1_113_500, 1_177_000, 1_266_000, 1_380_200)
    recorded = FlashPlayback(schedule, onsets, 1_443_700)
    frames = _recording(recorded)
    same, playback = replayed(frames, recorded, schedule, latency_us=0)
    assert playback.onsets_us == recorded.onsets_us and playback.end_us == recorded.end_us
    t1 = recorded.end_us - 8_000 - 20_000 + 1
    kept = [f for f in frames if f.t_start_us < t1]
    assert [f.t_start_us for f in same] == [f.t_start_us for f in kept]
    assert all(a.image is b.image for a, b in zip(same, kept, strict=True))
    # a longer challenge outlasts the recording: it loops, one frame period apart
    longer = space.schedule(space.play_orders[3], (2, 2, 2, 2, 0))
    more, played = replayed(frames[:8], recorded, longer, latency_us=0)
    assert played.end_us - played.onsets_us[0] > recorded.end_us - recorded.onsets_us[0]
    assert [f.meta["i"] for f in more[8:10]] == [0, 1]
    assert np.allclose(np.diff([f.t_start_us for f in more]), 33_333, atol=1)


def test_the_upper_bound_is_clopper_pearson():
    assert math.isclose(upper_bound_95(0, 200), 1 - 0.05 ** (1 / 200))
    assert math.isclose(upper_bound_95(1, 100), 0.0466, abs_tol=2e-4)  # textbook value
    assert math.isclose(upper_bound_95(3, 3800), 0.00204, abs_tol=2e-5)
    assert upper_bound_95(5, 5) == 1.0


def _hue_bundle(directory: Path) -> Path:
    """A small synthetic bundle trained, by its manifest, on the hue ladder: its scores mean
    nothing, the challenge it makes the pipeline play is the point."""
    import json

    from flashfas_edge import _core
    from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle

    folder = write_synthetic_bundle(directory, n0=5, input_size=32, challenge_family="hue_levels")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["normalisation"] = {"method": _core.NORMALISATION}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("family", ["white_levels", "hue_levels"])
def test_verify_frames_passes_the_own_challenge_and_refuses_others(family, tmp_path):
    """A real check's frames pass its own challenge and fail another order or timing: white
    levels with the trained default bundle, the hue ladder (each channel fitted on its own
    response, timing_check.py) with a bundle that asks for it."""
    if family == "white_levels" and not (BUNDLE / "manifest.json").is_file():
        pytest.skip(f"the trained default bundle is not in this checkout ({BUNDLE})")
    _sim = "the simulated kiosk is not part of this build"
    kiosk_mod = pytest.importorskip("flashfas_edge.sim.kiosk", reason=_sim)
    from flashfas_edge.face.ground_truth import GroundTruthLandmarks
    from flashfas_edge.inference.factory import create_backend
    from flashfas_edge.kiosk.recording import CheckRecording
    from flashfas_edge.pipeline.pipeline import Pipeline
    from flashfas_edge.pipeline.result import Reason
    from flashfas_edge.sim.device import PROFILES
    from flashfas_edge.sim.kiosk_camera import SimCamera
    from flashfas_edge.sim.kiosk_flash import SimFlashDriver

    kiosk = kiosk_mod.SimKiosk(profile=PROFILES[1], width=320, height=240, seed=3)
    hue = family == "hue_levels"
    recorder = CheckRecording(SimCamera(kiosk), SimFlashDriver(kiosk, colour=hue))
    config = PipelineConfig(latency_us=kiosk.latency_us)
    bundle = _hue_bundle(tmp_path) if hue else BUNDLE
    backend = create_backend(bundle, "onnxruntime", intra_op_threads=1)
    pipeline = Pipeline(recorder.camera, recorder.flash, GroundTruthLandmarks(), backend, config)
    assert pipeline.challenge_family == family
    scored = (Reason.SCORE_ABOVE_THRESHOLD, Reason.SCORE_BELOW_THRESHOLD)
    pipeline.start()
    try:
        for seed in range(40, 52):  # a busy machine may drop a frame: take the first clean check
            kiosk.set_subject(kiosk_mod.Subject(attack_type="live", scenario="office",
                                                seed=seed))
            time.sleep(0.1)
            result = pipeline.run_check()
            if result.reason in scored:  # verified, then scored by the networks
                break
        assert result.reason in scored, (result.reason, result.detail)
        assert result.detail["timing_residual_steps"] < config.gates.max_timing_residual_steps
        playback = recorder.last_playback()
        frames = recorder.take_frames()
        assert playback is not None
        _replay_own_and_others(pipeline, config, frames, playback, family,
                               recorder.camera.info())
    finally:
        pipeline.stop()


def _replay_own_and_others(pipeline, config, frames, playback, family, info):  # type: ignore[no-untyped-def]
    from flashfas_edge.pipeline.result import Reason

    timing, _ = pipeline.challenge_timing(info)
    assert timing.locked  # the simulated flash holds its timing; this camera leaves the gap
    space = challenge_space(config.challenge, family, timing)
    order, pattern = play_order_of(playback.schedule), pattern_of(playback.schedule, timing)

    def verify(challenge):
        replay_frames, played = replayed(frames, playback, challenge, config.latency_us)
        return pipeline.verify_frames(replay_frames, played)

    # refused: a mismatch; or, where the reflections fit it nearly as well or the flash is faint,
    # a retry that never reaches the networks (both count as a failed try)
    refused = {Reason.CHALLENGE_MISMATCH, Reason.CHALLENGE_UNCLEAR, Reason.LOW_FLASH_SNR}
    assert "timing_residual_steps" in verify(space.schedule(order, pattern))
    other_order = next(o for o in space.play_orders if o != order)
    with pytest.raises(CheckRejected) as info:
        verify(space.schedule(other_order, pattern))
    assert info.value.reason in refused
    # one state two steps longer or shorter: every later onset moves by two frame periods
    moved = list(pattern)
    slot = next(k for k in range(4) if pattern[k] + 2 < timing.steps or pattern[k] >= 2)
    moved[slot] = pattern[slot] + 2 if pattern[slot] + 2 < timing.steps else pattern[slot] - 2
    with pytest.raises(CheckRejected) as info:
        verify(space.schedule(order, moved))
    # (by the order check, when the clean frames of the moved states saw other levels, else by
    # the timing fit)
    assert info.value.reason in refused
