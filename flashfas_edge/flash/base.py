"""The FlashDriver interface (docs/ARCHITECTURE.md §1 step 2): plays a flash schedule and reports
onsets.

A flash state is a colour × intensity. The driver reports when each state *really* started on the
host monotonic clock (display vsync or LED-MCU timestamp converted to host time), in microseconds
(``flashfas_edge.clock.monotonic_us``, the clock the camera stamps frames with).
The display-to-camera latency is a calibrated quantity applied by the sync step, not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class FlashError(RuntimeError):
    """The flash surface is absent, did not acknowledge, or missed its schedule."""


@dataclass(frozen=True)
class FlashState:
    rgb: tuple[float, float, float]  # colour, each channel in [0, 1]
    intensity: float  # in [0, 1]; 0 = panel dark


DARK = FlashState((0.0, 0.0, 0.0), 0.0)  # no light from the surface


@dataclass(frozen=True)
class FlashSchedule:
    """What to play: ``states[i]`` for ``durations_us[i]`` (or ``state_duration_us`` each when
    ``durations_us`` is empty), in the given order.

    ``state_duration_us`` is the shortest state, the length that holds one clean frame (sync
    relies on it); random extra time per state (``durations_us``) makes the onsets part of the
    challenge (docs/SAFETY.md §3). ``order`` lists the state indices from brightest to darkest
    intensity (the order that differential normalisation sorts frames into); ``nonce``
    identifies the challenge.
    """

    states: tuple[FlashState, ...]
    state_duration_us: int
    nonce: str
    order: tuple[int, ...] = field(default=())
    durations_us: tuple[int, ...] = field(default=())
    # onsets locked to the camera's frames (played on an OnsetGrid): every frame shows one state
    frame_locked: bool = False

    def __post_init__(self) -> None:
        if self.durations_us and (
            len(self.durations_us) != len(self.states)
            or min(self.durations_us) < self.state_duration_us
        ):
            raise ValueError("durations_us needs one duration per state, none below "
                             "state_duration_us")

    @property
    def n0(self) -> int:
        return len(self.states)

    def duration_of(self, slot: int) -> int:
        """How long play slot ``slot`` shows, µs."""
        return self.durations_us[slot] if self.durations_us else self.state_duration_us

    @property
    def total_us(self) -> int:
        """The sequence's length, µs."""
        return sum(self.duration_of(k) for k in range(self.n0))


@dataclass(frozen=True)
class FlashPlayback:
    """What was played: the schedule and the host-monotonic onset of each state (µs)."""

    schedule: FlashSchedule
    onsets_us: tuple[int, ...]
    end_us: int  # when the last state ended (the surface returned to idle)


@dataclass(frozen=True)
class OnsetGrid:
    """The host times at which a state may be commanded so that its light changes between two
    camera frames (frame-locked timing, pipeline/challenge.py): ``reference_us`` + k ×
    ``period_us`` for any whole k."""

    reference_us: int
    period_us: float

    def next_at_or_after(self, t_us: int) -> int:
        """The first grid time at or after ``t_us``."""
        k = math.ceil((t_us - self.reference_us) / self.period_us)
        return int(round(self.reference_us + k * self.period_us))


@runtime_checkable
class FlashDriver(Protocol):
    def start(self) -> None:
        """Open the flash surface (display window or serial panel). Idempotent."""

    def stop(self) -> None:
        """Return the surface to idle and release it. Idempotent."""

    def self_test(self) -> None:
        """Raise :class:`FlashError` if the surface does not respond."""

    def play(self, schedule: FlashSchedule, timeout_s: float,
             grid: OnsetGrid | None = None) -> FlashPlayback:
        """Play the schedule, blocking until it has ended; raise FlashError on timeout. With a
        ``grid`` (only given where :meth:`holds_timing`), the first state starts at a grid time
        and each later one at the first onset + the durations before it."""
        ...

    def supports_colour(self) -> bool: ...

    def holds_timing(self) -> bool:
        """True where each state starts at its commanded host time to within about a
        millisecond (a timer, not a display's vsync): onsets may then be locked to the camera's
        frames."""
        ...

    def idle_state(self) -> FlashState | None:
        """What the surface itself shows between sequences, where it decides that (a panel
        that goes dark, a window the daemon paints); None where something else fills the gap
        (the kiosk app's own screen behind a browser overlay). The flash-safety governor
        counts the changes into and out of each sequence against it (docs/SAFETY.md §2)."""
        ...
