"""The simulated kiosk camera: frames rendered in real time on the host monotonic clock.

A thread starts a frame every 1/fps; once the frame's last row has finished exposing it renders
it from the shared scene (``flashfas_edge.sim.kiosk.SimKiosk``) and appends it to a ring buffer.
Frames carry the ground-truth landmarks in ``meta["landmarks"]`` (float32 [5, 2]); with more
than one person in view, ``meta["faces"]`` lists every face's landmarks, the main face first.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flashfas_edge.capture.base import CameraInfo, Frame
from flashfas_edge.capture.frame_ring import FrameRing, RingCamera
from flashfas_edge.clock import monotonic_us
from flashfas_edge.sim.kiosk import SimKiosk

log = logging.getLogger(__name__)


class SimCamera(RingCamera):
    def __init__(self, kiosk: SimKiosk, fps: float | None = None, buffer_frames: int = 120):
        self.kiosk = kiosk
        self.fps = float(fps or kiosk.profile.fps)
        self._period_us = 1e6 / self.fps
        self._ring = FrameRing(buffer_frames, "simulated camera")
        self._thread = None
        self._stop = threading.Event()
        self.late_frames = 0  # frames rendered after the next one should have started
        self.render_errors = 0  # frames the renderer failed on (dropped; the stream goes on)

    def info(self) -> CameraInfo:
        k = self.kiosk
        return CameraInfo(k.width, k.height, self.fps, k.exposure_us, k.readout_us,
                          name=f"sim:{k.profile.name}")

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
        index = 0
        try:
            while not self._stop.is_set():
                start = int(t0 + index * self._period_us)
                done = start + k.readout_us + k.exposure_us
                wait_s = (done - monotonic_us()) / 1e6
                if wait_s > 0 and self._stop.wait(wait_s):
                    break
                try:
                    image, lm = k.render_frame(start)
                except Exception as exc:  # noqa: BLE001 - a bad scene must not end the stream
                    self.render_errors += 1
                    if self.render_errors == 1 or self.render_errors % 100 == 0:
                        log.error("simulated camera: frame %d not rendered (%d so far): %r",
                                  index, self.render_errors, exc)
                    index += 1
                    continue
                meta: dict[str, Any] = {} if lm is None else {"landmarks": lm}
                if lm is not None and k.last_other_faces:
                    # every face in view, main first (a second person behind the first)
                    meta["faces"] = [lm, *k.last_other_faces]
                frame = Frame(index, start, k.exposure_us, k.readout_us, image, meta)
                self._ring.append(frame)
                index += 1
                # fell behind (slow machine): skip frames like a real camera drops them
                behind = (monotonic_us() - (t0 + index * self._period_us)) / self._period_us
                if behind > 1:
                    self.late_frames += int(behind)
                    index += int(behind)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller as CameraError
            self._ring.fail(f"failed: {exc!r}")

