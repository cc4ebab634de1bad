"""The liveness service: owns the kiosk (camera, flash), the pipeline and the daemon's state.

It knows nothing about HTTP. Start-up warms the model and self-tests the camera and the flash in
the background; the service is *ready* only after both succeeded (GET /v1/health, READY=1).
Afterwards it watches the camera (frames must keep arriving) and the flash (a flash fault is
re-tested until it clears) and says what is wrong, so the API can answer 503 with the reason.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from flashfas_edge.capture.base import Camera, CameraError, Frame
from flashfas_edge.clock import monotonic_us
from flashfas_edge.daemon.challenge_lockout import ChallengeLockout
from flashfas_edge.data.session import Session
from flashfas_edge.flash.base import FlashDriver, FlashError, FlashPlayback
from flashfas_edge.inference.backend import Backend
from flashfas_edge.pipeline.result import CheckResult, Reason, Verdict, new_check_id

log = logging.getLogger(__name__)

# Answers that say the reflections did not verify as this challenge: each counts toward the
# lock-out (a replayed recording gives one or the other almost every time; a live face rarely).
_NOT_THIS_CHALLENGE = frozenset({Reason.CHALLENGE_MISMATCH, Reason.CHALLENGE_UNCLEAR})


class CheckRunner(Protocol):
    """What the daemon needs of ``flashfas_edge.pipeline.Pipeline``."""

    threshold: float  # the decision threshold in force (calibration, else the bundle default)

    def run_check(self, *, want_depth: bool = False, check_id: str | None = None) -> CheckResult:
        ...

    def run_recorded(self, session: Session) -> CheckResult: ...

    def warm_up(self) -> None: ...

    def stop(self) -> None: ...


class CheckRecorder(Protocol):
    """What the last check captured and played: the pipeline is handed recording wrappers of the
    camera and the flash (``kiosk.recording``); the daemon reads them through this."""

    def take_frames(self) -> list[Frame]:
        """Frames handed to the pipeline since the last call, oldest first; clears them."""
        ...

    def last_playback(self) -> FlashPlayback | None: ...


@dataclass
class Health:
    ready: bool
    status: str  # starting | ready | degraded | stopping
    reason: str | None = None  # machine-readable: camera_unavailable, flash_unavailable, ...
    message: str | None = None


@dataclass
class ServiceCounters:
    by_verdict: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    evaluations: Counter[str] = field(default_factory=Counter)  # recordings, by outcome
    last_check: dict[str, Any] | None = None


class LivenessService:
    def __init__(
        self,
        camera: Camera,
        flash: FlashDriver,
        recorder: CheckRecorder,
        backend: Backend,
        pipeline: CheckRunner,
        *,
        mode: str,
        frame_stale_s: float,
        model_identity: dict[str, Any],
        latency_us: int = 0,
        self_test_timeout_s: float = 10.0,
        retry_interval_s: float = 2.0,
        lockout: ChallengeLockout | None = None,
    ) -> None:
        self.camera = camera  # the devices themselves: start, stop, self-test, frame rate
        self.flash = flash
        self.recorder = recorder  # what the pipeline's check captured and played
        self.backend = backend
        self.pipeline = pipeline
        self.mode = mode
        self.frame_stale_s = frame_stale_s
        self.model_identity = model_identity
        # flash-to-camera latency in force (calibration's, or the simulated device's exactly)
        self.latency_us = latency_us
        self.lockout = lockout
        self.self_test_timeout_s = self_test_timeout_s
        self.retry_interval_s = retry_interval_s
        self.started_monotonic = time.monotonic()
        self.counters = ServiceCounters()
        self._warm = False
        self._startup_error: tuple[str, str] | None = None
        self._flash_fault: str | None = None
        self._stopping = threading.Event()
        self._ready_event = threading.Event()
        self._monitor: threading.Thread | None = None
        self._on_ready: list[Callable[[], None]] = []
        self._fps_lock = threading.Lock()
        self._camera_fps: float | None = None
        self.last_check_frames: list[Frame] = []  # what the last check captured (record, audit)

    # ----- start-up -----------------------------------------------------------------------------
    def on_ready(self, callback: Callable[[], None]) -> None:
        self._on_ready.append(callback)

    def start(self) -> None:
        """Start the self-test/warm-up and monitoring thread; returns at once."""
        self._monitor = threading.Thread(target=self._run_monitor, name="kiosk-monitor",
                                         daemon=True)
        self._monitor.start()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready_event.wait(timeout_s)

    def _self_test(self) -> None:
        """Camera delivers frames, flash answers, the model has run once (docs/ARCHITECTURE.md
        §9)."""
        self.camera.start()
        deadline = time.monotonic() + self.self_test_timeout_s
        while self.camera.last_frame_time_us() is None:
            if time.monotonic() > deadline:
                raise CameraError(f"no frame within {self.self_test_timeout_s:.0f} s of start")
            time.sleep(0.02)
        self.flash.start()
        self.flash.self_test()
        self.pipeline.warm_up()  # the model and the landmark detector run once

    def _run_monitor(self) -> None:
        while not self._stopping.is_set() and not self._warm:
            try:
                self._self_test()
            except CameraError as exc:
                self._startup_error = ("camera_unavailable", f"camera self-test: {exc}")
            except FlashError as exc:
                self._startup_error = ("flash_unavailable", f"flash self-test: {exc}")
            except Exception as exc:  # noqa: BLE001 - reported through health, retried
                self._startup_error = ("self_test_failed", f"{type(exc).__name__}: {exc}")
            else:
                self._startup_error = None
                self._warm = True
                self._ready_event.set()
                log.info("ready: model warmed up, camera and flash self-tested")
                for callback in self._on_ready:
                    callback()
                break
            log.warning("not ready: %s; retrying in %.0f s", self._startup_error[1],
                        self.retry_interval_s)
            self._stopping.wait(self.retry_interval_s)
        while not self._stopping.wait(0.5):
            self._sample_camera_fps()
            if self._flash_fault is not None:
                try:
                    self.flash.self_test()
                except FlashError as exc:
                    self._flash_fault = str(exc)
                except Exception as exc:  # noqa: BLE001 - stays faulted
                    self._flash_fault = f"{type(exc).__name__}: {exc}"
                else:
                    log.info("flash recovered")
                    self._flash_fault = None

    def _sample_camera_fps(self) -> None:
        last = self.camera.last_frame_time_us()
        fps: float | None = None
        if last is not None and monotonic_us() - last < self.frame_stale_s * 1e6:
            try:
                # frames_between returns at once: the newest frame (at `last`) closes the window.
                frames = self.camera.frames_between(last - 1_000_000, last, timeout_s=0.2)
            except CameraError:
                frames = []
            if len(frames) >= 1:
                span_us = last - frames[0].t_start_us
                fps = len(frames) * 1e6 / span_us if span_us > 0 else None
        else:
            fps = 0.0 if last is not None else None
        with self._fps_lock:
            self._camera_fps = fps

    def camera_fps(self) -> float | None:
        with self._fps_lock:
            return self._camera_fps

    def begin_stopping(self) -> None:
        """Shutdown has begun: health says ``stopping``; the devices stay up for the running
        check until :meth:`stop`."""
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(timeout=5)
        for part in (self.flash, self.camera, self.pipeline):
            try:
                part.stop()
            except Exception as exc:  # noqa: BLE001 - best effort on shutdown
                log.warning("stopping %s: %s", type(part).__name__, exc)

    # ----- state --------------------------------------------------------------------------------
    def camera_frame_age_s(self) -> float | None:
        last = self.camera.last_frame_time_us()
        return None if last is None else (monotonic_us() - last) / 1e6

    def health(self) -> Health:
        if self._stopping.is_set():
            return Health(False, "stopping", "stopping", "the daemon is shutting down")
        if not self._warm:
            if self._startup_error is not None:
                return Health(False, "degraded", *self._startup_error)
            return Health(False, "starting", "warming_up", "warm-up and self-test in progress")
        age_s = self.camera_frame_age_s()
        if age_s is None or age_s > self.frame_stale_s:
            shown = "never" if age_s is None else f"{age_s:.1f} s ago"
            return Health(False, "degraded", "camera_unavailable",
                          f"camera stalled: last frame {shown}")
        if self._flash_fault is not None:
            return Health(False, "degraded", "flash_unavailable", f"flash: {self._flash_fault}")
        return Health(True, "ready")

    def frames_flowing(self) -> bool:
        """The watchdog's liveness condition: warmed up and camera frames keep arriving."""
        age_s = self.camera_frame_age_s()
        return self._warm and age_s is not None and age_s <= self.frame_stale_s

    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    # ----- checks (called on the check worker thread) -------------------------------------------
    def run_check(self, want_depth: bool,
                  check_id: str | None = None) -> tuple[CheckResult, list[np.ndarray]]:
        check_id = check_id or new_check_id()
        locked_s = self.lockout.remaining_s() if self.lockout is not None else 0.0
        if locked_s > 0:
            return self._locked_out(check_id, locked_s), []
        self.recorder.take_frames()  # drop frames of an earlier aborted check
        try:
            result = self.pipeline.run_check(want_depth=want_depth, check_id=check_id)
        except FlashError as exc:
            self._flash_fault = str(exc)
            raise
        finally:
            self.last_check_frames = self.recorder.take_frames()
        frames = [f.image for f in self.last_check_frames]
        if result.reason is Reason.FLASH_UNAVAILABLE:
            self._flash_fault = str(result.detail.get("error") or "the flash failed in a check")
        if result.reason in _NOT_THIS_CHALLENGE and self.lockout is not None:
            self.lockout.record_mismatch()
        return _fail_closed(result), frames

    def _locked_out(self, check_id: str, remaining_s: float) -> CheckResult:
        """Neither flash nor camera runs while locked out; the answer says for how long."""
        return CheckResult(
            check_id=check_id, verdict=Verdict.RETRY, reason=Reason.CHALLENGE_LOCKOUT,
            score=None, threshold=self.pipeline.threshold,
            model=dict(self.model_identity),
            detail={"retry_after_s": round(remaining_s, 1),
                    "message": "too many challenge mismatches; checks resume later"},
        )

    def failed_result(self, check_id: str, exc: BaseException) -> CheckResult:
        """The record of a check that broke outside the pipeline's own error handling."""
        return CheckResult(
            check_id=check_id, verdict=Verdict.RETRY, reason=Reason.INTERNAL_ERROR, score=None,
            threshold=self.pipeline.threshold, model=dict(self.model_identity),
            detail={"error": f"{type(exc).__name__}: {exc}"},
        )

    def run_recorded(self, session: Session) -> CheckResult:
        return _fail_closed(self.pipeline.run_recorded(session))

    def count(self, result: CheckResult, kind: str) -> None:
        if kind == "recorded_evaluation":  # never an access decision: counted apart
            self.counters.evaluations[result.verdict.value] += 1
            return
        self.counters.by_verdict[result.verdict.value] += 1
        self.counters.by_reason[result.reason.value] += 1
        self.counters.last_check = {
            "check_id": result.check_id, "kind": kind, "verdict": result.verdict.value,
            "reason": result.reason.value, "time_unix": round(time.time(), 3),
        }


_LIVE_REASONS = {Reason.SCORE_ABOVE_THRESHOLD}


def _fail_closed(result: CheckResult) -> CheckResult:
    """Defence in depth for the one answer that opens a door: ``live`` must be backed by a score
    at or above the threshold and the live reason; anything else is turned into a retry."""
    if result.verdict is not Verdict.LIVE:
        return result
    score_ok = result.score is not None and np.isfinite(result.score) and \
        result.score >= result.threshold
    if score_ok and result.reason in _LIVE_REASONS:
        return result
    log.error("pipeline answered live without a consistent score/reason; answering retry")
    result.verdict = Verdict.RETRY
    result.reason = Reason.INTERNAL_ERROR
    result.detail = {**result.detail, "fail_closed": "live without a consistent score"}
    return result

