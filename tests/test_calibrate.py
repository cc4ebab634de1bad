"""``flashfas-edge calibrate`` on the simulated kiosk, where the truth is known: the injected
latency, the ambient scenario, the mains flicker, the live faces."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from api_harness import API_KEY, write_key_file
from led_panel_rig import require_bundle_and_compiler
from sim_bundles import run_check_on

from flashfas_edge.calibrate.exposure import set_exposure
from flashfas_edge.calibrate.latency import measure_latency
from flashfas_edge.calibrate.rig import Rig
from flashfas_edge.calibrate.session import face_columns
from flashfas_edge.calibrate.site import assess_site, distance_model
from flashfas_edge.calibrate.threshold import choose_threshold
from flashfas_edge.config import EX_CONFIG, ConfigError, load_calibration
from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.flash.safety import UnsafeFlashError
from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.sim.kiosk import SimKiosk, Subject
from flashfas_edge.sim.kiosk_camera import SimCamera
from flashfas_edge.sim.kiosk_flash import SimFlashDriver

BUNDLE = require_bundle_and_compiler()
PROFILE = PROFILE_BY_NAME["kiosk15_mipi"]
CLI = [sys.executable, "-m", "flashfas_edge.cli"]


def _rig(subject: Subject, latency_us: int | None = None):  # type: ignore[no-untyped-def]
    profile = PROFILE if latency_us is None else dataclasses.replace(PROFILE,
                                                                     latency_us=latency_us)
    kiosk = SimKiosk(profile, seed=subject.seed, subject=subject)
    rig = Rig(SimCamera(kiosk), SimFlashDriver(kiosk), GroundTruthLandmarks())
    rig.start()
    return rig, kiosk


@pytest.mark.parametrize("latency_ms", [33, 83, 150])
def test_injected_latency_is_recovered_within_one_frame_period(latency_ms):
    rig, _ = _rig(Subject(scenario="office", seed=3), latency_ms * 1000)
    try:
        exposure = set_exposure(rig, 2.2)
        result = measure_latency(rig, 6, PROFILE.display_rise_us,
                                 columns=face_columns(exposure.points, 640))
    finally:
        rig.stop()
    assert abs(result.median_us / 1000 - latency_ms) < 1000 / 30, result.summary()
    assert len(result.edges) >= 6
    assert all(e.first_row >= 0 for e in result.edges)


def _site(ambient: str, **subject):  # type: ignore[no-untyped-def]
    from flashfas_edge.calibrate.colour import measure_colour
    from flashfas_edge.calibrate.session import _measure_flicker

    rig, kiosk = _rig(Subject(scenario=ambient, seed=5, **subject))
    try:
        exposure = set_exposure(rig, 2.2)
        colour = measure_colour(rig, kiosk.latency_us, (1.0, 0.75, 0.5, 0.25, 0.0),
                                exposure.points, 2.2)
        flicker = _measure_flicker(rig, exposure.settings, kiosk.latency_us, 2.2)
        return exposure, colour, flicker
    finally:
        rig.stop()


@pytest.mark.parametrize("ambient", ["dark_room", "office", "sunlight"])
def test_exposure_lands_where_no_state_clips_and_dark_is_above_the_noise(ambient):
    exposure, colour, _ = _site(ambient)
    assert not exposure.clipped, exposure.summary()
    assert exposure.bright.p99_dl < 250 and exposure.bright.saturated_frac <= 0.01
    assert exposure.dark_above_noise, exposure.summary()
    # the brightest state lies above the darkest, on every channel of the face
    assert exposure.bright.mean_dl > exposure.dark.mean_dl
    if ambient == "sunlight":
        gates = GateThresholds()
        assert colour.flash_snr < gates.min_flash_snr_for_mismatch, colour.summary()


def test_sunlight_on_the_face_gives_the_snr_warning_or_fail():
    from flashfas_edge.calibrate.latency import EdgeTiming, LatencyResult

    exposure, colour, flicker = _site("sunlight")
    latency = LatencyResult(tuple(EdgeTiming(True, 0, 40_000.0, 1, 0) for _ in range(4)), 2)
    distance = distance_model(exposure.points, 640, 480, PROFILE.hfov_deg, colour.flash_snr,
                              GateThresholds())
    site, _ = assess_site(exposure, latency, colour, flicker, distance, GateThresholds(),
                          1e6 / 30)
    assert site.verdict in ("warn", "fail")
    assert any("flash SNR" in line and "shade the kiosk" in line for line in site.findings)


@pytest.mark.parametrize(("mains_hz", "ripple_hz"), [(50.0, 100.0), (60.0, 120.0)])
def test_injected_mains_flicker_is_detected_at_its_frequency(mains_hz, ripple_hz):
    _, _, flicker = _site("office", mains_hz=mains_hz, flicker=0.08)
    assert flicker.mains_hz == mains_hz and flicker.ripple_hz == ripple_hz, flicker.summary()
    assert flicker.light_modulation is not None
    assert 0.04 < flicker.light_modulation < 0.16  # the light's own depth, 0.08 injected


def test_no_flicker_is_reported_without_one():
    _, _, flicker = _site("office", flicker=0.0)
    assert flicker.mains_hz is None, flicker.summary()


def test_an_unsafe_calibration_sequence_is_not_played():
    from flashfas_edge.calibrate.rig import BRIGHT, DARK

    rig, _ = _rig(Subject(scenario="office", seed=1))
    try:
        played = rig.played
        with pytest.raises(UnsafeFlashError):  # 4 flashes within one second
            rig.play([DARK, BRIGHT] * 4, [100_000] * 8)
        assert rig.played == played
    finally:
        rig.stop()


def test_threshold_meets_its_bpcer_on_fresh_live_checks_and_never_lets_more_attacks_in():
    from flashfas_edge.inference.factory import create_backend
    from flashfas_edge.pipeline.config import PipelineConfig
    from flashfas_edge.pipeline.pipeline import Pipeline

    kiosk = SimKiosk(PROFILE, seed=11, subject=Subject(scenario="office", seed=11))
    camera, flash = SimCamera(kiosk), SimFlashDriver(kiosk)
    camera.start()
    flash.start()
    backend = create_backend(BUNDLE, "onnxruntime", intra_op_threads=1)
    config = PipelineConfig(latency_us=PROFILE.latency_us, display_rise_us=PROFILE.display_rise_us,
                            landmarks={"provider": "ground_truth"})
    pipeline = Pipeline(camera, flash, GroundTruthLandmarks(), backend, config)
    bundle_threshold = backend.bundle.threshold_default

    def scores(attack: str, seeds: range) -> list[float]:
        out = []
        for seed in seeds:
            r = run_check_on(kiosk, pipeline, Subject(attack, "office", seed=seed))
            if r.decided_by_score:
                out.append(float(r.score))
        return out

    try:
        # K = 20 prompted checks: with calibrate's default of 10, a tight site sample (10 easy
        # subjects) sets a threshold whose true BPCER on this kiosk's live scores was ~14 %
        # against the 10 % asked for (docs/CALIBRATE.md), and this test failed about 1 run in 5
        site = scores("live", range(100, 120))
        fresh = scores("live", range(200, 240))
        attacks = [s for a in ("print", "replay", "mask") for s in scores(a, range(300, 304))]
    finally:
        pipeline.stop()
        flash.stop()
        camera.stop()
    choice = choose_threshold(site, bundle_threshold, target_bpcer=0.1)
    assert choice.threshold == max(choice.fitted, bundle_threshold)
    assert len(fresh) >= 30
    # the site's own estimate meets its target; the bundle's floor (every attack type's dev APCER
    # <= 1 %) may then raise the threshold above it, and what that floor refuses is the bundle's
    # BPCER, not the calibration's (docs/RESULTS.md, "The shipped threshold")
    refused = sum(s < choice.fitted for s in fresh)
    # BPCER 10 % on 40 checks: more than 11 refused would be a 1-in-200 event (binomial) at a
    # threshold exactly at 10 %; the threshold's own estimate from 20 checks adds to that
    assert refused <= 11, (choice.summary(), fresh)
    accepted_calibrated = sum(s >= choice.threshold for s in attacks)
    accepted_bundle = sum(s >= bundle_threshold for s in attacks)
    assert accepted_calibrated <= accepted_bundle, (attacks, choice.summary())


def test_threshold_rule_never_goes_below_the_bundle():
    low = choose_threshold([0.2, 0.25, 0.3, 0.22, 0.28], bundle_threshold=0.6, target_bpcer=0.05)
    assert low.threshold == 0.6 and low.raised_to_bundle
    high = choose_threshold(list(np.linspace(0.97, 0.999, 10)), 0.13, 0.05)
    assert 0.13 < high.threshold < 0.97


# ----- the CLI, the calibration file and the daemon ------------------------------------------


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One ``calibrate --sim --yes --json`` run (the product's promise: under 3 minutes)."""
    tmp = tmp_path_factory.mktemp("calibrate")
    out = tmp / "calibration.json"
    started = time.monotonic()
    run = subprocess.run([*CLI, "calibrate", "--sim", "--yes", "--json", "--out", str(out)],
                         capture_output=True, text=True, timeout=400, cwd=tmp)
    seconds = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    return out, json.loads(run.stdout), seconds, tmp


