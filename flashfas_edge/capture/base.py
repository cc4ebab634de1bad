"""The Camera interface (docs/ARCHITECTURE.md §1 step 3): a ring buffer of timestamped frames.

Real cameras (V4L2/OpenCV) and the simulated kiosk camera implement the same small protocol, so the
pipeline cannot tell them apart. All times are on the host monotonic clock, in microseconds
(``flashfas_edge.clock.monotonic_us``, the clock the flash onsets are read from too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


class CameraError(RuntimeError):
    """The camera is absent, stalled or returned something unusable."""


@dataclass(frozen=True)
class CameraInfo:
    width: int
    height: int
    fps: float
    exposure_us: int  # locked exposure time of every row
    readout_us: int  # rolling-shutter readout: last row starts this long after the first
    name: str = "camera"


@dataclass(frozen=True)
class Frame:
    """One camera frame.

    ``image`` is uint8 [H, W, 3] RGB. ``t_start_us`` is when the exposure of the *first* row began;
    row r starts at ``t_start_us + readout_us * r / (H - 1)`` and lasts ``exposure_us``.
    ``meta`` carries optional side information (the simulated kiosk puts ground-truth landmarks
    under ``"landmarks"`` as float32 [5, 2]); real cameras leave it empty.
    """

    index: int
    t_start_us: int
    exposure_us: int
    readout_us: int
    image: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Camera(Protocol):
    def start(self) -> None:
        """Open the device, lock exposure and white balance, start filling the ring buffer."""

    def stop(self) -> None:
        """Stop capturing and release the device. Idempotent."""

    def info(self) -> CameraInfo: ...

    def frames_between(self, t0_us: int, t1_us: int, timeout_s: float,
                       complete_at_us: int | None = None) -> list[Frame]:
        """Frames whose exposure starts in [t0_us, t1_us), oldest first.

        Blocks until a frame starting at or after ``complete_at_us`` (default ``t1_us``) has
        arrived (so the list is complete) or ``timeout_s`` has passed, in which case
        :class:`CameraError` is raised. A caller that knows the frame period passes a
        ``complete_at_us`` less than a period before ``t1_us``: the frame that follows it starts
        after the window, so it need not be waited for.
        """
        ...

    def last_frame_time_us(self) -> int | None:
        """Start of the newest frame in the buffer (for the watchdog); None before the first."""
        ...


@dataclass(frozen=True)
class ExposureSettings:
    """A manual sensor setting: exposure time, analog gain (1 = none) and white-balance gains
    per channel (R, G, B; G = 1). What calibration chooses and the camera then holds."""

    exposure_us: int
    analog_gain: float = 1.0
    white_balance_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class ExposureRange:
    """What a lockable camera can be set to (µs, analog gain multiplier)."""

    min_exposure_us: int
    max_exposure_us: int
    max_gain: float  # 1.0: the camera's gain cannot be set, only its exposure
    white_balance_settable: bool  # False: white balance is locked where the camera holds it


@runtime_checkable
class ExposureControl(Protocol):
    """A camera whose exposure, gain and white balance can be set by hand and then held (what
    ``flashfas-edge calibrate`` needs; docs/CALIBRATE.md). A camera without it is refused there."""

    def exposure_range(self) -> ExposureRange: ...

    def exposure_settings(self) -> ExposureSettings:
        """The setting in force (after start: what the device accepted)."""
        ...

    def lock_exposure(self, settings: ExposureSettings) -> ExposureSettings:
        """Switch auto exposure, gain and white balance off and hold ``settings``; returns what
        the device accepted. :class:`CameraError` if the camera cannot hold them."""
        ...

