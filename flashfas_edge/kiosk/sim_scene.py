"""The simulated kiosk (``serve --sim``) and its scene control (``PUT /v1/sim/scene``, ``record``).

Builds the shared :class:`~flashfas_edge.sim.kiosk.SimKiosk` with its virtual camera and flash,
and maps API scene requests onto it: a subject (``live``, ``print``, ``replay``, ``mask``), a
quality-gate preset (``no_face``, ``two_faces``, ``too_far``, ``too_near``, ``strong_motion``,
``too_dark``, ``overexposed``, ``strong_ambient``, ``flash_never_shows``), or
``injected_replay``: the camera stream replaced by the frames of the previous check (a replayed
recording with valid reflections but the wrong challenge). A scene it cannot show is a
:class:`SceneError` (the API answers 422, the configuration exit 78).
"""

from __future__ import annotations

import atexit
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flashfas_edge.capture.base import Camera, Frame
from flashfas_edge.clock import monotonic_us
from flashfas_edge.config import CameraConfig, ConfigError, FlashConfig, SimConfig
from flashfas_edge.flash.base import FlashDriver
from flashfas_edge.flash.presentation import PresentedListener

if TYPE_CHECKING:  # the renderer is loaded only when a simulated kiosk is built
    from flashfas_edge.sim.kiosk import SimKiosk, Subject

ATTACK_SCENES = ("live", "print", "replay", "mask")
INJECTED_REPLAY = "injected_replay"


class SceneError(ValueError):
    """The simulated kiosk cannot show the scene asked for; the message says why."""


def scene_error(scene: str, ambient: str | None = None, *, replay_ok: bool = True) -> str | None:
    """Why the simulated kiosk cannot show ``scene`` under ``ambient`` (None: it can). Checked
    before a daemon starts, with the same names the scene route accepts."""
    from flashfas_edge.sim.ambient import SCENARIOS
    from flashfas_edge.sim.kiosk import Subject

    if ambient is not None and ambient not in SCENARIOS:
        return f"unknown ambient {ambient!r}; known: {', '.join(SCENARIOS)}"
    subjects = (*ATTACK_SCENES, INJECTED_REPLAY) if replay_ok else ATTACK_SCENES
    if scene in subjects:
        return None
    try:
        Subject.preset(scene)
    except ValueError as exc:  # names the quality-gate presets
        return f"unknown scene {scene!r}: not one of {', '.join(subjects)}, and {exc}"
    return None


