"""The daemon's configuration: one validated pydantic tree, loaded once at start (STYLE.md).

Sources, in order: the defaults below, one TOML file (``--config``), the calibration file it names
(written by ``flashfas-edge calibrate``), and the command-line switches the CLI passes in (e.g.
``--sim``). Nothing else in the package reads files or environment variables for configuration.
Every section forbids unknown keys, so a typo is a start-up error that names the key.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flashfas_edge.pipeline.config import DecisionThreshold, LatencyUs, PipelineConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

DEFAULT_CONFIG_PATH = Path("/etc/flashfas-edge/flashfas-edge.toml")
# sysexits.h EX_CONFIG: every command's exit code for an invalid configuration; the systemd unit's
# RestartPreventExitStatus, since a bad config won't heal itself
EX_CONFIG = 78
# Light rise time of an LED panel between flash states (its driver switches in microseconds).
LED_PANEL_RISE_US = 20


class ConfigError(ValueError):
    """The configuration or calibration file is missing, unreadable or invalid; names the file."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    # Loopback only by default: the kiosk app runs on the same board (docs/ARCHITECTURE.md §9).
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=0, le=65535)  # 0: pick a free port (tests, demo)
    # When set, the API listens on this Unix socket instead of TCP (file permissions then
    # decide who may connect, in addition to the API key).
    unix_socket: Path | None = None
    api_key_file: Path = Path("/etc/flashfas-edge/api-key")
    # Largest accepted body of POST /v1/evaluate/recorded (one session: ~5–10 frames).
    max_upload_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, le=1024**3)
    max_json_bytes: int = Field(default=4096, ge=64, le=1024 * 1024)
    # The API answers "open the door?": off the board only when someone says so explicitly.
    allow_non_loopback: bool = False
    # POST /v1/evaluate/recorded scores an uploaded recording for integrators' evaluation. Its
    # answers are never access decisions (nobody issued the recording's challenge), but they
    # tell whoever holds the key how the model sees a recording: off unless wanted.
    recorded_evaluation: bool = False
    # Slow or idle clients must not hold connections: the request line and headers must arrive
    # within header_timeout_s of the connection (or of the request's first byte on a kept-alive
    # one), a body within body_timeout_s; beyond max_connections a connection is answered 503
    # and closed. A 32 MiB upload over loopback takes well under a second.
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    body_timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_connections: int = Field(default=64, ge=4, le=10_000)

    @field_validator("host")
    @classmethod
    def _host_literal(cls, host: str) -> str:
        import ipaddress

        try:
            ipaddress.ip_address(host)
        except ValueError as exc:
            raise ValueError(f"host must be an IP address literal, got {host!r}") from exc
        return host

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> ServerConfig:
        import ipaddress

        if not ipaddress.ip_address(self.host).is_loopback and not self.allow_non_loopback:
            raise ValueError(f"host {self.host} is not a loopback address; set "
                             "allow_non_loopback = true to expose the API beyond this board")
        return self


class QueueConfig(_Section):
    # Checks that may wait while one runs; beyond that: 429 with Retry-After.
    max_waiting: int = Field(default=4, ge=0, le=100)
    # Request-level deadline of one check (the pipeline's own stage timeouts come first).
    check_timeout_s: float = Field(default=5.0, gt=0, le=120)


class LockoutConfig(_Section):
    """Refuse checks for a while after repeated challenge mismatches (daemon/challenge_lockout)."""

    max_mismatches: int = Field(default=5, ge=1, le=1000)
    window_s: float = Field(default=300.0, gt=0)
    cooldown_s: float = Field(default=300.0, ge=0)
    # each lock-out within escalation_window_s of the last lasts escalation × longer, up to
    # max_cooldown_s (docs/SAFETY.md §4: about 60 replay tries a day instead of ~1 400)
    escalation: float = Field(default=2.0, ge=1.0, le=10.0)
    max_cooldown_s: float = Field(default=14_400.0, ge=0)
    escalation_window_s: float = Field(default=86_400.0, gt=0)

    @model_validator(mode="after")
    def _cooldowns(self) -> LockoutConfig:
        if self.max_cooldown_s < self.cooldown_s:
            raise ValueError("max_cooldown_s must be at least cooldown_s")
        return self


class AuditConfig(_Section):
    path: Path = Path("/var/log/flashfas-edge/audit.jsonl")
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    backups: int = Field(default=5, ge=0, le=100)
    # Face images are personal data: off unless the site allows it (docs/ARCHITECTURE.md §9).
    store_images: bool = False
    images_dir: Path = Path("/var/lib/flashfas-edge/audit-images")


