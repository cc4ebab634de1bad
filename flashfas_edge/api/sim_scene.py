"""The daemon's simulated kiosk (``serve --sim``) and its scene control (``PUT /v1/sim/scene``).

Builds the shared :class:`~flashfas_edge.sim.kiosk.SimKiosk` with its virtual camera and flash,
and maps API scene requests onto it: a subject (``live``, ``print``, ``replay``, ``mask``), a
quality-gate preset (``no_face``, ``two_faces``, ``too_far``, ``too_near``, ``strong_motion``,
``too_dark``, ``overexposed``, ``strong_ambient``, ``flash_never_shows``), or
``injected_replay``: the camera stream replaced by the frames of the previous check (a replayed
recording with valid reflections but the wrong challenge).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flashfas_edge.api.errors import InvalidRequest
from flashfas_edge.api.models import SimSceneRequest
from flashfas_edge.capture.base import Frame
from flashfas_edge.config import CameraConfig, ConfigError, SimConfig

ATTACK_SCENES = ("live", "print", "replay", "mask")
INJECTED_REPLAY = "injected_replay"


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
    def __init__(self, kiosk: Any) -> None:
        self.kiosk = kiosk  # flashfas_edge.sim.kiosk.SimKiosk
        self._lock = threading.Lock()
        self._label: str | None = "live"
        # Set by the service: the frames the previous check captured (for injected_replay).
        self.previous_check_frames: Callable[[], list[Frame]] = list

    def subject_for(self, request: SimSceneRequest) -> Any:
        from flashfas_edge.sim.ambient import SCENARIOS
        from flashfas_edge.sim.kiosk import Subject

        try:
            given = SimSceneOptions.model_validate(request.options)
        except ValidationError as exc:
            details = [{"loc": ["options", *map(str, e["loc"])], "msg": e["msg"]}
                       for e in exc.errors()]
            shown = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details)
            raise InvalidRequest(f"invalid scene options: {shown}", details=details) from exc
        base: dict[str, Any] = {"seed": request.seed or 0}
        if request.ambient is not None:
            if request.ambient not in SCENARIOS:
                raise InvalidRequest(f"unknown ambient {request.ambient!r}; known: {SCENARIOS}")
            base["scenario"] = request.ambient
        options = given.model_dump(include=set(request.options))
        try:
            if request.scene in ATTACK_SCENES:
                return Subject(attack_type=request.scene, **base, **options)
            return Subject.preset(request.scene, **base, **options)
        except (ValueError, TypeError) as exc:
            raise InvalidRequest(f"invalid scene: {exc}") from exc

    def set_scene(self, request: SimSceneRequest) -> dict[str, Any]:
        """Render the requested scene (≈0.1–0.5 s) and show it to the virtual camera."""
        with self._lock:
            if request.scene == INJECTED_REPLAY:
                frames = self.previous_check_frames()
                if not frames:
                    raise InvalidRequest("injected_replay needs an earlier check to replay")
                self.kiosk.inject_stream([f.image for f in frames],
                                         [f.meta.get("landmarks") for f in frames])
                self._label = "replay"
            else:
                subject = self.subject_for(request)
                self.kiosk.inject_stream(None)
                self.kiosk.set_subject(subject)
                self._label = subject.attack_type if request.scene in ATTACK_SCENES else None
            subject = self.kiosk.subject
            return {"scene": request.scene, "ambient": subject.scenario, "seed": subject.seed,
                    "options": dict(request.options)}

    def current_label(self) -> str | None:
        """The attack_type label of what the camera sees (None for quality-gate presets)."""
        return self._label


def build_sim_kiosk(sim: SimConfig, camera: CameraConfig) -> tuple[Any, Any, SimSceneControls]:
    """(virtual camera, virtual flash, scene controls) sharing one simulated kiosk."""
    from flashfas_edge.sim.device import PROFILE_BY_NAME
    from flashfas_edge.sim.kiosk import SimKiosk
    from flashfas_edge.sim.kiosk_camera import SimCamera
    from flashfas_edge.sim.kiosk_flash import SimFlashDriver

    profile = PROFILE_BY_NAME.get(sim.profile)
    if profile is None:
        raise ConfigError(f"kiosk.sim.profile {sim.profile!r} is not one of "
                          f"{sorted(PROFILE_BY_NAME)}")
    kiosk = SimKiosk(profile, width=camera.width, height=camera.height, seed=sim.seed or 0)
    controls = SimSceneControls(kiosk)
    try:
        controls.set_scene(SimSceneRequest(scene=sim.scene, ambient=sim.ambient, seed=sim.seed))
    except InvalidRequest as exc:  # a bad [kiosk.sim] value: a start-up error (exit 78)
        raise ConfigError(f"kiosk.sim: {exc}") from exc
    return SimCamera(kiosk, fps=sim.fps), SimFlashDriver(kiosk, colour=sim.colour), controls
