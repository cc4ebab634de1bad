"""Times each stage of a check into ``timings_ms`` and bounds it by a timeout (docs/ARCHITECTURE.md
§1).

Blocking I/O stages (flash, capture) carry their own timeouts into the driver calls; compute
stages run on worker threads and are abandoned when their deadline passes. A Python thread cannot
be killed, so an abandoned stage may still finish in the background; the workers are then replaced
so the next check does not queue behind it. Two compute stages may run side by side (``begin``:
the flash verification beside the model); each records its own run time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Generic, TypeVar

T = TypeVar("T")

WORKERS = 2  # compute stages that may run at once (StageClock.begin beside StageClock.bounded)


class StageTimeoutError(RuntimeError):
    """A stage of the check ran past its timeout."""

    def __init__(self, stage: str, timeout_s: float) -> None:
        super().__init__(f"stage {stage!r} exceeded its {timeout_s:g} s timeout")
        self.stage = stage
        self.timeout_s = timeout_s


class StageRunner:
    """Owns the worker thread for compute stages; one per Pipeline."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor = self._new_executor()

    @staticmethod
    def _new_executor() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="flashfas-stage")

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        with self._lock:
            return self._executor.submit(fn)

    def abandon(self) -> None:
        """Forget a worker that is stuck in a timed-out stage."""
        with self._lock:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = self._new_executor()

    def close(self) -> None:
        with self._lock:
            self._executor.shutdown(wait=False, cancel_futures=True)


class StageClock:
    """Per-check stopwatch: ``timings_ms[stage]`` for every stage that ran (also failed ones)."""

    def __init__(self, runner: StageRunner) -> None:
        self._runner = runner
        self.timings_ms: dict[str, float] = {}
        self.nonce = ""  # the check's challenge nonce, once drawn (reported even on early exits)
        self._t0 = time.perf_counter()

    def timed(self, stage: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` on this thread and record its duration (its own timeouts apply)."""
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.timings_ms[stage] = (time.perf_counter() - start) * 1e3

    def bounded(self, stage: str, fn: Callable[[], T], timeout_s: float) -> T:
        """Run ``fn`` on the stage worker; raise :class:`StageTimeoutError` past ``timeout_s``."""
        start = time.perf_counter()
        try:
            running = RunningStage(stage, self._runner, self._runner.submit(fn), time.monotonic())
            return running.result(timeout_s)
        finally:
            self.timings_ms[stage] = (time.perf_counter() - start) * 1e3

    def begin(self, stage: str, fn: Callable[[], T]) -> RunningStage[T]:
        """Start ``fn`` on a stage worker and return at once; its result (and its timeout) is
        taken later with :meth:`RunningStage.result`, while this thread runs other stages. Its
        time is its own run's, not the wait for it."""
        future = self._runner.submit(lambda: self.timed(stage, fn))
        return RunningStage(stage, self._runner, future, time.monotonic())

    def total_ms(self) -> float:
        return (time.perf_counter() - self._t0) * 1e3


class RunningStage(Generic[T]):
    """A stage running on a stage worker (:meth:`StageClock.begin`, :meth:`StageClock.bounded`)."""

    def __init__(self, stage: str, runner: StageRunner, future: Future[T], started: float):
        self._stage, self._runner, self._future, self._started = stage, runner, future, started

    def result(self, timeout_s: float) -> T:
        """Its result (or its exception); :class:`StageTimeoutError` once ``timeout_s`` has passed
        since it started."""
        left = max(self._started + timeout_s - time.monotonic(), 0.0)
        try:
            return self._future.result(timeout=left)
        except FutureTimeout:
            self._future.cancel()
            self._runner.abandon()
            raise StageTimeoutError(self._stage, timeout_s) from None
