"""One liveness check end to end (docs/ARCHITECTURE.md §1, steps 1–10) over the four small
interfaces.

``run_check`` drives the kiosk's flash and camera; ``run_recorded`` takes a recorded or uploaded
:class:`~flashfas_edge.data.session.Session` through the same steps 4–10. Both return a
:class:`CheckResult` and never raise for a check that goes wrong: gates give ``retry`` with their
reason, a challenge mismatch gives ``spoof``, and any internal failure gives ``retry`` /
``internal_error``. Only the decision stage can produce ``live``, and only from a finite P(live)
at or above the threshold (fail closed).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from flashfas_edge import _core
from flashfas_edge.capture.base import Camera, CameraError, CameraInfo, Frame
from flashfas_edge.clock import monotonic_us as clock_now_us
from flashfas_edge.data.session import Session
from flashfas_edge.face.base import FaceLandmarks, LandmarkProvider
from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.face.template import canonical_template
from flashfas_edge.flash.base import (
    FlashDriver,
    FlashError,
    FlashPlayback,
    FlashSchedule,
    FlashState,
    OnsetGrid,
)
from flashfas_edge.flash.safety import FlashSafetyGovernor, UnsafeFlashError
from flashfas_edge.flash_levels import same_levels
from flashfas_edge.inference.backend import Backend
from flashfas_edge.inference.bundle import Bundle
from flashfas_edge.pipeline.capture_tracker import CaptureTracker
from flashfas_edge.pipeline.challenge import (
    ChallengeTiming,
    challenge_family,
    challenge_timing,
    draw_challenge,
    frame_grid_start_us,
    free_timing,
    idle_between_sequences,
    onset_grid,
)
from flashfas_edge.pipeline.challenge_deck import ChallengeDeck
from flashfas_edge.pipeline.config import PipelineConfig
from flashfas_edge.pipeline.decision import decide, resolve_spoof_below, resolve_threshold
from flashfas_edge.pipeline.face_track import FaceTrack, track_face
from flashfas_edge.pipeline.flash_gates import gate_flash, measure_flash
from flashfas_edge.pipeline.frame_selection import select_state_frames
from flashfas_edge.pipeline.presence import Presence, wait_for_subject
from flashfas_edge.pipeline.rejection import CheckRejected, retry
from flashfas_edge.pipeline.result import CheckResult, Reason, Verdict, new_check_id
from flashfas_edge.pipeline.session_check import SessionInvalid, validate_session
from flashfas_edge.pipeline.stage_clock import StageClock, StageRunner, StageTimeoutError
from flashfas_edge.pipeline.timing_check import fit_timing

log = logging.getLogger(__name__)

# After a check answers, the next challenge is drawn this much later: the answer is on its way
# by then (challenge_deck.py).
_DRAW_AHEAD_DELAY_S = 0.05


class PipelineSetupError(ValueError):
    """The pipeline's parts do not fit together (e.g. the bundle's N0 differs from the config)."""


def _check_challenge_fits(bundle: Bundle, levels: tuple[float, ...], family: str) -> None:
    """Refuse to feed the networks a challenge unlike the one they were trained on."""
    if not same_levels(bundle.flash_levels, levels) or bundle.challenge_family != family:
        raise PipelineSetupError(
            f"bundle {bundle.name!r} was trained on {bundle.challenge_family} "
            f"{list(bundle.flash_levels)}, the pipeline's challenge is {family} {list(levels)} "
            "(set [pipeline.challenge] levels / colour_palette to match, or use a bundle "
            "trained on this challenge; hue_levels needs a flash surface that shows colour)"
        )
    if not bundle.challenge_recorded:
        log.warning(
            "bundle %s records no flash_levels/challenge_family; read as the historical "
            "default %s %s (docs/MODEL_BUNDLE.md)",
            bundle.name, bundle.challenge_family, list(bundle.flash_levels),
        )


@dataclasses.dataclass
class _Capture:
    """Steps 1–4 (or a session) reduced to what steps 5–10 need."""

    schedule: FlashSchedule
    state_frames: list[Frame]  # play order
    provider: LandmarkProvider
    # every frame captured during the sequence and what was played (live checks only): the
    # timing verification (timing_check.py)
    frames: list[Frame] = dataclasses.field(default_factory=list)
    playback: FlashPlayback | None = None
    presence: Presence | None = None  # the face found before the flash (live checks)
    known: dict[int, FaceLandmarks] = dataclasses.field(default_factory=dict)  # by Frame.index


class Pipeline:
    def __init__(
        self,
        camera: Camera | None,
        flash: FlashDriver | None,
        landmarks: LandmarkProvider,
        backend: Backend,
        config: PipelineConfig | None = None,
    ) -> None:
        self.config = config or PipelineConfig()
        bundle = backend.bundle
        if bundle.n0 != self.config.challenge.n0:
            raise PipelineSetupError(
                f"bundle {bundle.name!r} expects N0 = {bundle.n0} flash states, the challenge "
                f"config has {self.config.challenge.n0} levels"
            )
        # A pipeline without a flash plays nothing: it only evaluates recordings, whose own
        # sequence is the challenge (checked against the bundle's family in validate_session).
        self.challenge_family = (
            bundle.challenge_family if flash is None else challenge_family(
                self.config.challenge, flash.supports_colour(), bundle.challenge_family)
        )
        _check_challenge_fits(bundle, self.config.challenge.levels, self.challenge_family)
        method = bundle.normalisation.get("method")
        if method != _core.NORMALISATION:
            raise PipelineSetupError(
                f"bundle {bundle.name!r} was trained on {method!r} inputs, the C++ core "
                f"produces {_core.NORMALISATION!r} (MODEL_BUNDLE.md normalisation)"
            )
        self._camera = camera
        self._flash = flash
        self._landmarks = landmarks
        self._backend = backend
        self._n0 = bundle.n0
        self._input_size = bundle.input_size
        self._template = canonical_template(bundle.input_size)
        self.threshold = resolve_threshold(self.config.threshold_override, bundle.threshold_default)
        self.spoof_below = resolve_spoof_below(self.threshold, bundle.spoof_below)
        self._model = {"name": bundle.name, "manifest_sha256": bundle.manifest_sha256}
        self._backend_info = dataclasses.asdict(backend.info())
        self._lock = threading.Lock()
        self._runner = StageRunner()
        # Flashes across consecutive checks (docs/SAFETY.md §2): one governor per flash surface,
        # counting against what the face sees between sequences.
        self._governor = FlashSafetyGovernor(
            self.config.challenge.max_flashes_per_s,
            idle_between_sequences(self.config.challenge, flash),
        )
        # the next check's challenge, drawn once this one has answered (challenge_deck.py)
        self._deck = ChallengeDeck(self._draw_challenge)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Open camera and flash and self-test the flash (the daemon calls this before READY)."""
        if self._camera is None or self._flash is None:
            raise PipelineSetupError("this pipeline has no camera/flash (recorded sessions only)")
        self._camera.start()
        self._flash.start()
        self._flash.self_test()

    def warm_up(self) -> None:
        """Run the networks once (backend and landmark detector) so the first check is not slow."""
        self._backend.warm_up()
        blank = np.full((240, 320, 3), 128, np.uint8)
        self._landmarks.detect(
            Frame(index=-1, t_start_us=0, exposure_us=1, readout_us=0, image=blank)
        )
        self._draw_ahead()

    def stop(self) -> None:
        for device in (self._flash, self._camera):
            if device is not None:
                try:
                    device.stop()
                except Exception:  # stopping is best effort; the other device must still stop
                    log.exception("stopping %s failed", type(device).__name__)
        self._runner.close()
        self._deck.close()

    # -- the two entry points --------------------------------------------------------------------

    def run_check(self, *, want_depth: bool = False, check_id: str | None = None) -> CheckResult:
        """Steps 1–10 on the kiosk's camera and flash (``check_id``: the caller's id for it)."""
        try:
            return self._guarded(self._capture_live, want_depth, check_id)
        finally:
            self._draw_ahead()

    def run_recorded(self, session: Session, *, want_depth: bool = False) -> CheckResult:
        """Steps 4–10 on a recorded session (its own flash sequence is the challenge)."""
        return self._guarded(lambda clock: self._capture_recorded(session, clock), want_depth)

    def verify_frames(self, frames: Sequence[Frame], playback: FlashPlayback) -> dict[str, Any]:
        """Steps 4–6 alone on frames captured while ``playback`` played: whether they show this
        challenge (its order, colours and onsets) on a face that passes the gates. Returns the
        check's detail; raises :class:`CheckRejected` where the check would not reach the model
        (scripts/measure_replay_space.py replays recordings against every challenge this way).
        """
        clock = StageClock(self._runner)
        detail: dict[str, Any] = {}
        self._verify(self._synced(frames, playback, clock), clock, detail)
        return detail

    # -- internals -------------------------------------------------------------------------------

    def _guarded(self, capture: Callable[[StageClock], _Capture], want_depth: bool,
                 check_id: str | None = None) -> CheckResult:
        check_id = check_id or new_check_id()
        with self._lock:  # one camera, one flash: checks run one at a time
            clock = StageClock(self._runner)
            try:
                return self._evaluate(check_id, capture(clock), clock, want_depth)
            except CheckRejected as rejected:
                return self._result(
                    check_id, rejected.verdict, rejected.reason, clock, rejected.detail
                )
            except UnsafeFlashError as exc:  # not played: fail closed, the reason audited
                return self._result(
                    check_id, Verdict.RETRY, Reason.FLASH_UNSAFE, clock, {"error": str(exc)}
                )
            except StageTimeoutError as exc:
                detail = {"stage": exc.stage, "timeout_s": exc.timeout_s}
                return self._result(check_id, Verdict.RETRY, Reason.STAGE_TIMEOUT, clock, detail)
            except CameraError as exc:
                detail = {"error": str(exc)}
                return self._result(
                    check_id, Verdict.RETRY, Reason.CAMERA_UNAVAILABLE, clock, detail
                )
            except FlashError as exc:
                detail = {"error": str(exc)}
                return self._result(
                    check_id, Verdict.RETRY, Reason.FLASH_UNAVAILABLE, clock, detail
                )
            except SessionInvalid as exc:
                detail = {"error": str(exc)}
                return self._result(check_id, Verdict.RETRY, Reason.INVALID_SESSION, clock, detail)
            except Exception as exc:  # fail closed: whatever broke, the answer is not "live"
                log.exception("check %s failed", check_id)
                detail = {"error": f"{type(exc).__name__}: {exc}"}
                return self._result(check_id, Verdict.RETRY, Reason.INTERNAL_ERROR, clock, detail)

    def _capture_live(self, clock: StageClock) -> _Capture:
        if self._camera is None or self._flash is None:
            raise PipelineSetupError("this pipeline has no camera/flash (recorded sessions only)")
        camera, cfg = self._camera, self.config
        info = camera.info()
        # 0. presence: no flash until the stream shows one face, in range and still
        presence = None
        if cfg.tracking.presence:
            presence = clock.bounded(
                "presence",
                lambda: wait_for_subject(
                    camera, self._landmarks, cfg.gates, cfg.tracking, cfg.timeouts.capture_s
                ),
                cfg.tracking.presence_wait_s + cfg.timeouts.landmarks_s,
            )
        tracker = None
        if presence is not None and cfg.tracking.track_during_capture:
            tracker = CaptureTracker(camera, self._landmarks, presence.face, presence.t_start_us)
            tracker.start()
        try:
            schedule, playback, frames = self._flash_and_capture(clock, info)
        finally:
            known = tracker.stop() if tracker is not None else {}
        return self._synced(frames, playback, clock, presence, known)

    def _synced(self, frames: Sequence[Frame], playback: FlashPlayback, clock: StageClock,
                presence: Presence | None = None,
                known: dict[int, FaceLandmarks] | None = None) -> _Capture:
        """4. sync: the clean frame of each state among the frames captured while it played."""
        schedule = playback.schedule
        if not frames:
            raise retry(Reason.NO_CLEAN_FRAME, frames=0, states=schedule.n0)
        chosen = clock.timed(
            "sync",
            lambda: select_state_frames(
                [f.t_start_us for f in frames],
                frames[0].exposure_us,
                frames[0].readout_us,
                playback.onsets_us,
                self.config.latency_us,
                schedule.state_duration_us,
            ),
        )
        return _Capture(
            schedule,
            [frames[int(i)] for i in chosen],
            self._landmarks,
            list(frames),
            playback,
            presence,
            known or {},
        )

    def challenge_timing(self, info: CameraInfo) -> tuple[ChallengeTiming, float | None]:
        """How the next check's states are timed with this camera, and where a locked onset's
        light reaches the camera after a frame starts (None: free timing). Locked only where
        the flash surface holds its commanded times and the camera's frames leave room
        (docs/SAFETY.md §3)."""
        assert self._flash is not None
        cfg = self.config
        return challenge_timing(cfg.challenge, info, cfg.display_rise_us,
                                self._flash.holds_timing())

    def _flash_and_capture(
        self, clock: StageClock, info: CameraInfo
    ) -> tuple[FlashSchedule, FlashPlayback, list[Frame]]:
        """Steps 1–3: draw the challenge, play it, collect the frames of its window."""
        assert self._camera is not None and self._flash is not None
        camera, flash, cfg = self._camera, self._flash, self.config
        # 1. challenge
        timing, phase = self.challenge_timing(info)
        if phase is not None and camera.last_frame_time_us() is None:
            timing, phase = free_timing(cfg.challenge, info), None  # no frame to lock to yet
        schedule = clock.timed("challenge", lambda: self._deck.take(timing))
        clock.nonce = schedule.nonce
        # The flashes of the checks just before count too: wait until this one fits (SAFETY.md).
        self._wait_until_safe(schedule, clock)
        # 2. flash: blocks for the sequence itself, bounded by its length plus a margin; locked
        # onsets are placed on the grid of the recent frames' starts, one frame period apart
        sequence_s = schedule.total_us / 1e6
        grid = None if phase is None else self._onset_grid(camera, info, phase)
        try:
            playback = clock.timed(
                "flash",
                lambda: flash.play(schedule, timeout_s=sequence_s + cfg.timeouts.flash_margin_s
                                   + (0.0 if grid is None else grid.period_us / 1e6),
                                   grid=grid),
            )
        except BaseException:
            # it may have been played in part: count it as played in full, from now
            t = clock_now_us()
            self._governor.record(FlashPlayback(schedule, (t,), t + schedule.total_us))
            raise
        self._governor.record(playback)
        if len(playback.onsets_us) != schedule.n0:
            raise FlashError(
                f"flash reported {len(playback.onsets_us)} onsets for {schedule.n0} states"
            )
        # 3. capture: every frame that can be clean for some state — its first row starts after
        # the first state reached the camera and its last row ends before the last state left
        # it — waiting only until the first frame past that window has arrived.
        t0_us = int(playback.onsets_us[0]) + cfg.latency_us
        t1_us = int(playback.end_us) + cfg.latency_us - info.exposure_us - info.readout_us + 1
        # Complete once a frame starting in the window's last 3/4 period has arrived: the next
        # one starts after the window (saves ~3/4 of a frame period on average; a frame lost
        # near the end is caught by the timing check's missing-frame count, timing_check.py).
        ready_us = t1_us - int(0.75 * 1e6 / info.fps) if info.fps > 0 else None
        frames = clock.timed(
            "capture",
            lambda: camera.frames_between(t0_us, t1_us, cfg.timeouts.capture_s, ready_us),
        )
        return schedule, playback, frames

    def _draw_ahead(self) -> None:
        """The next check's challenge, drawn in the background (challenge_deck.py); a camera
        that cannot say its timing now leaves the next check to draw its own."""
        if self._camera is None or self._flash is None:
            return
        try:
            timing = self.challenge_timing(self._camera.info())[0]
        except Exception:
            log.exception("no challenge drawn ahead")
            return
        self._deck.prepare(timing, delay_s=_DRAW_AHEAD_DELAY_S)

    def _draw_challenge(self, timing: ChallengeTiming) -> FlashSchedule:
        assert self._flash is not None
        return draw_challenge(self.config.challenge, self._flash.supports_colour(), None,
                              self.challenge_family, timing)

    def _onset_grid(self, camera: Camera, info: CameraInfo, phase_us: float) -> OnsetGrid | None:
        """The host times to command locked onsets at, from the last ~10 frames' starts (their
        median offset from the frame grid: one mis-stamped frame does not move it)."""
        newest = camera.last_frame_time_us()
        if newest is None:
            return None
        period_us = 1e6 / info.fps
        recent = camera.frames_between(int(newest - 10 * period_us), newest + 1, timeout_s=0.1,
                                       complete_at_us=newest)
        start = frame_grid_start_us([f.t_start_us for f in recent], period_us)
        return None if start is None else onset_grid(phase_us, info, start,
                                                     self.config.latency_us)

    def _wait_until_safe(self, schedule: FlashSchedule, clock: StageClock) -> None:
        now = clock_now_us()
        start = self._governor.earliest_start_us(schedule, now)
        wait_s = (start - now) / 1e6
        if wait_s > self.config.challenge.max_safety_wait_s:
            raise UnsafeFlashError(
                f"the flashes of the last second leave no room for this challenge for "
                f"{wait_s:.2f} s (max_safety_wait_s {self.config.challenge.max_safety_wait_s})"
            )
        if wait_s > 0:
            clock.timed("safety_wait", lambda: time.sleep(wait_s))

    def _capture_recorded(self, session: Session, clock: StageClock) -> _Capture:
        validate_session(session, self._n0, self.challenge_family)
        states = tuple(
            FlashState(rgb=(float(r), float(g), float(b)), intensity=float(level))
            for (r, g, b), level in zip(session.flash_rgb, session.flash_intensity, strict=True)
        )
        schedule = FlashSchedule(
            states=states,
            state_duration_us=int(session.state_duration_us),
            nonce=session.nonce,
            order=tuple(int(i) for i in session.order),
        )
        clock.nonce = session.nonce
        chosen = clock.timed(
            "sync",
            lambda: select_state_frames(
                session.frame_times_us,
                session.exposure_us,
                session.readout_us,
                session.flash_onsets_us,
                session.latency_us,
                session.state_duration_us,
            ),
        )
        frames = []
        for i in chosen:
            meta: dict[str, Any] = {}
            if session.landmarks is not None:
                meta["landmarks"] = session.landmarks[int(i)]
            frames.append(
                Frame(
                    index=int(i),
                    t_start_us=int(session.frame_times_us[int(i)]),
                    exposure_us=int(session.exposure_us),
                    readout_us=int(session.readout_us),
                    image=session.frames[int(i)],
                    meta=meta,
                )
            )
        # Landmarks stored with the session (renderer ground truth or the recorder's detector)
        # are used as they are; without them the configured detector runs.
        provider = GroundTruthLandmarks() if session.landmarks is not None else self._landmarks
        return _Capture(schedule, frames, provider)

    def _evaluate(
        self, check_id: str, cap: _Capture, clock: StageClock, want_depth: bool
    ) -> CheckResult:
        t = self.config.timeouts
        detail: dict[str, Any] = {
            "frames_used": [f.index for f in cap.state_frames],
            "state_duration_us": cap.schedule.state_duration_us,
            "durations_us": list(cap.schedule.durations_us),
            "frame_locked": cap.schedule.frame_locked,
        }
        if cap.presence is not None:
            detail.update(cap.presence.detail)
            detail["landmarks_tracked_during_capture"] = sum(
                f.index in cap.known for f in cap.state_frames
            )
        track, images = self._landmarks_of(cap, clock, detail)
        # 5. the flash and the challenge are verified beside 7–9: the model does not wait for
        # the verification, the verdict does (a check it rejects answers retry, whatever the
        # model said)
        verified = clock.begin("verify", self._verification(cap, track, images, detail))
        try:
            # 7–8. align + diffnorm (fused in the C++ core)
            order = np.asarray(cap.schedule.order, dtype=np.int64)
            x = clock.bounded(
                "preprocess",
                lambda: _core.preprocess(
                    images, track.landmarks, self._template, order, self._n0, self._input_size
                ),
                t.preprocess_s,
            )
            # 9. infer
            output = clock.bounded("infer", lambda: self._backend.run(x), t.infer_s)
        except Exception:
            verified.result(t.verify_s)  # a rejected flash is the answer, not the model's failure
            raise
        detail.update(verified.result(t.verify_s))
        # 10. decide
        verdict, reason = clock.timed("decide", lambda: decide(output, self.threshold,
                                                                  self.spoof_below))
        result = self._result(check_id, verdict, reason, clock, detail)
        result.score = float(output.p_live)
        result.type_probs = {k: float(v) for k, v in output.type_probs.items()}
        if want_depth:
            result.depth = np.asarray(output.depth, dtype=np.float32)
        return result

    def _verify(self, cap: _Capture, clock: StageClock,
                detail: dict[str, Any]) -> tuple[FaceTrack, np.ndarray]:
        """Steps 6 and 5: the face in every state frame, then the flash evidence and the
        challenge (order, colour, timing); raises :class:`CheckRejected` with ``detail``."""
        track, images = self._landmarks_of(cap, clock, detail)
        verification = self._verification(cap, track, images, detail)
        detail.update(clock.bounded("verify", verification, self.config.timeouts.verify_s))
        return track, images

    def _landmarks_of(self, cap: _Capture, clock: StageClock,
                      detail: dict[str, Any]) -> tuple[FaceTrack, np.ndarray]:
        """Step 6: landmarks + face gates in every state frame, and the state frames' images."""
        cfg = self.config
        track = clock.bounded(
            "landmarks",
            lambda: track_face(
                cap.state_frames,
                cap.provider,
                cfg.gates,
                known=cap.known,
                anchor=cap.presence.face if cap.presence is not None else None,
                register=cfg.tracking.register_frames,
            ),
            cfg.timeouts.landmarks_s,
        )
        detail.update(track.detail)
        return track, _stack_images(cap.state_frames)

    def _verification(self, cap: _Capture, track: FaceTrack, images: np.ndarray,
                      detail: dict[str, Any]) -> Callable[[], dict[str, Any]]:
        """Step 5 as a stage: exposure, flash SNR, the challenge (order, colour, then the onsets'
        timing). Returns its detail, or raises :class:`CheckRejected` with ``detail`` and its
        own (``detail`` is only read: the stage may run beside others)."""
        cfg = self.config

        def verify() -> dict[str, Any]:
            evidence = measure_flash(
                images, track.landmarks, cap.schedule, cfg.gates, cfg.camera_gamma
            )
            found = dict(evidence.detail)
            try:
                gate_flash(evidence, cfg.gates)
                if cap.playback is not None:
                    self._verify_timing(cap, track.landmarks, evidence.detail, found)
            except CheckRejected as rejected:
                rejected.detail = {**detail, **found, **rejected.detail}
                raise
            return found

        return verify

    def _verify_timing(self, cap: _Capture, landmarks: np.ndarray, evidence: dict[str, Any],
                       detail: dict[str, Any]) -> None:
        """The onsets the camera saw must be the ones played (timing_check.py)."""
        assert cap.playback is not None
        cfg = self.config
        fps = self._camera.info().fps if self._camera is not None else 0.0
        fit = fit_timing(cap.frames, np.mean(landmarks, axis=0), cap.playback, cfg.latency_us,
                         cfg.display_rise_us, cfg.camera_gamma,
                         period_us=1e6 / fps if fps > 0 else None)
        if fit is None:
            raise retry(Reason.NO_CLEAN_FRAME, timing_verified=False, timing_frames=0)
        detail["timing_frames"] = fit.frames_used
        if fit.frames_used < cap.playback.schedule.n0 + 1 or fit.frames_missing:
            # fail closed: a starved camera must not turn the timing check off (a replay whose
            # order happens to match would then pass on the order alone), and frames dropped
            # mid-sequence leave onsets unseen (other timings would fit as well)
            raise retry(Reason.NO_CLEAN_FRAME, timing_verified=False,
                        timing_frames=fit.frames_used, frames_missing=fit.frames_missing)
        detail["timing_residual_steps"] = round(min(fit.residual_steps, 1e6), 4)
        snr = evidence.get("flash_snr") or 0.0
        if fit.residual_steps <= cfg.gates.max_timing_residual_steps:
            # NaN: not fitted (free timing, too few frames); inf: the fit gave the flash no
            # gain, which fails the limit like any residual past it (fail closed)
            if not np.isnan(fit.ambient_residual_steps):
                detail["ambient_fit_residual_steps"] = round(min(fit.ambient_residual_steps, 1e6),
                                                             4)
                limit_ambient = cfg.gates.max_ambient_fit_residual_steps
                if fit.ambient_residual_steps > limit_ambient:
                    reason = (Reason.LOW_FLASH_SNR if snr < cfg.gates.min_flash_snr_for_mismatch
                              else Reason.CHALLENGE_UNCLEAR)
                    raise retry(reason, challenge_verified=False,
                                max_ambient_fit_residual_steps=limit_ambient)
            return
        limit = {"max_timing_residual_steps": cfg.gates.max_timing_residual_steps}
        if snr < cfg.gates.min_flash_snr_for_mismatch:
            raise retry(Reason.LOW_FLASH_SNR, challenge_verified=False, **limit)
        if fit.residual_steps <= cfg.gates.max_timing_residual_for_retry:
            raise retry(Reason.CHALLENGE_UNCLEAR, challenge_verified=False, **limit)
        raise CheckRejected(Verdict.SPOOF, Reason.CHALLENGE_MISMATCH, limit)

    def _result(
        self,
        check_id: str,
        verdict: Verdict,
        reason: Reason,
        clock: StageClock,
        detail: dict[str, Any],
    ) -> CheckResult:
        timings = {k: round(v, 3) for k, v in clock.timings_ms.items()}
        timings["total"] = round(clock.total_ms(), 3)
        return CheckResult(
            check_id=check_id,
            verdict=verdict,
            reason=reason,
            score=None,
            threshold=self.threshold,
            timings_ms=timings,
            model=dict(self._model),
            backend=dict(self._backend_info),
            nonce=clock.nonce,
            detail=detail,
        )


def _stack_images(frames: Sequence[Frame]) -> np.ndarray:
    shapes = {f.image.shape for f in frames}
    if len(shapes) != 1:
        raise retry(Reason.NO_CLEAN_FRAME, why="state frames differ in size", shapes=str(shapes))
    images = np.stack([f.image for f in frames])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"frames must be uint8 [H, W, 3], got {images.dtype} {images.shape[1:]}")
    return np.ascontiguousarray(images)
