"""One calibration of a kiosk, step by step (docs/CALIBRATE.md): exposure, latency, colour
response and SNR, flicker, site verdict, threshold; then the calibration file. Also ``--verify``:
latency and SNR measured again against a stored calibration, nothing changed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from flashfas_edge.calibrate.colour import ColourResult, measure_colour
from flashfas_edge.calibrate.exposure import ExposureResult, exposure_control, lock, set_exposure
from flashfas_edge.calibrate.flicker import FlickerResult, measure_flicker
from flashfas_edge.calibrate.latency import LatencyResult, measure_latency
from flashfas_edge.calibrate.rig import DARK, CalibrationError, Rig
from flashfas_edge.calibrate.site import DistanceModel, Findings, assess_site, distance_model
from flashfas_edge.calibrate.threshold import (
    ThresholdChoice,
    choose_threshold,
    collect_live_scores,
)
from flashfas_edge.capture.base import ExposureSettings
from flashfas_edge.config import CalibrationFile, CalibrationIdentity, LoadedConfig
from flashfas_edge.kiosk.assembly import camera_identity, flash_identity
from flashfas_edge.kiosk.sim_scene import SimSceneControls

FLICKER_HOLD_US = 900_000
FLICKER_EXPOSURE_STEP_US = 4_500  # ~half a ripple period: moves the bands' phase (flicker.py)
RECALIBRATE_AFTER_DAYS = 180
DEFAULT_HFOV_DEG = 65.0  # a typical kiosk camera; --hfov-deg for another lens


class Ui(Protocol):
    def step(self, title: str) -> None: ...

    def progress(self, done: int, total: int) -> None: ...

    def prompt(self, message: str) -> None:
        """Ask the integrator to do something; returns when done (at once with --yes)."""

    def note(self, message: str) -> None: ...


@dataclass(frozen=True)
class Options:
    toggles: int = 12
    live_checks: int = 10
    target_bpcer: float = 0.05
    hfov_deg: float | None = None  # None: the simulated camera's, else DEFAULT_HFOV_DEG
    scenario: str | None = None  # --sim: ambient scenario
    seed: int = 0
    mains_hz: float | None = None  # --sim: mains frequency of the room light
    flicker: float | None = None  # --sim: its flicker amplitude


@dataclass
class Outcome:
    calibration: CalibrationFile
    exposure: ExposureResult
    latency: LatencyResult
    colour: ColourResult
    flicker: FlickerResult
    distance: DistanceModel
    findings: Findings
    threshold: ThresholdChoice | None
    durations_s: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BundleInfo:
    name: str
    manifest_sha256: str
    threshold: float


def _sim_options(options: Options) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    if options.mains_hz is not None:
        chosen["mains_hz"] = float(options.mains_hz)
    if options.flicker is not None:
        chosen["flicker"] = float(options.flicker)
    return chosen


def show_sim_subject(scene: SimSceneControls, config: LoadedConfig, options: Options,
                     seed: int) -> None:
    ambient = options.scenario or config.daemon.kiosk.sim.ambient
    scene.set_scene("live", ambient, seed, _sim_options(options))


def _hfov(options: Options, scene: SimSceneControls | None) -> float:
    if options.hfov_deg is not None:
        return options.hfov_deg
    if scene is not None:
        return float(scene.kiosk.profile.hfov_deg)
    return DEFAULT_HFOV_DEG


def face_columns(points: np.ndarray, width: int) -> tuple[int, int]:
    """The columns the face spans (cheek to cheek, ±1 inter-ocular distance from its middle)."""
    centre = float(points[:, 0].mean())
    iod = max(float(np.linalg.norm(points[1] - points[0])), 4.0)
    x0, x1 = int(max(centre - iod, 0)), int(min(centre + iod, width))
    return (x0, x1) if x1 - x0 >= 8 else (width // 4, 3 * width // 4)


def _measure_flicker(rig: Rig, settings: ExposureSettings, latency_us: int,
                     gamma: float) -> FlickerResult:
    control = exposure_control(rig)
    limits = control.exposure_range()
    shorter = settings.exposure_us - FLICKER_EXPOSURE_STEP_US
    other = shorter if shorter >= limits.min_exposure_us else min(
        settings.exposure_us + FLICKER_EXPOSURE_STEP_US, limits.max_exposure_us)
    groups = []
    try:
        for exposure in (other, settings.exposure_us):
            lock(control, ExposureSettings(exposure, settings.analog_gain,
                                           settings.white_balance_gains))
            recording = rig.play([DARK], [FLICKER_HOLD_US], tail_us=latency_us)
            groups.append(recording.frames_inside(0, latency_us, 15_000))
    finally:
        lock(control, settings)
    if sum(len(g) for g in groups) < 8:
        raise CalibrationError("too few frames to measure the room light's flicker")
    return measure_flicker([g for g in groups if g], rig.info().fps, gamma)


def calibrate(config: LoadedConfig, rig: Rig, bundle: BundleInfo,
              run_live_check: Callable[[int, int], tuple[float | None, str]],
              scene: SimSceneControls | None, ui: Ui, options: Options) -> Outcome:
    """Measure everything and build the calibration file (not written here).
    ``run_live_check(k, latency_us)`` runs live check k with the measured latency."""
    pipeline = config.pipeline
    gamma = pipeline.camera_gamma
    durations: dict[str, float] = {}
    t = time.monotonic()

    def lap(name: str) -> None:
        nonlocal t
        now = time.monotonic()
        durations[name] = round(now - t, 2)
        t = now

    if scene is not None:
        show_sim_subject(scene, config, options, options.seed)
    else:
        ui.prompt("Stand where users stand, facing the camera, and hold still until the flashing "
                  "stops (about a minute); press Enter when ready")
    ui.step("exposure, gain and white balance")
    exposure = set_exposure(rig, gamma, ui.progress)
    lap("exposure")
    ui.step(f"flash-to-camera latency ({options.toggles} toggles)")
    latency = measure_latency(rig, options.toggles, pipeline.display_rise_us,
                              progress=ui.progress, columns=face_columns(exposure.points,
                                                                         rig.info().width))
    latency_us = max(0, latency.median_us)
    lap("latency")
    ui.step("colour response and flash SNR")
    colour = measure_colour(rig, latency_us, pipeline.challenge.levels, exposure.points, gamma)
    lap("colour")
    ui.step("ambient flicker")
    flicker = _measure_flicker(rig, exposure.settings, latency_us, gamma)
    lap("flicker")
    info = rig.info()
    distance = distance_model(exposure.points, info.width, info.height, _hfov(options, scene),
                              colour.flash_snr, pipeline.gates)
    site, findings = assess_site(exposure, latency, colour, flicker, distance, pipeline.gates,
                                 1e6 / info.fps)
    threshold: ThresholdChoice | None = None
    if colour.flash_snr < pipeline.gates.min_flash_snr:
        ui.note("live checks skipped: at this flash SNR every check answers retry; the "
                "bundle's threshold is kept")
    else:
        ui.step(f"decision threshold ({options.live_checks} live checks)")
        if scene is None:
            ui.note("Now live checks with real people: each one stands in front of the kiosk "
                    "as a user would")
        scores, retries = collect_live_scores(
            lambda k: run_live_check(k, latency_us), options.live_checks,
            2 * options.live_checks, ui.progress)
        if len(scores) >= 3:
            threshold = choose_threshold(scores, bundle.threshold, options.target_bpcer, retries)
        if len(scores) < options.live_checks:
            shown = ", ".join(f"{k} × {n}" for k, n in sorted(retries.items()))
            findings.add("warn", f"only {len(scores)} of {options.live_checks} live checks got "
                                 f"a score ({shown or 'none retried'}): users will see retries "
                                 "here; the threshold "
                                 + ("rests on fewer checks" if threshold else
                                    "stays the bundle's"))
            site = site.model_copy(update={"verdict": findings.verdict,
                                           "findings": findings.lines()})
        lap("threshold")
    calibration = CalibrationFile(
        format_version=2,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        identity=CalibrationIdentity(camera=camera_identity(info),
                                     flash=flash_identity(config), bundle_name=bundle.name,
                                     bundle_manifest_sha256=bundle.manifest_sha256),
        latency_us=latency_us,
        threshold=None if threshold is None else threshold.threshold,
        bundle_threshold=bundle.threshold,
        target_bpcer=options.target_bpcer if threshold is not None else None,
        exposure_us=exposure.settings.exposure_us,
        analog_gain=exposure.settings.analog_gain,
        white_balance_gains=exposure.settings.white_balance_gains,
        colour_response=colour.response,
        flash_snr=round(colour.flash_snr, 3),
        site=site,
        measurements={
            "latency": latency.summary(),
            "exposure": exposure.summary(),
            "colour": colour.summary(),
            "flicker": flicker.summary(),
            "distance": {"face_distance_m": round(distance.face_distance_m, 3),
                         "focal_px": round(distance.focal_px, 1),
                         "hfov_deg": _hfov(options, scene)},
            "threshold": None if threshold is None else threshold.summary(),
            "sim": None if scene is None else {
                "profile": scene.kiosk.profile.name,
                "ambient": options.scenario or config.daemon.kiosk.sim.ambient,
                "true_latency_us": scene.kiosk.latency_us, **_sim_options(options)},
            "durations_s": durations,
        },
    )
    return Outcome(calibration, exposure, latency, colour, flicker, distance, findings,
                   threshold, durations)


@dataclass(frozen=True)
class VerifyOutcome:
    due: bool
    reasons: tuple[str, ...]
    latency: LatencyResult
    flash_snr: float
    age_days: float | None

    def summary(self) -> dict[str, object]:
        return {"recalibration_due": self.due, "reasons": list(self.reasons),
                "latency": self.latency.summary(), "flash_snr": round(self.flash_snr, 3),
                "age_days": None if self.age_days is None else round(self.age_days, 2)}


def age_days(calibration: CalibrationFile, now: datetime | None = None) -> float | None:
    created = calibration.created_at()
    if created is None:
        return None
    return ((now or datetime.now(timezone.utc)) - created).total_seconds() / 86400


def verify(config: LoadedConfig, calibration: CalibrationFile, rig: Rig,
           scene: SimSceneControls | None, ui: Ui, options: Options) -> VerifyOutcome:
    """Latency and SNR again at the stored setting; says whether recalibration is due."""
    pipeline = config.pipeline
    if calibration.exposure_us is None:
        raise CalibrationError("the calibration file holds no exposure (format 1): run "
                               "flashfas-edge calibrate")
    if scene is not None:
        show_sim_subject(scene, config, options, options.seed)
    else:
        ui.prompt("Stand where users stand, facing the camera; press Enter when ready")
    control = exposure_control(rig)
    settings = ExposureSettings(calibration.exposure_us, calibration.analog_gain or 1.0,
                                calibration.white_balance_gains or (1.0, 1.0, 1.0))
    if not control.exposure_range().white_balance_settable:
        settings = ExposureSettings(settings.exposure_us, settings.analog_gain)
    lock(control, settings)
    points = rig.face_points(rig.frames_for(0.3))
    ui.step(f"flash-to-camera latency ({options.toggles} toggles)")
    latency = measure_latency(rig, options.toggles, pipeline.display_rise_us,
                              progress=ui.progress, columns=face_columns(points, rig.info().width))
    ui.step("flash SNR")
    colour = measure_colour(rig, max(0, latency.median_us), pipeline.challenge.levels, points,
                            pipeline.camera_gamma)
    reasons = []
    period_us = 1e6 / rig.info().fps
    moved = abs(latency.median_us - calibration.latency_us)
    if moved > period_us / 2:
        reasons.append(f"latency is {latency.median_us / 1000:.1f} ms, calibrated "
                       f"{calibration.latency_us / 1000:.1f} ms (moved by more than half a "
                       "frame)")
    snr = colour.flash_snr
    if snr < pipeline.gates.min_flash_snr_for_mismatch:
        limit = pipeline.gates.min_flash_snr_for_mismatch
        reasons.append(f"flash SNR {snr:.1f} is below {limit:g}")
    elif calibration.flash_snr and snr < 0.5 * calibration.flash_snr:
        reasons.append(f"flash SNR {snr:.1f} is under half the calibrated "
                       f"{calibration.flash_snr:.1f}: the site's light has changed")
    age = age_days(calibration)
    if age is not None and age > RECALIBRATE_AFTER_DAYS:
        reasons.append(f"the calibration is {age:.0f} days old (over {RECALIBRATE_AFTER_DAYS})")
    if not math.isfinite(snr):
        reasons.append("the flash SNR could not be measured")
    return VerifyOutcome(bool(reasons), tuple(reasons), latency, snr, age)


def write_calibration(calibration: CalibrationFile, path: Path) -> None:
    """JSON, validated again on the way out, written atomically."""
    text = calibration.model_dump_json(indent=2, exclude_none=True) + "\n"
    CalibrationFile.model_validate_json(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