class WatchdogConfig(_Section):
    # No frame for this long: the camera has stalled → no WATCHDOG=1 ping, health degraded.
    frame_stale_s: float = Field(default=2.0, gt=0, le=60)
    # A check running this many times its deadline means the worker is stuck → stop pinging.
    stuck_check_factor: float = Field(default=3.0, ge=1, le=100)


class CameraConfig(_Section):
    device: str = "/dev/video0"
    width: int = Field(default=640, ge=64, le=8192)
    height: int = Field(default=480, ge=64, le=8192)
    fps: float = Field(default=30.0, gt=0, le=240)
    # Locked exposure; the calibration file's measured value wins when it has one.
    exposure_us: int | None = Field(default=None, gt=0, le=1_000_000)
    # Rolling-shutter readout (first to last row start); None: estimated from the frame period.
    readout_us: int | None = Field(default=None, ge=0, le=1_000_000)


class FlashConfig(_Section):
    kind: Literal["display", "led_serial"] = "display"
    # kind = "display": "browser" = the flash client the kiosk app's page includes (it connects
    # to /v1/flash/ws); "window" = a full-screen window of the daemon's own (SDL2 via pygame, the
    # [display-native] extra) for kiosks without a browser (docs/DISPLAY_FLASH.md). Unset: the
    # browser on a real kiosk, the simulated kiosk's own virtual display in sim mode.
    surface: Literal["browser", "window"] | None = None
    serial_port: str = "/dev/ttyACM0"
    baudrate: int = Field(default=115200, ge=1200)


class SimConfig(_Section):
    """The simulated kiosk (docs/ARCHITECTURE.md §8): what stands in front of the virtual camera."""

    scene: str = "live"  # live | print | replay | mask, or a quality-gate preset
    ambient: str = "office"  # one of the renderer's ambient scenarios (ATR-FAS §4.1)
    seed: int | None = None
    profile: str = "kiosk15_mipi"  # device profile: display, camera, latency (sim/device.py)
    fps: float = Field(default=30.0, gt=0, le=240)
    colour: bool = True  # the virtual display can show colours (challenge palette)
    # the people's face relief: scanned (the ICT-FaceKit morphable model, what the shipped model
    # was fine-tuned on and a real detector finds as it finds real faces) or the older procedural
    # relief (sim/face_shape.py FACE_SHAPES)
    face_shape: Literal["procedural", "scanned"] = "scanned"
    # the renderer's light transport: rgb (RGB albedo × flash colour) or spectral (skin, paints,
    # inks and the flash surface's primaries per wavelength; sim/spectral_render.py)
    physics: Literal["rgb", "spectral"] = "rgb"
    # Sim-only route PUT /v1/sim/scene lets the demo/tests change the scene through the API.
    scene_route: bool = True


class KioskConfig(_Section):
    mode: Literal["real", "sim"] = "real"
    camera: CameraConfig = CameraConfig()
    flash: FlashConfig = FlashConfig()
    sim: SimConfig = SimConfig()

    @property
    def display_surface(self) -> Literal["browser", "window"] | None:
        """The display driver that flashes (None: the LED panel, or the simulated kiosk's own
        virtual display)."""
        if self.flash.kind != "display":
            return None
        if self.flash.surface is not None:
            return self.flash.surface
        return "browser" if self.mode == "real" else None


class ModelConfig(_Section):
    bundle: Path | None = None  # None: the default bundle engines/edge-default
    backend: Literal["auto", "onnxruntime", "tensorrt"] = "onnxruntime"
    # ONNX Runtime intra-op threads; 1 measured fastest on a 2-core board (engines/README.md),
    # where the camera and the pipeline need the other core.
    threads: int = Field(default=1, ge=1, le=64)


class CalibrationIdentity(_Section):
    """What a calibration was made for: the daemon refuses it on other hardware or another
    bundle, naming both (kiosk/assembly.py)."""

    camera: str = Field(min_length=1, max_length=300)  # "sim:kiosk15_mipi 640x480@30"
    flash: str = Field(min_length=1, max_length=300)  # "sim:display", "real:led_serial"
    bundle_name: str = Field(min_length=1, max_length=300)
    bundle_manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class ColourState(_Section):
    """The camera's response to one flash state on the face: linear camera RGB over the dark
    state, and its gain against what the mixing matrix predicts (or the full white's)."""

    rgb: tuple[float, float, float]
    intensity: float = Field(ge=0, le=1)
    response: tuple[float, float, float]
    gain: float | None = None


