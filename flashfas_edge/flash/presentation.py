"""What a display surface showed: each state's colour as the screen paints it, and the check of
the presentation times a display reports before they become a :class:`FlashPlayback`.

Both display drivers (the browser client, ``display_flash.py``; the daemon's own window,
``display_window.py``) paint 8-bit sRGB and report when each state reached the screen. A report
that is incomplete, out of order, too late or from the future is a :class:`FlashError` (fail
closed: the check answers ``retry``), never a playback the pipeline would trust.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flashfas_edge.flash.base import FlashError, FlashPlayback, FlashSchedule, FlashState

# Called as each state reaches the screen: the state (None: back to the idle screen) and when, in
# host monotonic µs. The simulated kiosk lights its scene from these (kiosk/flash_surface.py).
PresentedListener = Callable[[FlashState | None, int], None]


def srgb_bytes(state: FlashState) -> tuple[int, int, int]:
    """The 8-bit sRGB colour whose light is ``intensity × rgb`` (linear): the safety counter and
    the timing check assume linear light (docs/SAFETY.md §1), a display decodes sRGB (IEC
    61966-2-1)."""

    def encode(linear: float) -> int:
        c = min(max(linear, 0.0), 1.0)
        v = 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055
        return round(v * 255)

    r, g, b = (encode(c * state.intensity) for c in state.rgb)
    return r, g, b


@dataclass(frozen=True)
class PresentationLimits:
    # The first state may reach the screen this long after the requested start (a 60 Hz display
    # needs up to one frame to the next vsync, a compositor one or two more).
    max_start_delay_us: int = 100_000
    # A state shown this much longer than asked means the surface stalled (3 frames at 60 Hz).
    max_overrun_us: int = 50_000
    # A state this much shorter than asked is vsync jitter; shorter would break the clean frame.
    max_shortfall_us: int = 2_000
    # A reported time this far after the report arrived cannot be true (the clock map is off).
    max_future_us: int = 2_000


DEFAULT_LIMITS = PresentationLimits()


def playback_from_presentations(
    schedule: FlashSchedule, onsets_us: list[int], end_us: int | None, *, sent_us: int,
    requested_start_us: int, reported_by_us: int, surface: str,
    limits: PresentationLimits = DEFAULT_LIMITS,
) -> FlashPlayback:
    """The playback a display reported, or FlashError naming what is wrong with it.

    ``sent_us``: when the sequence was handed to the surface; ``requested_start_us``: when its
    first state was asked for; ``reported_by_us``: when the last report arrived."""
    if len(onsets_us) != schedule.n0 or end_us is None:
        raise FlashError(f"{surface}: reported {len(onsets_us)} of {schedule.n0} state onsets"
                         f"{'' if end_us is not None else ' and no return to idle'}")
    times = [*onsets_us, end_us]
    for k in range(1, len(times)):
        if times[k] <= times[k - 1]:
            raise FlashError(f"{surface}: presentation times are not increasing "
                             f"(slot {k} at {times[k]} µs after slot {k - 1} at {times[k - 1]} µs)")
    if times[0] < sent_us:
        raise FlashError(f"{surface}: first state reported {sent_us - times[0]} µs before the "
                         "sequence was sent (the clock mapping is wrong)")
    if times[-1] > reported_by_us + limits.max_future_us:
        raise FlashError(f"{surface}: the sequence's end was reported "
                         f"{times[-1] - reported_by_us} µs in the future (the clock mapping is "
                         "wrong)")
    if times[0] > requested_start_us + limits.max_start_delay_us:
        raise FlashError(f"{surface}: the first state reached the screen "
                         f"{(times[0] - requested_start_us) / 1000:.1f} ms late")
    for slot in range(schedule.n0):
        shown_us = times[slot + 1] - times[slot]
        asked_us = schedule.duration_of(slot)
        if shown_us < asked_us - limits.max_shortfall_us:
            raise FlashError(f"{surface}: state {slot} was shown {shown_us / 1000:.1f} ms, "
                             f"shorter than its {asked_us / 1000:.1f} ms")
        if shown_us > asked_us + limits.max_overrun_us:
            raise FlashError(f"{surface}: state {slot} was shown {shown_us / 1000:.1f} ms instead"
                             f" of {asked_us / 1000:.1f} ms (the display stalled)")
    return FlashPlayback(schedule, tuple(onsets_us), end_us)
