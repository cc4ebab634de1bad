"""run_check on the simulated kiosk (real-time camera thread + flash driver, rendered scenes):
every quality gate has a scene that triggers it and gets ``retry`` with its reason; a replayed
recording is a ``challenge_mismatch``; a flash that never shows is never live.

The model here is a random-weight bundle (real ONNX Runtime): these tests are about the gates and
the plumbing. Liveness decisions with the trained bundle are in test_pipeline_sim_decisions.py.
Frames are 320×240 so the simulated camera keeps its 30 fps on a loaded 2-core machine.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from sim_bundles import random_weight_bundle

from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.face.mtcnn_landmarks import MtcnnLandmarks
from flashfas_edge.inference.ort_backend import OrtBackend
from flashfas_edge.pipeline.challenge import draw_challenge
from flashfas_edge.pipeline.config import ChallengeConfig, PipelineConfig
from flashfas_edge.pipeline.pipeline import Pipeline
from flashfas_edge.pipeline.result import CheckResult, Reason, Verdict
from flashfas_edge.sim.device import PROFILES

_sim = "the simulated kiosk is not part of this build"
SimCamera = pytest.importorskip("flashfas_edge.sim.kiosk_camera", reason=_sim).SimCamera
SimFlashDriver = pytest.importorskip("flashfas_edge.sim.kiosk_flash", reason=_sim).SimFlashDriver
_kiosk = pytest.importorskip("flashfas_edge.sim.kiosk", reason=_sim)
SimKiosk, Subject = _kiosk.SimKiosk, _kiosk.Subject

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    return _random_backend(tmp_path_factory.mktemp("bundle"), "white_levels")


@pytest.fixture(scope="module")
def colour_backend(tmp_path_factory):
    """A bundle that says it was trained on colour challenges (the pipeline checks it does)."""
    return _random_backend(tmp_path_factory.mktemp("colour-bundle"), "colour_levels")


def _random_backend(directory, family):
    return OrtBackend(random_weight_bundle(directory, family), intra_op_threads=1)


@pytest.fixture(scope="module")
def kiosk():
    return SimKiosk(profile=PROFILES[1], width=320, height=240, seed=5)


@pytest.fixture(scope="module")
def devices(kiosk):
    camera, flash = SimCamera(kiosk), SimFlashDriver(kiosk, colour=False)
    camera.start()
    flash.start()
    yield camera, flash
    flash.stop()
    camera.stop()


def _pipeline(kiosk, devices, backend, landmarks=None, **config) -> Pipeline:
    camera, flash = devices
    cfg = PipelineConfig(latency_us=kiosk.latency_us, **config)
    return Pipeline(camera, flash, landmarks or GroundTruthLandmarks(), backend, cfg)


@pytest.fixture(scope="module")
def pipeline(kiosk, devices, backend):
    return _pipeline(kiosk, devices, backend)


def _check(kiosk, pipeline, subject, attempts: int = 3) -> CheckResult:
    """One check of ``subject``; repeated only when the simulated camera dropped the frames a
    state needed (an overloaded CPU), which is a legitimate no_clean_frame but not the gate
    under test."""
    kiosk.set_subject(subject)
    time.sleep(0.1)
    for _ in range(attempts):
        result = pipeline.run_check()
        if result.reason is not Reason.NO_CLEAN_FRAME:
            return result
    return result


# Face gates stop a check before the flash (presence.py, test_pipeline_presence.py); these are
# judged on the state frames, so the sequence plays.
GATE_SCENES = [
    ("too_dark", Reason.UNDEREXPOSED),
    ("overexposed", Reason.OVEREXPOSED),
    ("strong_ambient", Reason.LOW_FLASH_SNR),
]


def test_a_face_moving_beyond_the_alignment_budget_gets_retry(kiosk, pipeline):
    # A random walk of ~15 px per frame at 320 px (the preset's 12 px at 640 px, doubled so that
    # the short ~0.3 s sequence moves well past the budget of 0.12 inter-ocular distances).
    result = _check(kiosk, pipeline, Subject.preset("strong_motion", motion_px=30.0, seed=3))
    assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.MOTION), result.detail
    # judged before the flash (presence, its own shorter window and budget) or on the state frames
    limit = (pipeline.config.tracking.presence_max_motion_iod
             if result.detail.get("stage") == "presence" else pipeline.config.gates.max_motion_iod)
    assert result.detail["max_motion_iod"] == limit
    assert result.detail["motion_iod"] > limit


@pytest.mark.parametrize(("preset", "reason"), GATE_SCENES)
def test_each_quality_gate_has_a_scene_that_gets_retry_with_its_reason(
    kiosk, pipeline, preset, reason
):
    result = _check(kiosk, pipeline, Subject.preset(preset, seed=3))
    assert (result.verdict, result.reason) == (Verdict.RETRY, reason), result.detail
    assert result.score is None
    assert len(result.nonce) == 32  # the challenge that was played is named even on a retry
    sequence_ms = 5 * pipeline.config.challenge.settle_us / 1000  # at least 5 × (settle + ...)
    assert result.timings_ms["flash"] > sequence_ms  # the sequence really played


def test_two_people_in_front_of_the_kiosk_get_multiple_faces_with_the_real_detector(
    kiosk, devices, backend
):
    # The renderer's ground truth names only the subject, so the real detector looks here.
    pipeline = _pipeline(kiosk, devices, backend, landmarks=MtcnnLandmarks(min_face_px=24))
    result = _check(kiosk, pipeline, Subject.preset("two_faces", seed=0))
    assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.MULTIPLE_FACES)


def test_flash_states_shorter_than_a_frame_get_no_clean_frame(kiosk, devices, backend):
    # 20 ms states against 6 ms exposure + 8 ms readout at 30 fps: most states fall between
    # frames, and a frame that straddles two states must not be used. Free timing: locked to the
    # camera's frames (once the camera has run long enough to place the grid), every state
    # would last whole frame periods instead. One timing step: with the default three, states
    # of 20 + 25 or 50 ms gave every state a clean frame in 4 of 40 draws.
    pipeline = _pipeline(kiosk, devices, backend,
                         challenge={"state_duration_us": 20_000, "frame_lock": False,
                                    "timing_steps": 1})
    kiosk.set_subject(Subject(seed=3))
    result = pipeline.run_check()
    assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.NO_CLEAN_FRAME), result.detail
    assert result.detail["states_without_frame"]


def test_flash_never_seen_gives_retry_not_live(kiosk, pipeline):
    for seed in (3, 4):
        result = _check(kiosk, pipeline, Subject.preset("flash_never_shows", seed=seed))
        assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.LOW_FLASH_SNR)


def test_live_face_runs_every_stage_within_its_budget(kiosk, pipeline):
    result = _check(kiosk, pipeline, Subject(seed=4))
    assert result.reason in (Reason.SCORE_ABOVE_THRESHOLD, Reason.SCORE_BELOW_THRESHOLD), (
        result.reason,
        result.detail,
    )
    assert result.detail["challenge_corr"] > 0.99
    assert result.detail["flash_snr"] > 5
    # the sequence fits the camera: the simulated flash holds its times and this camera's frames
    # leave a gap (6 ms exposure + 8 ms readout of 33.3 ms), so every state lasts whole frame
    # periods (frame-locked timing; free timing would need 1/30 s + 6 + 8 + 8 ms settle = 56 ms)
    assert result.detail["frame_locked"]
    assert result.detail["state_duration_us"] == 33_333
    assert result.timings_ms["flash"] >= 5 * 33.333 - 1
    assert len(result.nonce) == 32
    stages = ("challenge", "flash", "capture", "sync", "landmarks", "verify", "preprocess")
    for stage in (*stages, "infer", "decide"):
        assert stage in result.timings_ms
    after_last_frame = sum(result.timings_ms[s] for s in stages[3:] + ("infer", "decide"))
    assert after_last_frame < 500  # generous: a loaded 2-core CI box; the benchmark measures


def _record_previous_check(kiosk, camera, flash) -> tuple[list[np.ndarray], list]:
    """What an attacker films during an earlier check: the face under *that* challenge."""
    schedule = draw_challenge(ChallengeConfig(), supports_colour=False, camera=camera.info())
    playback = flash.play(schedule, timeout_s=2.0)
    frames = camera.frames_between(
        playback.onsets_us[0] + kiosk.latency_us, playback.end_us + kiosk.latency_us, 2.0
    )
    return [f.image for f in frames], [f.meta.get("landmarks") for f in frames]


def test_replayed_recording_of_an_earlier_check_is_a_challenge_mismatch(kiosk, devices, pipeline):
    camera, flash = devices
    kiosk.set_subject(Subject(seed=4))
    time.sleep(0.1)
    images, marks = _record_previous_check(kiosk, camera, flash)
    assert len(images) >= 7  # ~0.28 s of frames at 30 fps, one drop allowed
    kiosk.inject_stream(images, marks)  # the camera now shows the recording, looped
    try:
        results = [pipeline.run_check() for _ in range(3)]
    finally:
        kiosk.inject_stream(None)
    # The replay reflects valid flashes, in an order drawn for another check: never live, and
    # (all but with probability ~1/120 per check) recognised as the wrong challenge.
    assert all(r.verdict is not Verdict.LIVE for r in results), [r.reason for r in results]
    # (a spoof, or a retry when the reflections fit this challenge best but not clearly: both
    # count toward the lock-out)
    mismatches = [r for r in results
                  if r.reason in (Reason.CHALLENGE_MISMATCH, Reason.CHALLENGE_UNCLEAR)]
    assert len(mismatches) >= 2, [(r.reason, r.detail) for r in results]
    assert any(r.verdict is Verdict.SPOOF for r in mismatches)
    assert all(r.detail["flash_snr"] > 2 for r in mismatches)  # the flashes were visible


COLOURS = ((1.0, 0.3, 0.3), (0.3, 1.0, 0.3), (0.3, 0.3, 1.0), (1.0, 1.0, 1.0))
_EVIDENCE = ("face_mean_dl", "flash_response_dl", "flash_snr", "challenge_corr", "frames_used")


def test_colour_challenge_is_verified_per_channel_and_a_colour_replay_mismatches(colour_backend):
    kiosk = SimKiosk(profile=PROFILES[1], width=320, height=240, seed=6)  # its own camera
    camera, flash = SimCamera(kiosk), SimFlashDriver(kiosk, colour=True)
    pipeline = Pipeline(
        camera,
        flash,
        GroundTruthLandmarks(),
        colour_backend,
        PipelineConfig(latency_us=kiosk.latency_us, challenge={"colour_palette": COLOURS}),
    )
    pipeline.start()
    try:
        result = _check(kiosk, pipeline, Subject(seed=2, scenario="backlight"))
        assert result.reason in (Reason.SCORE_ABOVE_THRESHOLD, Reason.SCORE_BELOW_THRESHOLD)
        assert result.detail["challenge_corr"] > 0.98
        schedule = draw_challenge(
            ChallengeConfig(colour_palette=COLOURS), supports_colour=True, camera=camera.info()
        )
        playback = flash.play(schedule, timeout_s=2.0)
        frames = camera.frames_between(
            playback.onsets_us[0] + kiosk.latency_us, playback.end_us + kiosk.latency_us, 2.0
        )
        assert len(frames) >= 7  # the camera kept up while recording (~0.28 s at 30 fps)
        kiosk.inject_stream([f.image for f in frames], [f.meta.get("landmarks") for f in frames])
        try:
            # each replay meets a fresh challenge; where the recording's flash lines up weakly
            # with it the answer is low_flash_snr (retry), so up to six tries for a mismatch
            replays = []
            for _ in range(6):
                replays.append(pipeline.run_check())
                if replays[-1].reason is Reason.CHALLENGE_MISMATCH:
                    break
        finally:
            kiosk.inject_stream(None)
        assert all(r.verdict is not Verdict.LIVE for r in replays)
        assert any(r.reason is Reason.CHALLENGE_MISMATCH for r in replays), [
            (r.reason, {k: r.detail.get(k) for k in _EVIDENCE}) for r in replays
        ]
    finally:
        pipeline.stop()


def test_reflections_one_state_out_of_step_are_a_challenge_mismatch(kiosk, devices, backend):
    """Timing is part of the challenge: a stream that runs a flash state out of step with the
    flash (a relay, a pre-recorded clip started early) shows every state in the wrong slot. Here
    the pipeline reads each slot one state after the light really changed, which is the same
    thing seen from the other side; the sequence then fits a shifted order better."""
    camera, _ = devices
    info = camera.info()
    state_us = int(1e6 / info.fps + info.exposure_us + info.readout_us + 8_000)
    state_us = -(-state_us // 1000) * 1000
    pipeline = _pipeline(kiosk, devices, backend)
    pipeline.config = pipeline.config.model_copy(update={"latency_us": kiosk.latency_us + state_us})
    result = _check(kiosk, pipeline, Subject(seed=4, scenario="dark_room"))
    assert (result.verdict, result.reason) == (Verdict.SPOOF, Reason.CHALLENGE_MISMATCH), (
        result.reason,
        {k: result.detail.get(k) for k in _EVIDENCE},
    )


def test_a_stopped_camera_or_flash_is_reported_as_unavailable_not_as_a_verdict(backend):
    kiosk = SimKiosk(profile=PROFILES[1], width=320, height=240, seed=7)
    camera, flash = SimCamera(kiosk), SimFlashDriver(kiosk, colour=False)
    config = PipelineConfig(latency_us=kiosk.latency_us, timeouts={"capture_s": 0.3})
    pipeline = Pipeline(camera, flash, GroundTruthLandmarks(), backend, config)
    # nothing started yet: the camera shows nothing, so no flash is even tried (presence.py)
    no_camera = pipeline.run_check()
    assert (no_camera.verdict, no_camera.reason) == (Verdict.RETRY, Reason.CAMERA_UNAVAILABLE)
    assert "error" in no_camera.detail
    camera.start()
    try:
        time.sleep(0.2)
        no_flash = pipeline.run_check()  # a face on the stream, but the flash refuses to play
        assert (no_flash.verdict, no_flash.reason) == (Verdict.RETRY, Reason.FLASH_UNAVAILABLE)
    finally:
        camera.stop()