class ColourResponse(_Section):
    # 3 × 3: column j is the camera's linear RGB response to the flash's primary j at full
    # intensity; None where the surface shows white only (no primaries to separate).
    mixing_matrix: tuple[tuple[float, float, float], tuple[float, float, float],
                         tuple[float, float, float]] | None = None
    states: tuple[ColourState, ...] = ()
    region: Literal["face", "grey_card"] = "face"


class SiteAssessment(_Section):
    """Whether the install site is fit for flash liveness, in words an integrator acts on."""

    verdict: Literal["pass", "warn", "fail"]
    findings: tuple[str, ...] = ()  # one line each: what was measured, the limit, what to do
    flash_snr: float | None = Field(default=None, ge=0)
    mains_hz: float | None = None  # the detected mains frequency (50 / 60), None: no flicker
    flicker_modulation: float | None = Field(default=None, ge=0)
    distance_range_m: tuple[float, float] | None = None


# Keys only format 2 knows (format 1 files were written by hand or by site tools).
_FORMAT_2_KEYS = ("identity", "analog_gain", "colour_response", "site", "bundle_threshold",
                  "target_bpcer")


class CalibrationFile(_Section):
    """What ``flashfas-edge calibrate`` measures at the install site (docs/CALIBRATE.md).

    Format 2 (what calibrate writes) records the camera, flash surface and model bundle it was
    made for, when, and the site verdict. Format 1 (latency and threshold only, no identity) is
    still read: it cannot be checked against the hardware, so the daemon logs that it is used
    unchecked.
    """

    format_version: Literal[1, 2] = 1
    created: str | None = None  # ISO 8601 with a time zone (required in format 2)
    device: str | None = None  # format 1: free-form camera/flash identity
    identity: CalibrationIdentity | None = None
    latency_us: LatencyUs  # display/LED-to-camera latency
    # Decision threshold on P(live); never below the bundle's (calibration only makes stricter)
    threshold: DecisionThreshold | None = None
    bundle_threshold: DecisionThreshold | None = None  # the bundle's own, when calibrated
    target_bpcer: float | None = Field(default=None, gt=0, lt=0.5)
    exposure_us: int | None = Field(default=None, gt=0, le=1_000_000)
    analog_gain: float | None = Field(default=None, ge=1, le=64)
    white_balance_gains: tuple[float, float, float] | None = None
    colour_response: ColourResponse | None = None
    flash_snr: float | None = Field(default=None, ge=0)  # flash response over ambient noise
    site: SiteAssessment | None = None
    measurements: dict[str, Any] = Field(default_factory=dict)  # evidence behind the values

    @field_validator("white_balance_gains")
    @classmethod
    def _gains_positive(
        cls, gains: tuple[float, float, float] | None
    ) -> tuple[float, float, float] | None:
        if gains is not None and not all(0 < g <= 16 for g in gains):
            raise ValueError(f"white balance gains {gains} must be in (0, 16]")
        return gains

    @field_validator("created")
    @classmethod
    def _created_iso(cls, created: str | None) -> str | None:
        if created is not None:
            try:
                stamp = datetime.fromisoformat(created)
            except ValueError as exc:
                raise ValueError(f"{created!r} is not an ISO 8601 time") from exc
            if stamp.tzinfo is None:
                raise ValueError(f"{created!r} has no time zone")
        return created

    @model_validator(mode="after")
    def _by_format(self) -> CalibrationFile:
        if self.format_version == 1:
            extra = [k for k in _FORMAT_2_KEYS if getattr(self, k) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} need format_version 2")
        else:
            missing = [k for k in ("identity", "created", "site") if getattr(self, k) is None]
            if missing:
                raise ValueError(f"format_version 2 needs {', '.join(missing)}")
        if (self.threshold is not None and self.bundle_threshold is not None
                and self.threshold < self.bundle_threshold):
            raise ValueError(f"threshold {self.threshold} is below the bundle's "
                             f"{self.bundle_threshold}: calibration may only make the kiosk "
                             "stricter")
        return self

    def created_at(self) -> datetime | None:
        return datetime.fromisoformat(self.created) if self.created else None


