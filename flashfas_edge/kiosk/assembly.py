"""Build the daemon's kiosk from the configuration: camera, flash, landmarks, backend, pipeline.

``kiosk.mode = "sim"`` (or ``serve --sim``) selects the simulated kiosk — a virtual camera and a
virtual flash sharing one rendered scene (docs/ARCHITECTURE.md §8); ``real`` the V4L2 camera and
the display or LED-panel flash. Everything else (pipeline, backend, API) is the same in both
modes. The result is a :class:`Kiosk`: the liveness service, and the scene controls of a
simulated kiosk (None on a real one).
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flashfas_edge.capture.base import Camera, CameraInfo, ExposureControl, ExposureSettings
from flashfas_edge.config import CalibrationFile, ConfigError, LoadedConfig
from flashfas_edge.daemon.challenge_lockout import ChallengeLockout
from flashfas_edge.daemon.service import LivenessService
from flashfas_edge.flash.base import FlashDriver
from flashfas_edge.flash.display_flash import DisplayFlash, FlashClientHub
from flashfas_edge.flash.presentation import PresentedListener
from flashfas_edge.kiosk.flash_surface import display_flash
from flashfas_edge.kiosk.recording import CheckRecording
from flashfas_edge.kiosk.sim_scene import SimSceneControls, build_sim_kiosk

DEFAULT_BUNDLE_NAME = "edge-default"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Kiosk:
    service: LivenessService
    scene_controls: SimSceneControls | None  # the simulated kiosk's scene (None: a real kiosk)
    # the browser display flash, which the API's /v1/flash/ws hands its clients to (None: the
    # flash is another surface)
    flash_clients: FlashClientHub | None = None


def default_bundle_dir() -> Path:
    """engines/edge-default beside the source tree, else the installed data directories."""
    package_dir = Path(__file__).resolve().parents[1]
    candidates = [
        package_dir.parent / "engines" / DEFAULT_BUNDLE_NAME,  # source checkout / editable
        package_dir / "engines" / DEFAULT_BUNDLE_NAME,  # bundled as package data
        Path(sys.prefix) / "share" / "flashfas-edge" / "engines" / DEFAULT_BUNDLE_NAME,
        Path("/usr/share/flashfas-edge/engines") / DEFAULT_BUNDLE_NAME,
    ]
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return candidate
    shown = "\n  ".join(str(c) for c in candidates)
    raise ConfigError(f"no default model bundle found; looked in:\n  {shown}\n"
                      "set [model] bundle = \"...\" or pass --bundle")


def _load(module: str, name: str, what: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ModuleNotFoundError, AttributeError) as exc:
        raise ConfigError(f"{what} is not available in this build ({module}.{name}: {exc})") \
            from exc


def _sim_kiosk(config: LoadedConfig) -> tuple[Camera, FlashDriver, SimSceneControls]:
    """(camera, flash, scene controls) of the simulated kiosk."""
    kiosk = config.daemon.kiosk
    if kiosk.display_surface is None:
        return build_sim_kiosk(kiosk.sim, kiosk.camera, kiosk.flash)

    def display(light: PresentedListener) -> FlashDriver:
        return display_flash(kiosk, on_presented=light)

    return build_sim_kiosk(kiosk.sim, kiosk.camera, kiosk.flash, display)


def real_camera(config: LoadedConfig) -> Camera:
    """The V4L2 camera with the locked exposure: calibration's measurement, else the config's."""
    camera_config = config.daemon.kiosk.camera
    camera_cls = _load("flashfas_edge.capture.v4l2_camera", "V4L2Camera", "the V4L2 camera")
    calibrated_exposure_us = config.calibration.exposure_us if config.calibration else None
    return camera_cls(camera_config.device, width=camera_config.width,
                      height=camera_config.height, fps=camera_config.fps,
                      exposure_us=calibrated_exposure_us or camera_config.exposure_us,
                      readout_us=camera_config.readout_us)


def camera_identity(info: CameraInfo) -> str:
    """The camera a calibration belongs to: its device name and mode."""
    return f"{info.name} {info.width}x{info.height}@{info.fps:g}"


def flash_identity(config: LoadedConfig) -> str:
    """The flash surface a calibration belongs to: real or simulated, display or LED panel."""
    return f"{config.daemon.kiosk.mode}:{config.daemon.kiosk.flash.kind}"


def build_devices(config: LoadedConfig) -> tuple[Camera, FlashDriver, SimSceneControls | None]:
    """The camera and the flash surface of the configured kiosk (and the simulated kiosk's scene
    controls; None on a real one), not started. ``serve`` and ``calibrate`` build them here."""
    if config.sim:
        return _sim_kiosk(config)
    return (*_real_kiosk(config), None)


def check_calibration(calibration: CalibrationFile, source: Path | None, camera: Camera,
                      config: LoadedConfig, bundle_name: str, bundle_sha256: str,
                      bundle_threshold: float) -> None:
    """Refuse a calibration made for other hardware or another bundle, or one that would make
    the kiosk more lenient than the bundle (ConfigError, exit 78), naming both sides."""
    where = source.name if source is not None else "calibration"
    if calibration.threshold is not None and calibration.threshold < bundle_threshold:
        raise ConfigError(f"calibration file {where}: threshold {calibration.threshold:g} is "
                          f"below bundle {bundle_name!r}'s {bundle_threshold:g}; calibration may "
                          "only make the kiosk stricter — run flashfas-edge calibrate again")
    identity = calibration.identity
    if identity is None:  # format 1: nothing to check it against
        log.warning("calibration file %s (format 1) records no camera, flash or bundle: used "
                    "unchecked; run flashfas-edge calibrate to replace it", where)
        return
    here = {"camera": camera_identity(camera.info()), "flash": flash_identity(config),
            "bundle": f"{bundle_name} (manifest sha256 {bundle_sha256[:12]})"}
    made_for = {"camera": identity.camera, "flash": identity.flash,
                "bundle": f"{identity.bundle_name} (manifest sha256 "
                          f"{identity.bundle_manifest_sha256[:12]})"}
    differ = [k for k in here if here[k] != made_for[k]]
    if differ:
        shown = "; ".join(f"{k}: made for {made_for[k]!r}, this kiosk has {here[k]!r}"
                          for k in differ)
        raise ConfigError(f"calibration file {where} was made for other hardware or another "
                          f"model bundle ({shown}); run flashfas-edge calibrate on this kiosk")


def _apply_calibrated_exposure(camera: Camera, calibration: CalibrationFile) -> None:
    """Hold the calibrated exposure, gain and white balance on a camera that can be set."""
    if calibration.exposure_us is None or not isinstance(camera, ExposureControl):
        return
    settings = ExposureSettings(calibration.exposure_us, calibration.analog_gain or 1.0,
                                calibration.white_balance_gains or (1.0, 1.0, 1.0))
    if camera.exposure_range().white_balance_settable is False:
        settings = ExposureSettings(settings.exposure_us, settings.analog_gain)
    camera.lock_exposure(settings)


def _real_kiosk(config: LoadedConfig) -> tuple[Camera, FlashDriver]:
    kiosk = config.daemon.kiosk
    camera = real_camera(config)
    if kiosk.flash.kind == "led_serial":
        flash_cls = _load("flashfas_edge.flash.led_serial", "LedSerialFlash", "the LED panel")
        flash = flash_cls(kiosk.flash.serial_port, baudrate=kiosk.flash.baudrate)
    else:
        flash = display_flash(kiosk, config.pipeline.challenge.idle_rgb)
    return camera, flash


def build_kiosk(config: LoadedConfig) -> Kiosk:
    """Load the bundle (BundleError names the file), build the kiosk and the pipeline."""
    from flashfas_edge.face.factory import create_landmark_provider
    from flashfas_edge.inference.factory import create_backend
    from flashfas_edge.pipeline.pipeline import Pipeline, PipelineSetupError

    daemon = config.daemon
    bundle_dir = daemon.model.bundle or default_bundle_dir()
    backend = create_backend(
        bundle_dir, daemon.model.backend, intra_op_threads=daemon.model.threads,
        warm_up=False,  # the service warms up in the background, then reports ready
    )
    sim_controls: SimSceneControls | None = None
    pipeline_config = config.pipeline
    camera: Camera
    flash: FlashDriver
    camera, flash, sim_controls = build_devices(config)
    if config.calibration is not None:
        bundle = backend.bundle
        check_calibration(config.calibration, daemon.calibration_file, camera, config,
                          bundle.name, bundle.manifest_sha256, bundle.threshold_default)
        if sim_controls is not None:  # a V4L2 camera gets the exposure when it is made
            _apply_calibrated_exposure(camera, config.calibration)
    if sim_controls is not None:
        if config.calibration is None:
            # The simulated device's latency and light rise time (display or LED panel) are
            # known exactly: what calibration would measure.
            pipeline_config = pipeline_config.model_copy(update={
                "latency_us": int(sim_controls.kiosk.latency_us),
                "display_rise_us": int(sim_controls.kiosk.profile.display_rise_us)})
    recording = CheckRecording(camera, flash)
    landmarks = create_landmark_provider(pipeline_config.landmarks)
    try:
        pipeline = Pipeline(recording.camera, recording.flash, landmarks, backend,
                            pipeline_config)
    except PipelineSetupError as exc:
        raise ConfigError(str(exc)) from exc
    bundle = backend.bundle
    service = LivenessService(
        camera, flash, recording, backend, pipeline,
        mode="sim" if config.sim else "real",
        frame_stale_s=daemon.watchdog.frame_stale_s,
        model_identity={"name": bundle.name, "manifest_sha256": bundle.manifest_sha256,
                        "directory": str(bundle.directory)},
        latency_us=pipeline_config.latency_us,
        lockout=ChallengeLockout(daemon.lockout.max_mismatches, daemon.lockout.window_s,
                                 daemon.lockout.cooldown_s,
                                 escalation=daemon.lockout.escalation,
                                 max_cooldown_s=daemon.lockout.max_cooldown_s,
                                 escalation_window_s=daemon.lockout.escalation_window_s),
    )
    if sim_controls is not None:
        sim_controls.previous_check_frames = lambda: service.last_check_frames
    return Kiosk(service, sim_controls, flash if isinstance(flash, DisplayFlash) else None)
