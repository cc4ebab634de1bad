"""The model knows its challenge: the pipeline refuses, at start, a challenge unlike the one the
bundle was trained on, naming both, instead of silently feeding the networks other inputs."""

from __future__ import annotations

import json
import logging

import pytest

from flashfas_edge import _core
from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.flash.base import FlashPlayback, FlashSchedule
from flashfas_edge.inference.ort_backend import OrtBackend
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle
from flashfas_edge.pipeline.config import PipelineConfig
from flashfas_edge.pipeline.pipeline import Pipeline, PipelineSetupError

PALETTE = ((1.0, 0.3, 0.3), (0.3, 1.0, 0.3), (0.3, 0.3, 1.0))


def _backend(directory, edit=None, **kwargs):
    folder = write_synthetic_bundle(directory, n0=5, input_size=32, **kwargs)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["normalisation"] = {"method": _core.NORMALISATION}
    if edit:
        edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return OrtBackend(folder, intra_op_threads=1)


class _ColourSurface:
    """A flash surface that can show colour (the pipeline only asks; nothing is played here)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def self_test(self) -> None: ...
    def supports_colour(self) -> bool:
        return True

    def holds_timing(self) -> bool:
        return False

    def idle_state(self) -> None:
        return None  # unknown: the worst idle screen is assumed

    def play(self, schedule: FlashSchedule, timeout_s: float, grid=None) -> FlashPlayback:
        raise AssertionError("not played in these tests")


class _WhiteSurface(_ColourSurface):
    def supports_colour(self) -> bool:
        return False


@pytest.fixture(scope="module")
def white_backend(tmp_path_factory):
    return _backend(tmp_path_factory.mktemp("white"))


def test_the_default_challenge_fits_a_bundle_trained_on_it(white_backend):
    pipeline = Pipeline(None, None, GroundTruthLandmarks(), white_backend, PipelineConfig())
    assert pipeline.challenge_family == "white_levels"


def test_other_levels_are_refused_at_start_naming_both(white_backend):
    config = PipelineConfig(challenge={"levels": (1.0, 0.8, 0.6, 0.3, 0.0)})
    with pytest.raises(PipelineSetupError) as info:
        Pipeline(None, None, GroundTruthLandmarks(), white_backend, config)
    message = str(info.value)
    assert "[1.0, 0.75, 0.5, 0.25, 0.0]" in message and "[1.0, 0.8, 0.6, 0.3, 0.0]" in message
    assert "white_levels" in message


def test_a_colour_challenge_is_refused_by_a_bundle_trained_on_white(white_backend):
    config = PipelineConfig(challenge={"colour_palette": PALETTE})
    with pytest.raises(PipelineSetupError, match=r"trained on white_levels .*challenge is "
                       r"colour_levels"):
        Pipeline(None, _ColourSurface(), GroundTruthLandmarks(), white_backend, config)
    # a surface that cannot show colour plays the palette as white: that fits
    Pipeline(None, _WhiteSurface(), GroundTruthLandmarks(), white_backend, config)


def test_a_bundle_trained_on_colour_accepts_a_colour_challenge(tmp_path):
    backend = _backend(tmp_path, challenge_family="colour_levels")
    config = PipelineConfig(challenge={"colour_palette": PALETTE})
    pipeline = Pipeline(None, _ColourSurface(), GroundTruthLandmarks(), backend, config)
    assert pipeline.challenge_family == "colour_levels"
    with pytest.raises(PipelineSetupError, match="trained on colour_levels"):
        Pipeline(None, _WhiteSurface(), GroundTruthLandmarks(), backend, PipelineConfig())


def test_a_bundle_that_predates_the_record_runs_as_the_default_and_says_so(tmp_path, caplog):
    def drop(m):
        del m["flash_levels"], m["challenge_family"]

    backend = _backend(tmp_path, drop)
    with caplog.at_level(logging.WARNING, logger="flashfas_edge.pipeline.pipeline"):
        Pipeline(None, None, GroundTruthLandmarks(), backend, PipelineConfig())
    assert "records no flash_levels/challenge_family" in caplog.text
    with pytest.raises(PipelineSetupError):
        Pipeline(None, None, GroundTruthLandmarks(), backend,
                 PipelineConfig(challenge={"levels": (1.0, 0.8, 0.6, 0.3, 0.0)}))


@pytest.fixture(scope="module")
def hue_backend(tmp_path_factory):
    return _backend(tmp_path_factory.mktemp("hue"), challenge_family="hue_levels")


def test_a_hue_levels_bundle_plays_its_hue_ladder_on_a_colour_surface(hue_backend):
    from flashfas_edge.flash_levels import HUE_LADDER
    from flashfas_edge.pipeline.challenge import draw_challenge

    pipeline = Pipeline(None, _ColourSurface(), GroundTruthLandmarks(), hue_backend,
                        PipelineConfig())
    assert pipeline.challenge_family == "hue_levels"
    config = PipelineConfig(challenge={"state_duration_us": 100_000}).challenge
    for _ in range(20):
        schedule = draw_challenge(config, True, family="hue_levels")
        for rank, slot in enumerate(schedule.order):  # the r-th brightest level shows its hue
            assert schedule.states[slot].rgb == HUE_LADDER[rank]


def test_a_recording_evaluated_by_a_hue_levels_bundle_must_show_the_hue_ladder(hue_backend):
    """A pipeline without a flash evaluates recordings: their colours must be the ladder."""
    from dataclasses import replace

    import numpy as np

    from flashfas_edge.data.session import Session
    from flashfas_edge.flash_levels import DEFAULT_LEVELS, HUE_LADDER
    from flashfas_edge.pipeline.result import Reason, Verdict

    pipeline = Pipeline(None, None, GroundTruthLandmarks(), hue_backend, PipelineConfig())
    assert pipeline.challenge_family == "hue_levels"
    frames = np.zeros((6, 32, 32, 3), np.uint8)
    session = Session(frames=frames, frame_times_us=np.arange(6, dtype=np.int64) * 33_333,
                      exposure_us=5000, readout_us=10_000,
                      flash_rgb=np.ones((5, 3), np.float32),  # white: not the ladder
                      flash_intensity=np.array(DEFAULT_LEVELS, np.float32),
                      flash_onsets_us=np.arange(5, dtype=np.int64) * 100_000,
                      state_duration_us=100_000, latency_us=0,
                      order=np.arange(5, dtype=np.int64), nonce="ab" * 16, landmarks=None,
                      attack_type="live", depth=None, meta={})
    result = pipeline.run_recorded(session)
    assert result.verdict is Verdict.RETRY and result.reason is Reason.INVALID_SESSION
    assert "hue_levels ladder" in str(result.detail)
    ladder = np.array([HUE_LADDER[r] for r in range(5)], np.float32)  # the right colours pass
    assert pipeline.run_recorded(replace(session, flash_rgb=ladder)).reason is not (
        Reason.INVALID_SESSION)


def test_a_hue_levels_bundle_is_refused_on_a_white_only_surface(hue_backend):
    with pytest.raises(PipelineSetupError) as info:
        Pipeline(None, _WhiteSurface(), GroundTruthLandmarks(), hue_backend, PipelineConfig())
    assert "hue_levels" in str(info.value) and "colour" in str(info.value)