class DaemonConfig(_Section):
    server: ServerConfig = ServerConfig()
    queue: QueueConfig = QueueConfig()
    lockout: LockoutConfig = LockoutConfig()
    audit: AuditConfig = AuditConfig()
    watchdog: WatchdogConfig = WatchdogConfig()
    kiosk: KioskConfig = KioskConfig()
    model: ModelConfig = ModelConfig()
    calibration_file: Path | None = None
    pipeline: PipelineConfig = PipelineConfig()

    @model_validator(mode="after")
    def _rise_time_of_the_surface(self) -> DaemonConfig:
        """An LED panel's light rises in microseconds, a display's in milliseconds: unless the
        configuration says otherwise, the timing verification models the surface in use (with a
        display's 4 ms, live faces lit by an LED panel fail it)."""
        if (self.kiosk.flash.kind == "led_serial"
                and "display_rise_us" not in self.pipeline.model_fields_set):
            pipeline = self.pipeline.model_copy(update={"display_rise_us": LED_PANEL_RISE_US})
            object.__setattr__(self, "pipeline", pipeline)  # frozen section, validated once
        return self

    @model_validator(mode="after")
    def _browser_flash_needs_tcp(self) -> DaemonConfig:
        """A browser's WebSocket cannot reach a Unix socket: the browser flash client connects to
        the loopback TCP listener."""
        if self.kiosk.display_surface == "browser" and self.server.unix_socket is not None:
            raise ValueError("kiosk.flash: the browser display flash connects over TCP "
                             "(server.host/port); it cannot use server.unix_socket")
        return self


@dataclass(frozen=True)
class LoadedConfig:
    """The validated tree plus where it came from; ``pipeline`` has calibration applied."""

    daemon: DaemonConfig
    pipeline: PipelineConfig
    calibration: CalibrationFile | None
    source: Path | None

    @property
    def sim(self) -> bool:
        return self.daemon.kiosk.mode == "sim"


def _format_validation(exc: ValidationError) -> str:
    """Every error as ``key: message``, on one line (what ``serve`` prints before exit 78)."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {' '.join(str(err['msg']).split())}")
    return "; ".join(parts)


def _read_table(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        if path.suffix == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:  # TOMLDecodeError/JSONDecodeError
        kind = "JSON" if path.suffix == ".json" else "TOML"
        raise ConfigError(f"{path} is not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a table/object at the top level")
    return data


def load_calibration(path: Path) -> CalibrationFile:
    data = _read_table(path)
    try:
        return CalibrationFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid calibration file {path}: {_format_validation(exc)}") from exc


def _resolve_relative(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a config file are relative to that file, not to the working directory."""
    sections = {
        ("server", "api_key_file"), ("server", "unix_socket"), ("audit", "path"),
        ("audit", "images_dir"), ("model", "bundle"),
    }
    for section, key in sections:
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), str) and table[key]:
            if not Path(table[key]).is_absolute():
                table[key] = str(base / table[key])
    cal = data.get("calibration_file")
    if isinstance(cal, str) and cal and not Path(cal).is_absolute():
        data["calibration_file"] = str(base / cal)


def load_config(
    path: Path | None,
    *,
    sim: bool = False,
    overrides: dict[str, dict[str, Any]] | None = None,
    with_calibration: bool = True,
) -> LoadedConfig:
    """Load and validate everything once. ``overrides`` are section→key→value from the CLI;
    ``with_calibration=False`` leaves the calibration file unread (``calibrate`` replaces it)."""
    data: dict[str, Any] = {}
    if path is not None:
        data = _read_table(path)
        _resolve_relative(data, path.resolve().parent)
    if sim:
        data.setdefault("kiosk", {})["mode"] = "sim"
    kiosk_table = data.get("kiosk")
    if isinstance(kiosk_table, dict) and kiosk_table.get("mode") == "sim":
        # The simulated kiosk knows its landmarks; a detector is only the default for cameras.
        pipeline_table = data.setdefault("pipeline", {})
        if isinstance(pipeline_table, dict):
            landmarks_table = pipeline_table.setdefault("landmarks", {})
            if isinstance(landmarks_table, dict):
                landmarks_table.setdefault("provider", "ground_truth")
    for section, values in (overrides or {}).items():
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"[{section}] in {path} must be a table")
        target.update(values)
    try:
        daemon = DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid configuration {path or '(defaults)'}: {_format_validation(exc)}"
        ) from exc
    calibration = (load_calibration(daemon.calibration_file)
                   if daemon.calibration_file and with_calibration else None)
    pipeline = daemon.pipeline
    if calibration is not None:
        # Calibration measured at the site wins over the file's generic values
        # (docs/ARCHITECTURE.md §6).
        update: dict[str, Any] = {"latency_us": calibration.latency_us}
        if calibration.threshold is not None:
            update["threshold_override"] = calibration.threshold
        try:
            pipeline = PipelineConfig.model_validate({**pipeline.model_dump(), **update})
        except ValidationError as exc:  # the shared bounds make this unreachable; fail clean
            raise ConfigError(
                f"calibration file {daemon.calibration_file} does not fit the configuration: "
                f"{_format_validation(exc)}"
            ) from exc
    return LoadedConfig(daemon=daemon, pipeline=pipeline, calibration=calibration, source=path)
