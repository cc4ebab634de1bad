"""One synthetic flash session: a scene, a random challenge, the camera's frames and the labels.

Times are on a fictitious host-monotonic clock in µs. The display's light follows the reported
onsets after the true latency (calibrated latency + jitter). ``frames="all"`` keeps every camera
frame from just before the first state to the end of the last; ``frames="clean"`` keeps, per
state, the one camera frame whose every row is exposed inside that state (closest to its middle)
— same timestamps, N0 frames, a third of the storage and rendering time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flashfas_edge.data.session import Session
from flashfas_edge.sim.frame_composer import FrameComposer, shake_path, warp_frame, warp_points
from flashfas_edge.sim.scene import Scene, SceneRequest, build_scene
from flashfas_edge.sim.schedule import IDLE_STATE, ScheduleSpec, draw_schedule

FRAME_MODES = ("all", "clean")


class NoCleanFrameError(RuntimeError):
    """A flash state is shorter than one frame's exposure + readout: no frame sees it alone."""


@dataclass(frozen=True)
class SessionOptions:
    schedule: ScheduleSpec = ScheduleSpec()
    frames: str = "clean"
    motion_px: tuple[float, float] = (0.1, 0.6)  # per-frame random-walk step at 640 px width

    def __post_init__(self) -> None:
        if self.frames not in FRAME_MODES:
            raise ValueError(f"frames must be one of {FRAME_MODES}")


def render_session(req: SceneRequest, opts: SessionOptions = SessionOptions(),
                   scene: Scene | None = None) -> Session:
    """The session of ``req``; ``scene``: ``build_scene(req)`` already built (a caller that
    also needs the scene's own images builds it once)."""
    scene = build_scene(req) if scene is None else scene
    prof = req.profile
    rng = np.random.default_rng(np.random.SeedSequence([req.scene_seed, 17]))
    sched = draw_schedule(rng, opts.schedule)
    period_us = 1e6 / prof.fps
    readout_us = int(round(prof.readout_us * req.height / 480))
    comp = FrameComposer(scene, readout_us)
    exposure_us = comp.exposure_us  # locked by auto-exposure for this subject and light
    dur = sched.state_duration_us
    n0 = sched.n0
    latency_true = prof.latency_us + rng.uniform(-prof.latency_jitter_us, prof.latency_jitter_us)
    t_cam0 = 1_000_000_000.0 + float(rng.integers(0, 10**9))
    onset0 = t_cam0 + rng.uniform(0, period_us) - latency_true
    onsets_rep = np.round(onset0 + dur * np.arange(n0)).astype(np.int64)
    onsets_light = onsets_rep.astype(np.float64) + latency_true
    per_state = math.ceil(dur / period_us)
    n_all = n0 * per_state + 1
    starts_all = t_cam0 + period_us * np.arange(n_all) + rng.normal(0, 30, n_all)
    if opts.frames == "all":
        starts = starts_all
    else:
        starts = _clean_frames(starts_all, onsets_light, dur, exposure_us, readout_us,
                               prof.display_rise_us)
    colours = comp.state_colours(sched.states, IDLE_STATE)
    t_ref = float(onsets_light[0] + n0 * dur / 2)
    step = rng.uniform(*opts.motion_px) * req.width / 640.0
    centre = scene.landmarks.mean(axis=0) if np.all(np.isfinite(scene.landmarks)) else np.array(
        [req.width / 2, req.height / 2])
    gaps = np.diff(np.concatenate([[starts[0] - period_us], starts])) / period_us
    warps = shake_path(rng, len(starts), step, centre, gaps)
    frames = np.empty((len(starts), req.height, req.width, 3), np.uint8)
    lms = np.empty((len(starts), 5, 2), np.float32)
    for k, (s, m) in enumerate(zip(starts, warps, strict=False)):
        lin = comp.linear_frame(float(s), t_ref, colours, onsets_light, dur)
        frames[k] = comp.develop(warp_frame(lin, m), rng)
        lms[k] = warp_points(scene.landmarks, m)
    meta = dict(scene.params)
    meta.update({
        "source": "synthetic", "scene_seed": int(req.scene_seed), "frames_mode": opts.frames,
        "latency_true_us": float(latency_true), "fps": float(prof.fps),
        "analog_gain": comp.sensor.analog_gain, "motion_step_px": float(step),
        "width": req.width, "height": req.height,
    })
    return Session(
        frames=frames,
        frame_times_us=np.round(starts).astype(np.int64),
        exposure_us=int(exposure_us),
        readout_us=int(readout_us),
        flash_rgb=np.array([s.rgb for s in sched.states], np.float32),
        flash_intensity=np.array([s.intensity for s in sched.states], np.float32),
        flash_onsets_us=onsets_rep,
        state_duration_us=int(dur),
        latency_us=int(prof.latency_us),
        order=np.array(sched.order, np.int64),
        nonce=sched.nonce,
        landmarks=lms,
        attack_type=req.attack_type,
        depth=scene.depth,
        meta=meta,
    )


def _clean_frames(starts: np.ndarray, onsets_light: np.ndarray, dur: int, exposure_us: int,
                  readout_us: int, rise_us: int) -> np.ndarray:
    chosen = []
    for on in onsets_light:
        lo, hi = on + rise_us, on + dur
        ok = (starts >= lo) & (starts + readout_us + exposure_us <= hi)
        if not np.any(ok):
            raise NoCleanFrameError(
                f"state of {dur} µs cannot hold exposure {exposure_us} + readout {readout_us} µs")
        cand = starts[ok]
        mid = (lo + hi - readout_us - exposure_us) / 2
        chosen.append(cand[np.argmin(np.abs(cand - mid))])
    return np.array(chosen)
