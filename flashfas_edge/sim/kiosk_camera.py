"""The simulated kiosk camera: frames rendered in real time on the host monotonic clock.

The virtual sensor starts a frame every 1/fps on the host clock, whatever the CPU is doing; a
thread renders each completed frame from the shared scene (``flashfas_edge.sim.kiosk.SimKiosk``)
and appends it to a ring buffer. Like a V4L2 capture queue, up to ``queue_frames`` completed frames
wait for the thread when it falls behind (a busy machine: rendering costs most of a frame period
on one core) and are delivered late with their true timestamps; only frames completed while the
queue is full are lost, as a real camera loses them when every driver buffer is taken.
Frames carry the ground-truth landmarks in ``meta["landmarks"]`` (float32 [5, 2]); with more
than one person in view, ``meta["faces"]`` lists every face's landmarks, the main face first.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from flashfas_edge.capture.base import CameraInfo, ExposureRange, ExposureSettings, Frame
from flashfas_edge.capture.frame_ring import FrameRing, RingCamera
from flashfas_edge.clock import monotonic_us
from flashfas_edge.sim.kiosk import SimKiosk
from flashfas_edge.sim.sensor import MIN_EXPOSURE_US

log = logging.getLogger(__name__)

# OpenCV's V4L2 backend queues 4 driver buffers by default: a reader may stall ~4 frame periods
# before the camera loses frames. The simulated sensor gets the same slack, no more.
QUEUE_FRAMES = 4


class SimCamera(RingCamera):
    def __init__(self, kiosk: SimKiosk, fps: float | None = None, buffer_frames: int = 120,
                 queue_frames: int = QUEUE_FRAMES):
        self.kiosk = kiosk
        self.fps = float(fps or kiosk.profile.fps)
        self._period_us = 1e6 / self.fps
        self._ring = FrameRing(buffer_frames, "simulated camera")
        self._thread = None
        self._stop = threading.Event()
        self.queue_frames = queue_frames
        self.late_frames = 0  # frames lost because the queue was full (the renderer fell behind)
        self.render_errors = 0  # frames the renderer failed on (dropped; the stream goes on)

    def info(self) -> CameraInfo:
        k = self.kiosk
        return CameraInfo(k.width, k.height, self.fps, k.exposure_us, k.readout_us,
                          name=f"sim:{k.profile.name}")

    # ExposureControl (capture/base.py): the virtual sensor holds what calibration sets
    def exposure_range(self) -> ExposureRange:
        profile = self.kiosk.profile
        # the build's own exposure is its longest (motion blur); beyond it, gain
        return ExposureRange(MIN_EXPOSURE_US, int(profile.exposure_us), float(profile.max_gain),
                             white_balance_settable=True)

    def exposure_settings(self) -> ExposureSettings:
        state = self.kiosk.sensor_state()
        wb = state.wb_gains or self.kiosk.profile.wb_gains
        return ExposureSettings(state.exposure_us, state.analog_gain,
                                tuple(float(g) for g in wb))  # type: ignore[arg-type]

    def lock_exposure(self, settings: ExposureSettings) -> ExposureSettings:
        held = self.kiosk.lock_sensor(settings.exposure_us, settings.analog_gain,
                                      settings.white_balance_gains)
        return ExposureSettings(held.exposure_us, held.analog_gain, settings.white_balance_gains)

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._ring.reset()
        self.kiosk.render_frame(monotonic_us())  # warm caches (noise bank, LUTs) before timing
        self._thread = threading.Thread(target=self._run, name="sim-camera", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread = None

    def _run(self) -> None:
        k = self.kiosk
        t0 = monotonic_us()
        queued: deque[int] = deque()  # completed frames waiting to be rendered (driver buffers)
        next_index = 0  # the next frame the sensor completes
        try:
            while not self._stop.is_set():
                now = monotonic_us()
                span_us = k.readout_us + k.exposure_us  # first row start to last row end
                while t0 + next_index * self._period_us + span_us <= now:
                    if len(queued) < self.queue_frames:
                        queued.append(next_index)
                    else:
                        self.late_frames += 1  # no free buffer: the frame is lost
                    next_index += 1
                if not queued:
                    wait_s = (t0 + next_index * self._period_us + span_us - now) / 1e6
                    if self._stop.wait(max(wait_s, 0.0)):
                        break
                    continue
                index = queued.popleft()
                start = int(t0 + index * self._period_us)
                try:
                    image, lm = k.render_frame(start)
                except Exception as exc:  # noqa: BLE001 - a bad scene must not end the stream
                    self.render_errors += 1
                    if self.render_errors == 1 or self.render_errors % 100 == 0:
                        log.error("simulated camera: frame %d not rendered (%d so far): %r",
                                  index, self.render_errors, exc)
                    continue
                meta: dict[str, Any] = {} if lm is None else {"landmarks": lm}
                if lm is not None and k.last_other_faces:
                    # every face in view, main first (a second person behind the first)
                    meta["faces"] = [lm, *k.last_other_faces]
                self._ring.append(Frame(index, start, k.exposure_us, k.readout_us, image, meta))
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller as CameraError
            self._ring.fail(f"failed: {exc!r}")

