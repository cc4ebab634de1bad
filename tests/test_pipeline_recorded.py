"""run_recorded end to end (steps 4–10) with the real C++ core and a real ONNX Runtime session.

The bundle has random weights (the trained default bundle is tested in test_pipeline_sim_decisions),
so these tests check the plumbing and the fail-closed rules, not the liveness decision itself.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from flashfas_edge import _core
from flashfas_edge.data.session import Session
from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.inference.backend import ModelOutput
from flashfas_edge.inference.ort_backend import OrtBackend
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle
from flashfas_edge.pipeline.config import PipelineConfig
from flashfas_edge.pipeline.pipeline import Pipeline, PipelineSetupError
from flashfas_edge.pipeline.result import Reason, Verdict

H, W = 240, 320
LEVELS = np.array([1.0, 0.75, 0.5, 0.25, 0.0])
FRAME_PERIOD_US = 33_333
EXPOSURE_US = 5_000
READOUT_US = 10_000
STATE_US = 100_000


def _landmarks(cx=160.0, cy=120.0, iod=50.0):
    unit = np.array([[-0.5, -0.3], [0.5, -0.3], [0.0, 0.15], [-0.4, 0.6], [0.4, 0.6]])
    return (unit * iod + [cx, cy]).astype(np.float32)


def _face_image(level, rng, ambient=0.15, gain=0.5):
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    r2 = ((xx - 160) / 60) ** 2 + ((yy - 130) / 75) ** 2
    shading = np.clip(1 - r2, 0, 1) ** 0.5
    linear = np.where(r2 < 1, ambient * 0.6 + gain * level * shading, ambient * 0.3)
    img = 255 * np.clip(linear, 0, 1) ** (1 / 2.2)
    img = img[..., None] * np.array([1.0, 0.85, 0.75]) + rng.normal(0, 1.5, (H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_session(play=(2, 0, 4, 1, 3), shown=None, seed=0, landmarks=True):
    """A 30 fps capture of a flash sequence; ``shown`` is what the face really reflected."""
    rng = np.random.default_rng(seed)
    shown = play if shown is None else shown
    onsets = np.arange(5, dtype=np.int64) * STATE_US + 1_000_000
    times = np.arange(onsets[0], onsets[-1] + STATE_US, FRAME_PERIOD_US, dtype=np.int64)
    frames = []
    for t in times:
        mid = t + (READOUT_US + EXPOSURE_US) // 2
        slot = int(np.clip((mid - onsets[0]) // STATE_US, 0, 4))
        frames.append(_face_image(LEVELS[shown[slot]], rng))
    intensity = LEVELS[list(play)].astype(np.float32)
    return Session(
        frames=np.stack(frames),
        frame_times_us=times,
        exposure_us=EXPOSURE_US,
        readout_us=READOUT_US,
        flash_rgb=np.ones((5, 3), np.float32),
        flash_intensity=intensity,
        flash_onsets_us=onsets,
        state_duration_us=STATE_US,
        latency_us=0,
        order=np.argsort(-intensity, kind="stable").astype(np.int64),
        nonce="recorded",
        landmarks=np.stack([_landmarks()] * len(times)) if landmarks else None,
    )


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    folder = write_synthetic_bundle(tmp_path_factory.mktemp("bundle"), n0=5, input_size=64)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["normalisation"] = {"method": _core.NORMALISATION}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="module")
def backend(bundle_dir):
    return OrtBackend(bundle_dir, intra_op_threads=1)


def _pipeline(backend, **config):
    return Pipeline(None, None, GroundTruthLandmarks(), backend, PipelineConfig(**config))


def test_recorded_session_runs_every_stage_and_reports_it(backend):
    result = _pipeline(backend).run_recorded(make_session(), want_depth=True)
    assert result.verdict in (Verdict.LIVE, Verdict.SPOOF), result.detail
    assert result.score is not None and 0.0 <= result.score <= 1.0
    assert result.reason in (Reason.SCORE_ABOVE_THRESHOLD, Reason.SCORE_BELOW_THRESHOLD)
    assert (result.verdict is Verdict.LIVE) == (result.score >= result.threshold)
    assert result.threshold == 0.5  # the bundle default
    assert set(result.type_probs) == {"print", "replay", "mask"}
    assert math.isclose(sum(result.type_probs.values()), 1.0, rel_tol=1e-4)
    for stage in ("sync", "landmarks", "verify", "preprocess", "infer", "decide", "total"):
        assert result.timings_ms[stage] >= 0.0
    assert result.depth is not None and result.depth.shape == (16, 16)
    assert result.model["name"] == "synthetic-test"
    assert result.backend["name"] == "onnxruntime"
    assert result.detail["challenge_corr"] > 0.95
    assert len(result.detail["frames_used"]) == 5


def test_threshold_override_from_calibration_is_used(backend):
    session = make_session()
    low = _pipeline(backend, threshold_override=1e-6).run_recorded(session)
    high = _pipeline(backend, threshold_override=1.0).run_recorded(session)
    assert low.threshold == 1e-6 and low.verdict is Verdict.LIVE
    assert high.verdict is Verdict.SPOOF or high.score == 1.0


def test_recorded_reflections_of_another_challenge_are_a_challenge_mismatch(backend):
    result = _pipeline(backend).run_recorded(make_session(shown=(4, 3, 0, 2, 1)))
    assert (result.verdict, result.reason) == (Verdict.SPOOF, Reason.CHALLENGE_MISMATCH)
    assert result.score is None


def test_a_session_whose_frames_all_straddle_states_gets_no_clean_frame(backend):
    session = make_session()
    session.exposure_us = 90_000  # every frame integrates across a flash transition
    result = _pipeline(backend).run_recorded(session)
    assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.NO_CLEAN_FRAME)
    assert result.detail["states_without_frame"]


def test_inconsistent_sessions_are_rejected_with_a_reason(backend):
    pipeline = _pipeline(backend)
    good = make_session()
    bad_order = dataclasses.replace(good, order=good.order[::-1].copy())
    bad_times = dataclasses.replace(good, frame_times_us=good.frame_times_us[::-1].copy())
    bad_frames = dataclasses.replace(good, frames=good.frames.astype(np.float32))
    for session in (bad_order, bad_times, bad_frames):
        result = pipeline.run_recorded(session)
        assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.INVALID_SESSION)


class _BrokenBackend:
    """The real backend's bundle and info, but a score that is not a probability."""

    def __init__(self, real, p_live):
        self._real, self._p = real, p_live

    @property
    def bundle(self):
        return self._real.bundle

    def info(self):
        return self._real.info()

    def warm_up(self):
        pass

    def run(self, x):
        out = self._real.run(x)
        return ModelOutput(p_live=self._p, type_probs=out.type_probs, depth=out.depth)

    def run_batch(self, x):
        raise NotImplementedError


