"""Build the daemon's kiosk from the configuration: camera, flash, landmarks, backend, pipeline.

``kiosk.mode = "sim"`` (or ``serve --sim``) selects the simulated kiosk — a virtual camera and a
virtual flash sharing one rendered scene (docs/ARCHITECTURE.md §8); ``real`` the V4L2 camera and
the display or LED-panel flash. Everything else (pipeline, backend, API) is the same in both
modes. The result is a :class:`Kiosk`: the liveness service, and the scene controls of a
simulated kiosk (None on a real one).
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flashfas_edge.capture.base import Camera
from flashfas_edge.config import ConfigError, LoadedConfig
from flashfas_edge.daemon.challenge_lockout import ChallengeLockout
from flashfas_edge.daemon.service import LivenessService
from flashfas_edge.flash.base import FlashDriver
from flashfas_edge.flash.display_flash import DisplayFlash, FlashClientHub
from flashfas_edge.flash.presentation import PresentedListener
from flashfas_edge.kiosk.flash_surface import display_flash
from flashfas_edge.kiosk.recording import CheckRecording
from flashfas_edge.kiosk.sim_scene import SimSceneControls, build_sim_kiosk

DEFAULT_BUNDLE_NAME = "edge-default"


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
    if config.sim:
        camera, flash, sim_controls = _sim_kiosk(config)
        if config.calibration is None:
            # The simulated device's latency and light rise time (display or LED panel) are
            # known exactly: what calibration would measure.
            pipeline_config = pipeline_config.model_copy(update={
                "latency_us": int(sim_controls.kiosk.latency_us),
                "display_rise_us": int(sim_controls.kiosk.profile.display_rise_us)})
    else:
        camera, flash = _real_kiosk(config)
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
                                 daemon.lockout.cooldown_s),
    )
    if sim_controls is not None:
        sim_controls.previous_check_frames = lambda: service.last_check_frames
    return Kiosk(service, sim_controls, flash if isinstance(flash, DisplayFlash) else None)