def test_calibrate_sim_yes_writes_the_file_and_the_report_within_three_minutes(calibrated):
    out, answer, seconds, _ = calibrated
    assert seconds < 180, seconds
    cal = load_calibration(out)
    assert cal.format_version == 2 and cal.identity is not None and cal.site is not None
    assert cal.identity.bundle_name == "edge-default"
    assert abs(cal.latency_us - PROFILE.latency_us) < 1e6 / 30
    assert cal.threshold is not None and cal.bundle_threshold is not None
    assert cal.threshold >= cal.bundle_threshold
    report = Path(answer["report"]).read_text()
    assert report.count("<svg") == 3 and "site: " in report


def _serve(config: Path, tmp: Path):  # type: ignore[no-untyped-def]
    return subprocess.Popen([*CLI, "serve", "--sim", "--config", str(config), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp)


def _config(tmp: Path, calibration: Path, name: str = "daemon.toml") -> Path:
    key = write_key_file(tmp)
    path = tmp / name
    path.write_text(f'calibration_file = "{calibration}"\n[server]\napi_key_file = "{key}"\n'
                    f'[audit]\npath = "{tmp / "audit.jsonl"}"\n'
                    '[kiosk.camera]\nwidth = 640\nheight = 480\n')
    return path


def test_serve_uses_the_calibration_and_shows_it_in_status(calibrated):
    out, _, _, tmp = calibrated
    proc = _serve(_config(tmp, out), tmp)
    try:
        url = None
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "listening on" in line:
                url = line.split("listening on", 1)[1].split()[0].strip()
        assert url is not None
        status = httpx.get(f"{url}/v1/status", headers={"X-API-Key": API_KEY}, timeout=10).json()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    cal = load_calibration(out)
    shown = status["calibration"]
    assert shown["file"] == out.name and shown["latency_us"] == cal.latency_us
    assert shown["threshold"] == pytest.approx(cal.threshold)
    assert shown["site_verdict"] == cal.site.verdict and 0 <= shown["age_days"] < 1
    assert shown["made_for"]["bundle"] == "edge-default"


def _refused(tmp: Path, calibration: dict, name: str) -> str:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(calibration))
    proc = subprocess.run([*CLI, "serve", "--sim", "--config", str(_config(tmp, path, name +
                                                                              ".toml"))],
                          capture_output=True, text=True, timeout=120, cwd=tmp)
    assert proc.returncode == EX_CONFIG, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_a_calibration_for_another_camera_or_bundle_is_refused_naming_both(calibrated):
    out, _, _, tmp = calibrated
    data = json.loads(out.read_text())
    other_camera = json.loads(json.dumps(data))
    other_camera["identity"]["camera"] = "v4l2:/dev/video2 640x480@30"
    message = _refused(tmp, other_camera, "other-camera")
    assert "v4l2:/dev/video2" in message and data["identity"]["camera"] in message
    other_bundle = json.loads(json.dumps(data))
    other_bundle["identity"]["bundle_name"] = "site-b"
    other_bundle["identity"]["bundle_manifest_sha256"] = "0" * 64
    message = _refused(tmp, other_bundle, "other-bundle")
    assert "site-b" in message and "edge-default" in message


