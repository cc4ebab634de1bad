"""The FlashDriver interface (docs/ARCHITECTURE.md §1 step 2): plays a flash schedule and reports
onsets.

A flash state is a colour × intensity. The driver reports when each state *really* started on the
host monotonic clock (display vsync or LED-MCU timestamp converted to host time), in microseconds
(``flashfas_edge.clock.monotonic_us``, the clock the camera stamps frames with).
The display-to-camera latency is a calibrated quantity applied by the sync step, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class FlashError(RuntimeError):
    """The flash surface is absent, did not acknowledge, or missed its schedule."""


@dataclass(frozen=True)
class FlashState:
    rgb: tuple[float, float, float]  # colour, each channel in [0, 1]
    intensity: float  # in [0, 1]; 0 = panel dark


@dataclass(frozen=True)
class FlashSchedule:
    """What to play: ``states[i]`` for ``state_duration_us`` each, in the given order.

    ``order`` lists the state indices from brightest to darkest intensity (the order that
    differential normalisation sorts frames into); ``nonce`` identifies the challenge.
    """

    states: tuple[FlashState, ...]
    state_duration_us: int
    nonce: str
    order: tuple[int, ...] = field(default=())

    @property
    def n0(self) -> int:
        return len(self.states)


@dataclass(frozen=True)
class FlashPlayback:
    """What was played: the schedule and the host-monotonic onset of each state (µs)."""

    schedule: FlashSchedule
    onsets_us: tuple[int, ...]
    end_us: int  # when the last state ended (the surface returned to idle)


@runtime_checkable
class FlashDriver(Protocol):
    def start(self) -> None:
        """Open the flash surface (display window or serial panel). Idempotent."""

    def stop(self) -> None:
        """Return the surface to idle and release it. Idempotent."""

    def self_test(self) -> None:
        """Raise :class:`FlashError` if the surface does not respond."""

    def play(self, schedule: FlashSchedule, timeout_s: float) -> FlashPlayback:
        """Play the schedule, blocking until it has ended; raise FlashError on timeout."""
        ...

    def supports_colour(self) -> bool: ...
