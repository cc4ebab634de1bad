"""Before the flash: one face, in range and still, on the streaming camera (docs/ARCHITECTURE.md
§1 step 0).

The camera streams before a check starts, so the last few frames of its ring buffer show who is
in front of the kiosk right now. The check plays no flash until they show exactly one face of a
usable size that holds still: fewer flashes at passers-by and at faces that could only end in a
retry, and the face's position is known when the flash starts (the anchor of the capture's
tracking, capture_tracker.py). The gates are the state frames' own (face_track.py, one rule):
the same scores and sizes, and a motion budget for the shorter window. While they fail the check
waits for later frames, up to ``presence_wait_s``, then answers ``retry`` with the last gate's
reason — the flash never played.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flashfas_edge.capture.base import Camera, CameraError
from flashfas_edge.clock import monotonic_us
from flashfas_edge.face.base import FaceLandmarks, LandmarkProvider
from flashfas_edge.pipeline.config import GateThresholds, TrackingConfig
from flashfas_edge.pipeline.face_track import track_face
from flashfas_edge.pipeline.rejection import CheckRejected


@dataclass(frozen=True)
class Presence:
    face: FaceLandmarks  # in the newest frame looked at: where the capture's tracking starts
    frame_index: int
    t_start_us: int
    detail: dict[str, Any]


def wait_for_subject(
    camera: Camera,
    provider: LandmarkProvider,
    gates: GateThresholds,
    tracking: TrackingConfig,
    frame_timeout_s: float,
) -> Presence:
    """The face to flash at, once the newest ``presence_frames`` frames pass the face gates.

    Raises CheckRejected (``retry`` + the gate's reason) when they still fail after
    ``presence_wait_s``; CameraError when the camera delivers no frames.
    """
    info = camera.info()
    period_us = 1e6 / info.fps
    # A newest frame that started longer ago than this is stale: the camera (or the simulator
    # rendering it) has fallen behind, and what it shows may be who stood there before.
    stale_us = 2 * period_us + info.exposure_us + info.readout_us
    span_us = int(period_us * (tracking.presence_frames - 0.5))
    still = gates.model_copy(update={"max_motion_iod": tracking.presence_max_motion_iod})
    deadline = time.monotonic() + tracking.presence_wait_s
    looked_at = -1  # newest frame already judged: each attempt waits for a new one
    attempts = 0
    while True:
        newest = camera.last_frame_time_us()
        if newest is None or newest <= looked_at or monotonic_us() - newest > stale_us:
            # no frame yet, none since the last attempt, or a stale one: wait for the next one
            after = 0 if newest is None else newest + 1
            camera.frames_between(after, after + 1, frame_timeout_s)
            newest = camera.last_frame_time_us()
            if newest is None:
                raise CameraError("the camera delivered no frame")
        # the newest frame is current and in the buffer already: take the frames up to it
        # without waiting for the one after it (up to a frame period)
        frames = camera.frames_between(newest - span_us, newest + 1, frame_timeout_s,
                                       complete_at_us=newest)
        looked_at = newest
        attempts += 1
        try:
            track = track_face(frames, provider, still, register=tracking.register_frames)
        except CheckRejected as rejected:
            if time.monotonic() >= deadline:
                rejected.detail = {
                    "stage": "presence", "presence_attempts": attempts, **rejected.detail
                }
                raise
            continue
        face = track.faces[-1]
        return Presence(
            face=face,
            frame_index=frames[-1].index,
            t_start_us=frames[-1].t_start_us,
            detail={
                "presence_attempts": attempts,
                "presence_motion_iod": track.detail["motion_iod"],
            },
        )
