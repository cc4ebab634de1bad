"""The real camera: OpenCV ``VideoCapture`` feeding the Camera ring buffer (docs/ARCHITECTURE.md §1
step 3).

Sources
    ``/dev/videoN`` or an integer index (``"0"``) open with the V4L2 backend; any other string (a
    video file, an RTSP URL) opens with OpenCV's default backend. File sources are paced at the
    requested fps so they behave like a live camera (tests, bench replays); ``loop=True`` rewinds
    at the end, otherwise the end of the file is a stalled camera.

Exposure and white balance (docs/ARCHITECTURE.md §4: locked for the whole check)
    Flash liveness measures the *difference* a flash makes (ATR-FAS §3.2, MoESA §3): an auto
    exposure or auto white balance loop would partly cancel the flash response, so on a V4L2
    device both are switched to manual at start and the values the driver accepted are read back
    into :class:`CameraInfo`. V4L2 units through OpenCV: ``CAP_PROP_AUTO_EXPOSURE`` is the
    ``V4L2_CID_EXPOSURE_AUTO`` menu (1 = manual, 3 = aperture priority), ``CAP_PROP_EXPOSURE`` is
    ``V4L2_CID_EXPOSURE_ABSOLUTE`` in 100 µs units, ``CAP_PROP_AUTO_WB`` 0/1,
    ``CAP_PROP_WB_TEMPERATURE`` in kelvin. A V4L2 device that refuses manual exposure raises
    :class:`CameraError` (fail closed) unless ``require_exposure_lock=False``. Non-V4L2 sources
    cannot be controlled: their CameraInfo carries the requested (or default) exposure and
    ``exposure_locked`` is False.

Rolling-shutter readout
    V4L2 does not report it. ``readout_us`` comes from the caller (calibration / datasheet) or is
    estimated as ``READOUT_FRACTION_OF_PERIOD / fps``: the simulated device profiles (sim/device.py)
    span 0.4 (MIPI) – 0.78 (USB) of the frame period, 0.6 is the middle of that range.

Timestamps (host monotonic clock, µs, first-row exposure start)
    V4L2 stamps each buffer with ``CLOCK_MONOTONIC`` on practically every driver since Linux 3.x
    (``V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC``); OpenCV's V4L2 backend exposes that stamp as
    ``CAP_PROP_POS_MSEC``. OpenCV does not expose the flag itself, so the stamp is *verified*: it is
    used only when it lies on the host monotonic clock (not after the frame's arrival and at most
    ``MAX_DRIVER_STAMP_AGE_US`` before it), checked on every frame; otherwise (file sources, whose
    POS_MSEC is the media position, or a driver using another clock) the arrival time is used.
    Either stamp is taken to mark the end of the frame (buffer completion — what vb2 capture
    drivers and the host arrival both record), so the first row began ``exposure + readout``
    earlier: ``t_start_us = stamp_us - exposure_us - readout_us``.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import cv2

from flashfas_edge.capture.base import (
    CameraError,
    CameraInfo,
    ExposureRange,
    ExposureSettings,
    Frame,
)
from flashfas_edge.capture.frame_ring import FrameRing, RingCamera
from flashfas_edge.clock import monotonic_us

log = logging.getLogger(__name__)

V4L2_EXPOSURE_MANUAL = 1  # V4L2_CID_EXPOSURE_AUTO menu value
V4L2_EXPOSURE_UNIT_US = 100  # V4L2_CID_EXPOSURE_ABSOLUTE counts 100 µs steps
DEFAULT_EXPOSURE_US = 8000  # short enough to freeze motion, long enough for indoor light
DEFAULT_WB_TEMPERATURE_K = 4600  # office fluorescent/LED; calibration can override
READOUT_FRACTION_OF_PERIOD = 0.6  # see module docstring
MAX_DRIVER_STAMP_AGE_US = 500_000  # a buffer older than this at dequeue is not a live stamp
FPS_TOLERANCE = 0.02  # drivers report 29.97 for 30 etc.
EXPOSURE_TOLERANCE = 0.05


def driver_stamp_is_monotonic(driver_us: int, arrival_us: int) -> bool:
    """Whether a V4L2 buffer stamp lies on the host monotonic clock.

    It must not be after the frame reached us and not older than ``MAX_DRIVER_STAMP_AGE_US``: a
    ``CLOCK_REALTIME`` stamp (decades ahead), a media position (near zero) or a missing stamp
    (0 before the first dequeue) all fail, and the arrival time is used instead.
    """
    return arrival_us - MAX_DRIVER_STAMP_AGE_US <= driver_us <= arrival_us


@dataclass(frozen=True)
class CaptureSource:
    """What to pass to ``cv2.VideoCapture`` and whether it is a V4L2 device."""

    target: int | str
    is_v4l2: bool
    description: str


def parse_source(device: str | int) -> CaptureSource:
    if isinstance(device, int) or (isinstance(device, str) and device.strip().isdigit()):
        index = int(device)
        return CaptureSource(index, True, f"/dev/video{index}")
    if str(device).startswith("/dev/video"):
        return CaptureSource(str(device), True, str(device))
    return CaptureSource(str(device), False, str(device))


class V4L2Camera(RingCamera):
    """A V4L2 (or any OpenCV) camera behind the Camera protocol of ``capture/base.py``."""

    def __init__(self, device: str | int = "/dev/video0", *, width: int = 640, height: int = 480,
                 fps: float = 30.0, exposure_us: int | None = None,
                 readout_us: int | None = None, wb_temperature_k: int | None = None,
                 buffer_frames: int = 120, stall_timeout_s: float = 2.0,
                 require_exposure_lock: bool = True, loop: bool = False,
                 fourcc: str | None = None):
        if width <= 0 or height <= 0 or fps <= 0:
            raise CameraError(f"invalid camera mode {width}x{height}@{fps}")
        self.source = parse_source(device)
        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self._period_us = 1e6 / self.fps
        self.requested_exposure_us = exposure_us
        if exposure_us is not None and not 0 < exposure_us <= self._period_us:
            raise CameraError(f"exposure {exposure_us} µs does not fit the frame period "
                              f"{self._period_us:.0f} µs at {self.fps:g} fps")
        self.readout_us = int(readout_us if readout_us is not None
                              else round(READOUT_FRACTION_OF_PERIOD * self._period_us))
        self.wb_temperature_k = wb_temperature_k
        self.stall_timeout_s = float(stall_timeout_s)
        self.require_exposure_lock = require_exposure_lock
        self.loop = loop
        if fourcc is not None and len(fourcc) != 4:
            raise CameraError(f"pixel format must be a four-character code, got {fourcc!r}")
        self.fourcc = fourcc  # e.g. "MJPG": many USB cameras reach 30 fps only compressed
        self.frames_dropped_out_of_order = 0
        self.late_frames = 0  # file sources: times the pacing fell a frame period behind
        self._ring = FrameRing(buffer_frames, f"camera {self.source.description}")
        self._thread = None
        self._stop = threading.Event()
        self._info: CameraInfo | None = None
        self.exposure_locked = False
        self.white_balance_locked = False
        self.driver_timestamps_used = 0  # frames stamped by the driver (vs host arrival)

    # ----- protocol ---------------------------------------------------------------------------
    def info(self) -> CameraInfo:
        if self._info is not None:
            return self._info
        exposure = self.requested_exposure_us or DEFAULT_EXPOSURE_US
        return CameraInfo(self.width, self.height, self.fps, int(exposure), self.readout_us,
                          name=f"v4l2:{self.source.description}")

    # ----- ExposureControl (capture/base.py): what calibration sets ----------------------------
    def exposure_range(self) -> ExposureRange:
        # OpenCV exposes V4L2 gain only in device-specific units, not as a multiplier: exposure
        # is set, gain stays at the device's default; white balance is held at a temperature.
        return ExposureRange(V4L2_EXPOSURE_UNIT_US, int(self._period_us), 1.0,
                             white_balance_settable=False)

    def exposure_settings(self) -> ExposureSettings:
        return ExposureSettings(self.info().exposure_us)

    def lock_exposure(self, settings: ExposureSettings) -> ExposureSettings:
        """Hold ``settings.exposure_us`` (the capture restarts when it runs); refuses what a
        V4L2 device cannot do here: a non-V4L2 source, a gain, or per-channel white balance."""
        if not self.source.is_v4l2:
            raise CameraError(f"camera {self.source.description} is not a V4L2 device: its "
                              "exposure cannot be locked")
        if settings.analog_gain != 1.0 or settings.white_balance_gains != (1.0, 1.0, 1.0):
            raise CameraError(f"camera {self.source.description}: only the exposure can be set "
                              "here (gain and white-balance gains are not V4L2 multipliers)")
        if not 0 < settings.exposure_us <= self._period_us:
            raise CameraError(f"exposure {settings.exposure_us} µs does not fit the frame "
                              f"period {self._period_us:.0f} µs")
        running = self._running()
        if running:
            self.stop()
        self.requested_exposure_us = int(settings.exposure_us)
        self._info = None
        if running:
            self.start()
        if running and not self.exposure_locked:
            raise CameraError(f"camera {self.source.description} did not hold manual exposure")
        return self.exposure_settings()

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        capture = self._open()
        try:
            self._info = self._configure(capture)
        except BaseException:
            capture.release()
            raise
        self._ring.reset()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(capture,), name="v4l2-camera",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            # the capture thread owns the VideoCapture and releases it; a V4L2 read returns
            # within CAP_PROP_READ_TIMEOUT_MSEC (set to the stall timeout; OpenCV builds that
            # ignore it use a 10 s select timeout, and the thread then exits after we return)
            thread.join(timeout=self.stall_timeout_s + 2.0)
            if thread.is_alive():
                log.warning("camera thread did not stop within %.1f s", self.stall_timeout_s + 2)
        self._thread = None
        self._ring.wake()

    # ----- opening and configuration ----------------------------------------------------------
    def _open(self) -> cv2.VideoCapture:
        src = self.source
        if isinstance(src.target, str) and src.is_v4l2 and not os.path.exists(src.target):
            raise CameraError(f"camera device {src.target} does not exist")
        if isinstance(src.target, str) and not src.is_v4l2 and "://" not in src.target \
                and "!" not in src.target and not os.path.exists(src.target):
            raise CameraError(f"camera source {src.target} does not exist")
        backend = cv2.CAP_V4L2 if src.is_v4l2 else cv2.CAP_ANY
        capture = cv2.VideoCapture(src.target, backend)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"cannot open camera {src.description} "
                              f"({'V4L2' if src.is_v4l2 else 'default'} backend)")
        return capture

    def _configure(self, capture: cv2.VideoCapture) -> CameraInfo:
        src = self.source
        if src.is_v4l2:
            if os.environ.get("OPENCV_VIDEOIO_V4L_RANGE_NORMALIZED", "0") not in ("", "0"):
                # OpenCV would then read and write controls as 0..1, not V4L2 units
                raise CameraError("OPENCV_VIDEOIO_V4L_RANGE_NORMALIZED is set: exposure "
                                  "values would not be in V4L2 units; unset it")
            capture.set(cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.stall_timeout_s * 1000))
            if self.fourcc is not None:
                capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*self.fourcc))
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            capture.set(cv2.CAP_PROP_FPS, self.fps)
        width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(capture.get(cv2.CAP_PROP_FPS))
        if (width, height) != (self.width, self.height):
            raise CameraError(f"camera {src.description} delivers {width}x{height}, "
                              f"requested {self.width}x{self.height}")
        if not abs(fps - self.fps) <= FPS_TOLERANCE * self.fps:
            raise CameraError(f"camera {src.description} runs at {fps:g} fps, "
                              f"requested {self.fps:g} fps")
        exposure_us = self.requested_exposure_us or DEFAULT_EXPOSURE_US
        if src.is_v4l2:
            exposure_us = self._lock_exposure(capture, exposure_us)
            self._lock_white_balance(capture)
        return CameraInfo(self.width, self.height, self.fps, int(exposure_us), self.readout_us,
                          name=f"v4l2:{src.description}")

    def _lock_exposure(self, capture: cv2.VideoCapture, exposure_us: int) -> int:
        """Manual exposure; returns what the driver accepted (µs)."""
        capture.set(cv2.CAP_PROP_AUTO_EXPOSURE, V4L2_EXPOSURE_MANUAL)
        capture.set(cv2.CAP_PROP_EXPOSURE, max(1, round(exposure_us / V4L2_EXPOSURE_UNIT_US)))
        mode = capture.get(cv2.CAP_PROP_AUTO_EXPOSURE)
        accepted_us = int(round(capture.get(cv2.CAP_PROP_EXPOSURE) * V4L2_EXPOSURE_UNIT_US))
        manual = int(mode) == V4L2_EXPOSURE_MANUAL and accepted_us > 0
        if not manual:
            message = (f"camera {self.source.description} refused manual exposure "
                       f"(auto-exposure mode {mode:g}, exposure {accepted_us} µs)")
            if self.require_exposure_lock:
                raise CameraError(message)
            log.warning("%s; flash responses will be partly cancelled", message)
            return exposure_us
        if abs(accepted_us - exposure_us) > EXPOSURE_TOLERANCE * exposure_us:
            log.warning("camera %s: exposure %d µs requested, driver accepted %d µs",
                        self.source.description, exposure_us, accepted_us)
        if accepted_us > self._period_us:
            raise CameraError(f"camera {self.source.description}: exposure {accepted_us} µs "
                              f"is longer than the frame period {self._period_us:.0f} µs")
        self.exposure_locked = True
        return accepted_us

    def _lock_white_balance(self, capture: cv2.VideoCapture) -> None:
        capture.set(cv2.CAP_PROP_AUTO_WB, 0)
        capture.set(cv2.CAP_PROP_WB_TEMPERATURE,
                    self.wb_temperature_k or DEFAULT_WB_TEMPERATURE_K)
        self.white_balance_locked = int(capture.get(cv2.CAP_PROP_AUTO_WB)) == 0
        if not self.white_balance_locked:
            # not fatal: the difference images are normalised per channel (docs/ARCHITECTURE.md §1
            # step 5),
            # but a drifting white balance adds chroma noise to the flash response
            log.warning("camera %s: white balance could not be locked", self.source.description)

    # ----- capture thread ---------------------------------------------------------------------
    def _stamp_us(self, capture: cv2.VideoCapture, arrival_us: int) -> int:
        """End-of-frame stamp on the host monotonic clock (see module docstring)."""
        if self.source.is_v4l2:
            driver_us = int(capture.get(cv2.CAP_PROP_POS_MSEC) * 1000)
            if driver_stamp_is_monotonic(driver_us, arrival_us):
                self.driver_timestamps_used += 1
                return driver_us
        return arrival_us

    def _run(self, capture: cv2.VideoCapture) -> None:
        index = 0
        t0_us = monotonic_us()
        paced = not self.source.is_v4l2  # files decode as fast as they can: pace them
        last_frame_us = t0_us
        try:
            while not self._stop.is_set():
                if paced:
                    due_us = t0_us + (index + 1) * self._period_us
                    wait_s = (due_us - monotonic_us()) / 1e6
                    if wait_s > 0 and self._stop.wait(wait_s):
                        break
                    if wait_s < -self._period_us / 1e6:
                        # fell behind (busy machine): re-anchor instead of delivering a burst of
                        # frames stamped a few µs apart, which no camera would produce
                        self.late_frames += 1
                        t0_us = int(monotonic_us() - (index + 1) * self._period_us)
                ok, bgr = capture.read()
                arrival_us = monotonic_us()
                if not ok or bgr is None:
                    if paced and self.loop and index > 0:
                        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        continue
                    if paced or arrival_us - last_frame_us > self.stall_timeout_s * 1e6:
                        self._fail("stopped delivering frames"
                                   + (" (end of stream)" if paced else ""))
                        return
                    self._stop.wait(0.01)
                    continue
                if bgr.shape[:2] != (self.height, self.width) or bgr.ndim != 3:
                    self._fail(f"frame of shape {bgr.shape}, expected "
                               f"{(self.height, self.width, 3)}")
                    return
                last_frame_us = arrival_us
                info = self._info or self.info()
                t_start = self._stamp_us(capture, arrival_us) - info.exposure_us - info.readout_us
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                frame = Frame(index, int(t_start), info.exposure_us, info.readout_us, rgb)
                if not self._ring.append(frame):  # its stamp went backwards
                    self.frames_dropped_out_of_order += 1
                    continue
                index += 1
        except Exception as exc:  # noqa: BLE001 - surfaced to the caller as CameraError
            self._fail(f"capture failed: {exc!r}")
        finally:
            capture.release()
            self._ring.wake()

    def _fail(self, message: str) -> None:
        log.error("camera %s: %s", self.source.description, message)
        self._ring.fail(message)


__all__ = ["V4L2Camera", "CaptureSource", "driver_stamp_is_monotonic", "parse_source"]
