"""Test support for the daemon's HTTP layer: a real uvicorn server on 127.0.0.1 in a thread.

The kiosk doubles below stand in for the pipeline ONLY where a test is about the HTTP layer itself
(queueing, error mapping, watchdog timing); product behaviour (live passes, attacks rejected) is
tested with the real simulated kiosk and the real bundle in test_api_product.py.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flashfas_edge.api.app import create_app
from flashfas_edge.api.auth import load_api_key
from flashfas_edge.capture.base import CameraError, CameraInfo, Frame
from flashfas_edge.clock import monotonic_us
from flashfas_edge.config import LoadedConfig, load_config
from flashfas_edge.daemon.audit_log import AuditLog
from flashfas_edge.daemon.server import build_server, open_listener
from flashfas_edge.daemon.service import LivenessService
from flashfas_edge.flash.base import FlashError, FlashPlayback, FlashSchedule, FlashState
from flashfas_edge.inference.backend import BackendInfo
from flashfas_edge.kiosk.recording import CheckRecording, RecordingCamera, RecordingFlash
from flashfas_edge.pipeline.result import CheckResult, Reason, Verdict, new_check_id

API_KEY = "test-key-" + "0123456789abcdef" * 2


def write_key_file(directory: Path, key: str = API_KEY, mode: int = 0o600) -> Path:
    path = directory / "api-key"
    path.write_text(key + "\n")
    os.chmod(path, mode)
    return path


class TickingCamera:
    """Produces tiny frames at ``fps`` on a thread; ``stall()`` stops frames arriving."""

    def __init__(self, fps: float = 60.0) -> None:
        self.fps = fps
        self._frames: list[Frame] = []
        self._cond = threading.Condition()
        self._running = False
        self._stalled = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        index = 0
        while self._running:
            if not self._stalled.is_set():
                frame = Frame(index, monotonic_us(), 5000, 10000,
                              np.full((8, 8, 3), index % 255, np.uint8))
                with self._cond:
                    self._frames = [*self._frames[-120:], frame]
                    self._cond.notify_all()
                index += 1
            time.sleep(1.0 / self.fps)

    def stall(self) -> None:
        self._stalled.set()

    def resume(self) -> None:
        self._stalled.clear()

    def stop(self) -> None:
        self._running = False

    def info(self) -> CameraInfo:
        return CameraInfo(8, 8, self.fps, 5000, 10000, "ticking-test-camera")

    def frames_between(self, t0_us: int, t1_us: int, timeout_s: float,
                       complete_at_us: int | None = None) -> list[Frame]:
        deadline = time.monotonic() + timeout_s
        ready_us = t1_us if complete_at_us is None else min(complete_at_us, t1_us)
        with self._cond:
            while not self._frames or self._frames[-1].t_start_us < ready_us:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CameraError(f"no frame after {ready_us} within {timeout_s} s")
                self._cond.wait(remaining)
            return [f for f in self._frames if t0_us <= f.t_start_us < t1_us]

    def last_frame_time_us(self) -> int | None:
        with self._cond:
            return self._frames[-1].t_start_us if self._frames else None


class SleepingFlash:
    def __init__(self, state_duration_us: int = 10_000) -> None:
        self.state_duration_us = state_duration_us
        self.broken = False

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def self_test(self) -> None:
        if self.broken:
            raise FlashError("panel does not acknowledge")

    def play(self, schedule: FlashSchedule, timeout_s: float, grid=None) -> FlashPlayback:
        if self.broken:
            raise FlashError("panel does not acknowledge")
        onsets = []
        for _ in schedule.states:
            onsets.append(monotonic_us())
            time.sleep(schedule.state_duration_us / 1e6)
        return FlashPlayback(schedule, tuple(onsets), monotonic_us())

    def supports_colour(self) -> bool:
        return False

    def holds_timing(self) -> bool:
        return False

    def idle_state(self) -> None:
        return None  # unknown: the worst idle screen is assumed


class BackendDouble:
    def __init__(self) -> None:
        self.warmed = threading.Event()
        self.warm_up_s = 0.0

    def warm_up(self) -> None:
        time.sleep(self.warm_up_s)
        self.warmed.set()

    def info(self) -> BackendInfo:
        return BackendInfo("double", "cpu", "fp32", {"double": "1"})


@dataclass
class PipelineDouble:
    """Plays a flash, waits for the frames, answers a scripted verdict. Records concurrency."""

    camera: RecordingCamera
    flash: RecordingFlash
    verdict: Verdict = Verdict.SPOOF
    threshold: float = 0.5
    extra_sleep_s: float = 0.0
    backend: BackendDouble | None = None
    active: int = 0
    max_active: int = 0
    calls: int = 0
    nonces: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_check(self, *, want_depth: bool = False, check_id: str | None = None) -> CheckResult:
        check_id = check_id or new_check_id()
        with self._lock:
            self.active += 1
            self.calls += 1
            self.max_active = max(self.max_active, self.active)
        try:
            nonce = secrets.token_hex(8)
            schedule = FlashSchedule(tuple(FlashState((1, 1, 1), v) for v in (1, .5, 0)),
                                     10_000, nonce, (0, 1, 2))
            t0 = monotonic_us()
            playback = self.flash.play(schedule, timeout_s=1.0)
            time.sleep(self.extra_sleep_s)
            try:
                frames = self.camera.frames_between(t0, playback.end_us, timeout_s=0.5)
            except CameraError as exc:
                return CheckResult(check_id, Verdict.RETRY, Reason.CAMERA_UNAVAILABLE,
                                   None, self.threshold, detail={"error": str(exc)}, nonce=nonce)
            self.nonces.append(nonce)
            score = 0.9 if self.verdict is Verdict.LIVE else 0.1
            reason = (Reason.SCORE_ABOVE_THRESHOLD if self.verdict is Verdict.LIVE
                      else Reason.SCORE_BELOW_THRESHOLD)
            return CheckResult(
                check_id, self.verdict, reason, score, self.threshold,
                type_probs={"print": 0.2, "replay": 0.5, "mask": 0.3},
                timings_ms={"flash": 30.0, "capture": 1.0, "total": 31.0},
                model={"name": "double", "sha256": "0" * 64}, backend={"name": "double"},
                nonce=nonce, depth=np.full((4, 4), 0.5, np.float32) if want_depth else None,
                detail={"frames": len(frames)},
            )
        finally:
            with self._lock:
                self.active -= 1

    def warm_up(self) -> None:
        self.flash.inner.self_test()
        self.camera.inner.info()
        backend = getattr(self, "backend", None)
        if backend is not None:
            backend.warm_up()

    def stop(self) -> None: ...

    def run_recorded(self, session) -> CheckResult:
        return CheckResult(new_check_id(), Verdict.SPOOF, Reason.SCORE_BELOW_THRESHOLD, 0.1,
                           0.5, nonce=session.nonce)


@dataclass
class RunningServer:
    url: str
    service: LivenessService
    app: object
    config: LoadedConfig
    thread: threading.Thread
    server: object

    @property
    def gate(self):
        return self.app.state.daemon.gate  # type: ignore[attr-defined]

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(timeout=10)
        self.gate.close()
        self.service.stop()


def serve_in_thread(service: LivenessService, config: LoadedConfig,
                    scene_controls: object = None, flash_clients: object = None) -> RunningServer:
    """A real uvicorn server on 127.0.0.1:<free port> serving the real app (``flash_clients``:
    the browser display flash its /v1/flash/ws hands clients to)."""
    key = load_api_key(config.daemon.server.api_key_file)
    daemon = config.daemon
    audit = AuditLog(daemon.audit.path, daemon.audit.max_bytes, daemon.audit.backups,
                     images_dir=daemon.audit.images_dir if daemon.audit.store_images else None)
    app = create_app(config, service, audit, key, scene_controls,  # type: ignore[arg-type]
                     flash_clients)  # type: ignore[arg-type]
    listener = open_listener(config)
    gate = app.state.daemon.gate  # type: ignore[attr-defined]

    def begin_shutdown() -> None:
        gate.close_admission()
        service.begin_stopping()

    server = build_server(app, config, begin_shutdown)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[listener.sock])), daemon=True)
    service.start()
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return RunningServer(listener.url, service, app, config, thread, server)


def double_config(tmp: Path, **sections: dict) -> LoadedConfig:
    key_file = write_key_file(tmp)
    overrides = {
        "server": {"port": 0, "api_key_file": str(key_file)},
        "audit": {"path": str(tmp / "audit.jsonl")},
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(None, overrides=overrides)


def double_service(config: LoadedConfig, *, fps: float = 60.0):
    recording = CheckRecording(TickingCamera(fps), SleepingFlash())
    backend = BackendDouble()
    pipeline = PipelineDouble(recording.camera, recording.flash, backend=backend)
    service = LivenessService(
        recording.camera.inner, recording.flash.inner, recording, backend, pipeline, mode="real",
        frame_stale_s=config.daemon.watchdog.frame_stale_s,
        model_identity={"name": "double", "sha256": "0" * 64}, retry_interval_s=0.2,
    )
    return service, pipeline


def serve_double(tmp: Path, **sections: dict) -> tuple[RunningServer, PipelineDouble]:
    """The real app on a real server around the kiosk doubles, ready."""
    config = double_config(tmp, **sections)
    service, pipeline = double_service(config)
    running = serve_in_thread(service, config)
    assert service.wait_ready(10)
    return running, pipeline


def live_session_file(directory: Path, identity: int = 3, seed: int = 4) -> bytes:
    """The bytes of one rendered live session in the dataset format (a session file)."""
    from flashfas_edge.data.dataset_format import write_session_file
    from flashfas_edge.sim.device import PROFILES
    from flashfas_edge.sim.scene import SceneRequest
    from flashfas_edge.sim.synth_session import render_session

    path = directory / "live.npz"
    write_session_file(path, render_session(SceneRequest("live", "office", PROFILES[0],
                                                         identity, seed)))
    return path.read_bytes()