class _CrashingBackend(_BrokenBackend):
    def run(self, x):
        raise RuntimeError("ORT session died")


@pytest.mark.parametrize("p_live", [float("nan"), float("inf"), 1.5, -0.1])
def test_a_score_that_is_not_a_probability_is_never_live(backend, p_live):
    result = _pipeline(_BrokenBackend(backend, p_live)).run_recorded(make_session())
    assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.INTERNAL_ERROR)


def test_a_crashing_backend_is_never_live(backend):
    result = _pipeline(_CrashingBackend(backend, 1.0)).run_recorded(make_session())
    assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.INTERNAL_ERROR)
    assert "ORT session died" in result.detail["error"]


def test_a_stage_past_its_timeout_gives_retry_and_frees_the_pipeline(backend):
    import time

    class _StallsOnceBackend(_BrokenBackend):
        stalled = False

        def run(self, x):
            if not self.stalled:
                self.stalled = True
                time.sleep(2.0)
            return self._real.run(x)

    pipeline = _pipeline(_StallsOnceBackend(backend, 1.0), timeouts={"infer_s": 0.5})
    result = pipeline.run_recorded(make_session())
    assert (result.verdict, result.reason) == (Verdict.RETRY, Reason.STAGE_TIMEOUT)
    assert result.detail["stage"] == "infer"
    assert result.timings_ms["infer"] < 1500
    # the same pipeline's next check is not stuck behind the abandoned stage
    started = time.perf_counter()
    ok = pipeline.run_recorded(make_session())
    assert ok.reason is Reason.SCORE_ABOVE_THRESHOLD, ok.detail
    assert time.perf_counter() - started < 1.5


