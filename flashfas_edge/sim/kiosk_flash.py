"""The simulated kiosk's flash surface: commands change the shared scene's display light.

Onsets are reported when each state is commanded (as a display driver reports its vsync); the
light itself follows after the device latency (``SimKiosk.command_display``). With the
``flash_never_shows`` hook the onsets are still reported but the light never changes.

``PresentedLight`` lights the scene instead from what a real display driver (the browser client
or the flash window, ``flash/display_flash.py``, ``flash/display_window.py``) reports it
presented: the virtual camera sees what the display showed, when the display says it showed it.
"""

from __future__ import annotations

from flashfas_edge.clock import monotonic_us, sleep_until_us
from flashfas_edge.flash.base import (
    FlashError,
    FlashPlayback,
    FlashSchedule,
    FlashState,
    OnsetGrid,
)
from flashfas_edge.sim.kiosk import SimKiosk
from flashfas_edge.sim.schedule import IDLE_STATE


class SimFlashDriver:
    def __init__(self, kiosk: SimKiosk, colour: bool = True):
        self.kiosk = kiosk
        self._colour = colour
        self._started = False

    def start(self) -> None:
        self._started = True
        self.kiosk.command_idle(monotonic_us())

    def stop(self) -> None:
        if self._started:
            self.kiosk.command_idle(monotonic_us())
        self._started = False

    def self_test(self) -> None:
        if not self._started:
            raise FlashError("simulated flash surface is not started")

    def supports_colour(self) -> bool:
        return self._colour

    def holds_timing(self) -> bool:
        return True  # commands change the simulated light at their host time

    def idle_state(self) -> FlashState:
        return IDLE_STATE  # the simulated kiosk shows its UI between sequences

    def play(self, schedule: FlashSchedule, timeout_s: float,
             grid: OnsetGrid | None = None) -> FlashPlayback:
        if not self._started:
            raise FlashError("simulated flash surface is not started")
        total_us = schedule.total_us
        if total_us / 1e6 > timeout_s:
            raise FlashError(f"schedule of {total_us / 1e6:.2f} s exceeds timeout {timeout_s} s")
        t = monotonic_us() + 2_000  # first state on the next "vsync"
        if grid is not None:
            t = grid.next_at_or_after(t)
        planned = t  # where each onset belongs on the grid
        onsets = []
        for slot, state in enumerate(schedule.states):
            sleep_until_us(t)
            now = monotonic_us()
            self.kiosk.command_display(state, now)
            onsets.append(now)
            planned += schedule.duration_of(slot)
            if grid is not None:
                # Locked to the camera's frames: every onset keeps its place on the grid, so a
                # late wake-up shortens its own state only (by less than the grid's margin).
                t = planned
            else:
                # Each state lasts its full duration from its real onset: a late wake-up delays
                # the rest of the sequence instead of shortening the next state below the
                # length that holds one clean frame (pipeline/challenge.py, state_duration_for).
                t = now + schedule.duration_of(slot)
        sleep_until_us(t)
        end = monotonic_us()
        self.kiosk.command_idle(end)
        return FlashPlayback(schedule, tuple(onsets), end)


class PresentedLight:
    """A display driver's presentation listener that lights the simulated scene: each reported
    state from its reported time on (the light follows after the device latency, as for the
    simulated flash), the idle screen after the last."""

    def __init__(self, kiosk: SimKiosk) -> None:
        self.kiosk = kiosk

    def __call__(self, state: FlashState | None, t_us: int) -> None:
        if state is None:
            self.kiosk.command_idle(t_us)
        else:
            self.kiosk.command_display(state, t_us)
