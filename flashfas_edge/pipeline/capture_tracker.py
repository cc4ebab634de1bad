"""The face tracked in every frame as it arrives during the capture window (docs/ARCHITECTURE.md
§1 step 6, done while the flash plays).

The flash sequence lasts ~0.3 s and the camera delivers a frame every ~33 ms: a thread follows the
face from the presence anchor (presence.py) into each new frame — MTCNN's last stage on the
previous box, a few ms — while the flash driver and the camera do their work. Once the last frame
is in, the state frames' landmarks are already known but for the newest one or two, so only
their work is left after the capture (face_track.py takes them as ``known``).

Stopping waits only for the frame in hand, not for the next one: a tracker waiting for a frame
when the capture ends would otherwise hold the check until that frame came, which no one needs
(half a frame period on average). It leaves when that wait ends.
"""

from __future__ import annotations

import logging
import threading

from flashfas_edge.capture.base import Camera, CameraError
from flashfas_edge.face.base import FaceLandmarks, LandmarkProvider
from flashfas_edge.pipeline.face_track import follow_face

log = logging.getLogger(__name__)

_WAIT_S = 0.1  # one wait for the next frame; the loop re-checks whether to stop in between


class CaptureTracker:
    def __init__(
        self, camera: Camera, provider: LandmarkProvider, anchor: FaceLandmarks, after_us: int
    ) -> None:
        self._camera = camera
        self._provider = provider
        self._previous = anchor
        self._next_us = after_us + 1  # frames starting after the anchor's
        self._known: dict[int, FaceLandmarks] = {}
        self._stop = threading.Event()
        self._busy = threading.Lock()  # held while a frame is in hand
        self._thread = threading.Thread(target=self._run, name="capture-tracker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[int, FaceLandmarks]:
        """Stop after the frame in hand; the faces tracked so far, by ``Frame.index``."""
        self._stop.set()
        with self._busy:
            return dict(self._known)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                newest = self._camera.last_frame_time_us()
                if newest is None or newest < self._next_us:
                    try:  # returns once a frame at or after _next_us is in (or times out)
                        self._camera.frames_between(self._next_us, self._next_us, _WAIT_S)
                    except CameraError:
                        self._stop.wait(0.005)  # no frame yet: look at the stop flag, wait again
                    continue
                # the frames in already, up to the newest: without waiting for the one after it
                arrived = self._camera.frames_between(self._next_us, newest + 1, _WAIT_S,
                                                      complete_at_us=newest)
                for frame in arrived:
                    with self._busy:
                        if self._stop.is_set():
                            return
                        self._next_us = frame.t_start_us + 1
                        face = follow_face(frame, self._provider, self._previous)
                        if face is not None:
                            self._known[frame.index] = face
                            self._previous = face
        except Exception:  # the track is an optimisation: the state frames are searched again
            log.exception("capture tracking stopped")