def test_bundle_and_config_that_disagree_on_n0_refuse_to_start(backend):
    with pytest.raises(PipelineSetupError):
        _pipeline(backend, challenge={"levels": (1.0, 0.5, 0.0)})


def test_a_bundle_trained_on_other_normalisation_refuses_to_start(tmp_path):
    folder = write_synthetic_bundle(tmp_path / "b", n0=5, input_size=64)
    with pytest.raises(PipelineSetupError):
        _pipeline(OrtBackend(folder, intra_op_threads=1))


def test_checks_from_several_threads_run_one_at_a_time_and_do_not_mix(backend):
    import threading

    pipeline = _pipeline(backend)
    sessions = {
        "match": make_session(seed=1),
        "replayed": make_session(shown=(4, 3, 0, 2, 1), seed=2),
        "straddling": dataclasses.replace(make_session(seed=3), exposure_us=90_000),
    }
    expected = {
        "match": {Reason.SCORE_ABOVE_THRESHOLD, Reason.SCORE_BELOW_THRESHOLD},
        "replayed": {Reason.CHALLENGE_MISMATCH},
        "straddling": {Reason.NO_CLEAN_FRAME},
    }
    results: dict[str, list] = {name: [] for name in sessions}
    inside = []
    original = pipeline._evaluate

    def watched(*args, **kwargs):
        inside.append(1)
        assert len(inside) == 1, "two checks ran at once"
        try:
            return original(*args, **kwargs)
        finally:
            inside.pop()

    pipeline._evaluate = watched

    def worker(name):
        for _ in range(3):
            results[name].append(pipeline.run_recorded(sessions[name]))

    threads = [threading.Thread(target=worker, args=(name,)) for name in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ids = [r.check_id for rs in results.values() for r in rs]
    assert len(ids) == 9 and len(set(ids)) == 9
    for name, rs in results.items():
        assert {r.reason for r in rs} <= expected[name], (name, [r.reason for r in rs])


def test_a_session_recorded_without_landmarks_gets_them_from_the_real_detector(backend):
    from flashfas_edge.face.mtcnn_landmarks import MtcnnLandmarks
    from flashfas_edge.sim.device import PROFILES
    from flashfas_edge.sim.scene import SceneRequest
    from flashfas_edge.sim.synth_session import render_session

    request = SceneRequest("live", "office", PROFILES[1], 7, 7, width=320, height=240)
    session = render_session(request)
    truth = session.landmarks
    session.landmarks = None
    pipeline = Pipeline(
        None, None, MtcnnLandmarks(min_face_px=24), backend, PipelineConfig(latency_us=0)
    )
    result = pipeline.run_recorded(session)
    assert result.reason in (Reason.SCORE_ABOVE_THRESHOLD, Reason.SCORE_BELOW_THRESHOLD), (
        result.reason,
        result.detail,
    )
    assert result.detail["face_scores"][0] > 0.9
    iod_truth = float(np.linalg.norm(truth[0, 1] - truth[0, 0]))
    assert abs(result.detail["interocular_px"] - iod_truth) < 0.15 * iod_truth
    assert result.detail["challenge_corr"] > 0.95


def test_warm_up_runs_the_backend_and_the_landmark_detector(backend):
    from flashfas_edge.face.mtcnn_landmarks import MtcnnLandmarks

    calls = []

    class CountingDetector(MtcnnLandmarks):
        def detect(self, frame):
            calls.append(frame.index)
            return super().detect(frame)

    pipeline = Pipeline(None, None, CountingDetector(), backend, PipelineConfig())
    pipeline.warm_up()
    assert calls == [-1]