@pytest.mark.parametrize("edit", [
    {"threshold": 0},  # an open door
    {"threshold": 0.05},  # hand-edited below the bundle's: more lenient
    {"latency_us": -5},
    {"format_version": 7},
])
def test_a_hand_edited_out_of_range_value_is_a_clean_config_error(calibrated, edit):
    out, _, _, tmp = calibrated
    data = {**json.loads(out.read_text()), **edit}
    message = _refused(tmp, data, "edited")
    assert "calibration" in message


def test_a_corrupt_calibration_file_is_a_clean_config_error(calibrated):
    out, _, _, tmp = calibrated
    broken = tmp / "broken.json"
    broken.write_text(out.read_text()[:200])
    proc = subprocess.run([*CLI, "serve", "--sim", "--config", str(_config(tmp, broken, "b.toml"))],
                          capture_output=True, text=True, timeout=120, cwd=tmp)
    assert proc.returncode == EX_CONFIG and "Traceback" not in proc.stderr
    assert "not valid JSON" in proc.stderr
    with pytest.raises(ConfigError):
        load_calibration(broken)


def test_verify_remeasures_without_changing_anything(calibrated):
    out, _, _, tmp = calibrated
    before = out.read_bytes()
    proc = subprocess.run([*CLI, "calibrate", "--verify", "--sim", "--yes", "--json",
                           "--toggles", "6", "--config", str(_config(tmp, out, "v.toml"))],
                          capture_output=True, text=True, timeout=300, cwd=tmp)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    answer = json.loads(proc.stdout)
    assert answer["recalibration_due"] is (proc.returncode == 1)
    assert abs(answer["latency"]["median_ms"] * 1000 - PROFILE.latency_us) < 1e6 / 30
    assert out.read_bytes() == before


def test_calibrate_led_panel_simulator_measures_its_latency(tmp_path):
    out = tmp_path / "led.json"
    proc = subprocess.run([*CLI, "calibrate", "--sim", "--flash", "led-sim", "--yes", "--json",
                           "--live-checks", "3", "--toggles", "6", "--out", str(out)],
                          capture_output=True, text=True, timeout=400, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    cal = load_calibration(out)
    assert cal.identity is not None and cal.identity.flash == "sim:led_serial"
    # the panel switches its light when the firmware does: latency ≈ 0 (clock sync error only)
    assert cal.latency_us < 1e6 / 30