class SimSceneOptions(BaseModel):
    """Subject fields a request may override through ``options`` (everything else is fixed),
    bounded to what the renderer can draw: a value outside would fail inside the camera's
    render loop instead of in the request."""

    model_config = ConfigDict(extra="forbid", strict=True)

    identity: int | None = Field(None, ge=0, le=1_000_000)
    faces: int = Field(1, ge=1, le=2)
    face_present: bool = True
    # 5 cm (far too near) to 3 m (far too far): the quality-gate presets lie inside
    distance_range_m: tuple[float, float] = Field((0.3, 0.5))
    motion_px: float = Field(0.2, ge=0, le=200)
    exposure_scale: float = Field(1.0, ge=1e-4, le=100)
    ambient_scale: float = Field(1.0, ge=0, le=1000)
    flash_visible: bool = True
    # mains flicker of the room light: the mains frequency, and its amplitude instead of the
    # ambient scenario's own (None)
    mains_hz: float = Field(50.0, ge=50, le=60)
    flicker: float | None = Field(None, ge=0, le=0.5)

    @field_validator("distance_range_m", mode="before")
    @classmethod
    def _pair(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        if not (isinstance(value, tuple) and len(value) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise ValueError("must be a pair of numbers [near_m, far_m]")
        near, far = (float(v) for v in value)
        if not (0.05 <= near <= far <= 3.0):
            raise ValueError("must satisfy 0.05 <= near_m <= far_m <= 3.0")
        return (near, far)


class SimSceneControls:
    def __init__(self, kiosk: SimKiosk) -> None:
        self.kiosk = kiosk
        self._lock = threading.Lock()
        self._label: str | None = "live"
        # Set by the service: the frames the previous check captured (for injected_replay).
        self.previous_check_frames: Callable[[], list[Frame]] = list
        # The virtual camera's newest frame time (set by build_sim_kiosk): a scene change returns
        # once a frame of the new scene exists, so the next check never sees the old one.
        self.last_frame_time_us: Callable[[], int | None] = lambda: None

    def subject_for(self, scene: str, ambient: str | None = None, seed: int | None = None,
                    options: dict[str, Any] | None = None) -> Subject:
        from flashfas_edge.sim.ambient import SCENARIOS
        from flashfas_edge.sim.kiosk import Subject

        options = options or {}
        try:
            given = SimSceneOptions.model_validate(options)
        except ValidationError as exc:
            shown = "; ".join(f"options.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                              for e in exc.errors())
            raise SceneError(f"invalid scene options: {shown}") from exc
        base: dict[str, Any] = {"seed": seed or 0}
        if ambient is not None:
            if ambient not in SCENARIOS:
                raise SceneError(f"unknown ambient {ambient!r}; known: {SCENARIOS}")
            base["scenario"] = ambient
        chosen = given.model_dump(include=set(options))
        try:
            if scene in ATTACK_SCENES:
                return Subject(attack_type=scene, **base, **chosen)
            return Subject.preset(scene, **base, **chosen)
        except (ValueError, TypeError) as exc:
            raise SceneError(f"invalid scene: {exc}") from exc

    def set_scene(self, scene: str, ambient: str | None = None, seed: int | None = None,
                  options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Render the requested scene (≈0.1–0.5 s) and show it to the virtual camera."""
        with self._lock:
            if scene == INJECTED_REPLAY:
                frames = self.previous_check_frames()
                if not frames:
                    raise SceneError("injected_replay needs an earlier check to replay")
                self.kiosk.inject_stream([f.image for f in frames],
                                         [f.meta.get("landmarks") for f in frames])
                self._label = "replay"
            else:
                subject = self.subject_for(scene, ambient, seed, options)
                self.kiosk.inject_stream(None)
                self.kiosk.set_subject(subject)
                self._label = subject.attack_type if scene in ATTACK_SCENES else None
            self._wait_for_a_new_frame()
            shown = self.kiosk.subject
            return {"scene": scene, "ambient": shown.scenario, "seed": shown.seed,
                    "options": dict(options or {})}

    def _wait_for_a_new_frame(self, timeout_s: float = 2.0) -> None:
        """Until the camera delivers a frame that started after the change (a frame rendered
        before it, still queued, shows the old scene). Returns at once when no camera runs."""
        changed_us = monotonic_us()
        last = self.last_frame_time_us()
        if last is None:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            last = self.last_frame_time_us()
            if last is not None and last > changed_us:
                return
            time.sleep(0.005)

    def current_label(self) -> str | None:
        """The attack_type label of what the camera sees (None for quality-gate presets)."""
        return self._label


def build_sim_kiosk(sim: SimConfig, camera: CameraConfig, flash: FlashConfig | None = None,
                    display: Callable[[PresentedListener], FlashDriver] | None = None,
                    ) -> tuple[Camera, FlashDriver, SimSceneControls]:
    """(virtual camera, virtual flash, scene controls) sharing one simulated kiosk. With
    ``[kiosk.flash] kind = "led_serial"`` the flash is the real LED-panel driver on the panel
    simulator's pty, and the emitters the firmware switched light the scene (sim/led_panel.py).
    With ``display`` (a real display driver, given the listener for what it presents) the
    presentations that driver reports light the scene (sim/kiosk_flash.py, PresentedLight)."""
    from flashfas_edge.flash.led_serial import LedSerialFlash
    from flashfas_edge.sim.device import PROFILE_BY_NAME
    from flashfas_edge.sim.kiosk import SimKiosk
    from flashfas_edge.sim.kiosk_camera import SimCamera
    from flashfas_edge.sim.kiosk_flash import PresentedLight, SimFlashDriver
    from flashfas_edge.sim.led_panel import (
        PanelSimulatorError,
        led_panel_profile,
        start_led_panel,
    )

    profile = PROFILE_BY_NAME.get(sim.profile)
    if profile is None:
        raise ConfigError(f"kiosk.sim.profile {sim.profile!r} is not one of "
                          f"{sorted(PROFILE_BY_NAME)}")
    led_panel = flash is not None and flash.kind == "led_serial"
    if led_panel:
        profile = led_panel_profile(profile)
    kiosk = SimKiosk(profile, width=camera.width, height=camera.height, seed=sim.seed or 0,
                     face_shape=sim.face_shape, physics=sim.physics)
    controls = SimSceneControls(kiosk)
    try:
        controls.set_scene(sim.scene, sim.ambient, sim.seed)
    except SceneError as exc:  # a bad [kiosk.sim] value: a start-up error (exit 78)
        raise ConfigError(f"kiosk.sim: {exc}") from exc
    if led_panel:
        assert flash is not None
        port = Path(tempfile.mkdtemp(prefix="flashfas-ledpanel-")) / "ttyPANEL"
        try:
            panel = start_led_panel(kiosk, port)
        except PanelSimulatorError as exc:
            raise ConfigError(f"kiosk.flash: {exc}") from exc
        atexit.register(panel.stop)
        sim_camera = SimCamera(kiosk, fps=sim.fps)
        controls.last_frame_time_us = sim_camera.last_frame_time_us
        return sim_camera, LedSerialFlash(str(port), flash.baudrate), controls
    sim_camera = SimCamera(kiosk, fps=sim.fps)
    controls.last_frame_time_us = sim_camera.last_frame_time_us
    if display is not None:
        return sim_camera, display(PresentedLight(kiosk)), controls
    return sim_camera, SimFlashDriver(kiosk, colour=sim.colour), controls
