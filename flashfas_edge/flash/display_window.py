"""The display flash, native side: a full-screen window of the daemon's own, for kiosks without a
browser (``[kiosk.flash] surface = "window"``; SDL2 through pygame, the ``[display-native]``
extra).

One thread owns the window (SDL wants its window used from the thread that made it). Between
sequences it shows the idle screen; a sequence fills the window with each state's sRGB colour and
flips, vsync'd (``SCALED`` + ``vsync=1``: the flip returns at the vertical blank that shows the
new frame), and each state's onset is the host monotonic time its flip returned. A state is
flipped no earlier than its predecessor's onset + duration, so every state lasts at least its
duration. The reported times go through the same checks as the browser client's
(``presentation.py``): a stalled window is a :class:`FlashError`, never a playback.

In tests SDL's ``dummy`` (or ``offscreen``) video driver stands in for a screen
(``SDL_VIDEODRIVER``, read by SDL itself).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from flashfas_edge.clock import monotonic_us, sleep_until_us
from flashfas_edge.flash.base import (
    DARK,
    FlashError,
    FlashPlayback,
    FlashSchedule,
    FlashState,
    OnsetGrid,
)
from flashfas_edge.flash.presentation import (
    DEFAULT_LIMITS,
    PresentationLimits,
    PresentedListener,
    playback_from_presentations,
    srgb_bytes,
)

log = logging.getLogger(__name__)

SURFACE = "flash window"


class WindowDisplayFlash:
    def __init__(self, *, idle_rgb: tuple[float, float, float] | None = None,
                 open_timeout_s: float = 10.0, limits: PresentationLimits = DEFAULT_LIMITS,
                 on_presented: PresentedListener | None = None) -> None:
        # The idle screen: the configured one ([pipeline.challenge] idle_rgb), else black.
        self.idle = DARK if idle_rgb is None else FlashState(idle_rgb, 1.0)
        self.open_timeout_s = open_timeout_s
        self.limits = limits
        self.on_presented = on_presented
        self.vsync = False  # whether the window's flips wait for the vertical blank
        self.size: tuple[int, int] | None = None
        self._jobs: queue.Queue[tuple[Callable[[Any], Any], Future[Any]] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one sequence at a time
        self._abort = threading.Event()

    # --- FlashDriver ----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        opened: Future[None] = Future()
        self._jobs = queue.Queue()
        self._thread = threading.Thread(target=self._run, args=(opened,), name="flash-window",
                                        daemon=True)
        self._thread.start()
        try:
            opened.result(timeout=self.open_timeout_s)
        except FutureTimeout as exc:
            raise FlashError(f"the {SURFACE} did not open within {self.open_timeout_s:.0f} s") \
                from exc

    def stop(self) -> None:
        self._abort.set()
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=5)
            self._thread = None
        self._abort.clear()

    def self_test(self) -> None:
        self._call(lambda pygame: self._paint(pygame, self.idle), timeout_s=2.0)

    def supports_colour(self) -> bool:
        return True

    def holds_timing(self) -> bool:
        return False  # states change at the display's vsync, not at a commanded time

    def idle_state(self) -> FlashState:
        return self.idle  # the window paints it between sequences

    def play(self, schedule: FlashSchedule, timeout_s: float,
             grid: OnsetGrid | None = None) -> FlashPlayback:
        """Play at the display's pace; ``grid`` is not used (:meth:`holds_timing` is False)."""
        with self._lock:
            self._abort.clear()
            sent_us = monotonic_us()
            try:
                onsets, end_us = self._call(lambda pygame: self._sequence(pygame, schedule),
                                            timeout_s=timeout_s)
            except FlashError:
                self._abort.set()  # the window thread returns to idle at its next step
                raise
            return playback_from_presentations(
                schedule, onsets, end_us, sent_us=sent_us, requested_start_us=sent_us,
                reported_by_us=monotonic_us(), surface=SURFACE, limits=self.limits)

    # --- the window thread ----------------------------------------------------------------
    def _call(self, job: Callable[[Any], Any], timeout_s: float) -> Any:
        if self._thread is None or not self._thread.is_alive():
            raise FlashError(f"the {SURFACE} is not open")
        done: Future[Any] = Future()
        self._jobs.put((job, done))
        try:
            return done.result(timeout=timeout_s)
        except FutureTimeout as exc:
            raise FlashError(f"the {SURFACE} did not answer within {timeout_s:.2f} s") from exc

    def _run(self, opened: Future[None]) -> None:
        try:
            import pygame
        except ImportError as exc:
            opened.set_exception(FlashError(
                f"the {SURFACE} needs pygame: pip install 'flashfas-edge[display-native]' ({exc})"))
            return
        try:
            pygame.display.init()
            size = pygame.display.get_desktop_sizes()[0]
            try:
                pygame.display.set_mode(size, pygame.FULLSCREEN | pygame.SCALED, vsync=1)
                self.vsync = True
            except pygame.error as exc:
                log.warning("%s: no vsync here (%s); onsets are flip times", SURFACE, exc)
                pygame.display.set_mode(size, pygame.FULLSCREEN)
            pygame.display.set_caption("FlashFAS Edge flash")
            pygame.mouse.set_visible(False)
            self.size = size
            self._paint(pygame, self.idle)
        except pygame.error as exc:
            opened.set_exception(FlashError(f"cannot open the {SURFACE}: {exc}"))
            pygame.display.quit()
            return
        opened.set_result(None)
        try:
            while True:
                try:
                    item = self._jobs.get(timeout=0.1)
                except queue.Empty:
                    pygame.event.pump()  # keep the window responsive to the window system
                    continue
                if item is None:
                    break
                job, done = item
                if not done.set_running_or_notify_cancel():
                    continue
                try:
                    done.set_result(job(pygame))
                except FlashError as exc:
                    done.set_exception(exc)
                except pygame.error as exc:
                    done.set_exception(FlashError(f"the {SURFACE} failed: {exc}"))
        finally:
            pygame.display.quit()

    def _paint(self, pygame: Any, state: FlashState) -> int:
        """Fill the window with ``state`` and flip; the host time the flip returned."""
        surface = pygame.display.get_surface()
        surface.fill(srgb_bytes(state))
        pygame.display.flip()
        return monotonic_us()

    def _sequence(self, pygame: Any, schedule: FlashSchedule) -> tuple[list[int], int]:
        onsets: list[int] = []
        try:
            for slot, state in enumerate(schedule.states):
                if onsets:
                    sleep_until_us(onsets[-1] + schedule.duration_of(slot - 1))
                if self._abort.is_set():
                    raise FlashError(f"the {SURFACE}'s sequence was abandoned")
                onsets.append(self._paint(pygame, state))
                if self.on_presented is not None:
                    self.on_presented(state, onsets[-1])
            sleep_until_us(onsets[-1] + schedule.duration_of(schedule.n0 - 1))
        finally:
            end_us = self._paint(pygame, self.idle)  # never left on a flash state
            if self.on_presented is not None:
                self.on_presented(None, end_us)
        return onsets, end_us
