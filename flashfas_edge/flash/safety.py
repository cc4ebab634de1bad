"""Photosensitive safety of the flash: WCAG 2.3.1, three flashes or below threshold (SAFETY.md).

The flash surface is a full-screen display or an LED panel a few tens of centimetres from the face:
it fills far more than the 25 % of the central 10° visual field (0.006 sr) below which WCAG lets
flashes pass, so only the count applies. A sequence is safe when **no one-second window holds more
than three general flashes and no more than three red flashes**, counting the transitions from the
idle screen into the sequence and back, and the sequences played before it.

- Relative luminance (WCAG, sRGB/ITU-R BT.709 primaries): L = 0.2126 R + 0.7152 G + 0.0722 B of
  *linear* light. A :class:`FlashState`'s ``intensity × rgb`` is linear light relative to the
  surface's full white (what the renderer and challenge verification assume), so L ∈ [0, 1].
- A **general transition** is a change of L by at least 0.1 (10 % of the maximum relative
  luminance) in one direction, with the darker end below 0.80; a **general flash** is a pair of
  opposing transitions. Monotone steps merge into one transition (a ramp is one change), and a
  reversal counts only once it has moved back by 0.1 (hysteresis), as WCAG's "pair of opposing
  changes" reads.
- A **red transition** is a change to or from a saturated red — R / (R + G + B) ≥ 0.8 — whose
  chromaticity moves by more than 0.2 in CIE 1976 u′v′ (WCAG 2.2 working definition); two form a
  red flash.
- Counting is conservative: a transition counts in every window it touches (from its first step
  to its last), and an odd transition counts as a whole flash (``ceil(transitions / 2)``).

Nothing here plays light; :class:`FlashSafetyGovernor` remembers what was played and says when the
next sequence may start.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from flashfas_edge.flash.base import FlashError, FlashPlayback, FlashSchedule, FlashState

# WCAG 2.3.1 / 2.2 "general flash and red flash thresholds" (docs/SAFETY.md §1).
WCAG_MAX_FLASHES_PER_S = 3
WINDOW_US = 1_000_000  # "any one-second period"
GENERAL_DELTA = 0.10  # a change of 10 % of the maximum relative luminance
DARKER_BELOW = 0.80  # ... where the darker state is below 0.80
RED_RATIO = 0.80  # saturated red: R / (R + G + B) ≥ 0.8
RED_DELTA_UV = 0.20  # ... and a chromaticity change of more than 0.2 in u′v′
# The idle screen between checks, when the site has not configured it: these candidate luminances
# (every 0.05, plus the sequence's own levels) stand for "any colour"; the worst one is assumed.
_IDLE_GRID = tuple(i / 20 for i in range(21))
_BLACK = 1e-6  # below this luminance a state has no chromaticity


class UnsafeFlashError(FlashError):
    """A sequence would exceed the flash limits; it is not played (fail closed)."""


@functools.lru_cache(maxsize=4096)
def relative_luminance(state: FlashState) -> float:
    """WCAG relative luminance of a state shown on the surface (linear light, full white = 1)."""
    r, g, b = (min(max(c * state.intensity, 0.0), 1.0) for c in state.rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _srgb_encode(c: float) -> float:
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


@functools.lru_cache(maxsize=4096)
def is_saturated_red(state: FlashState) -> bool:
    """R / (R + G + B) ≥ 0.8, on linear or on encoded values (either counts: conservative)."""
    if relative_luminance(state) < _BLACK:
        return False
    lin = [min(max(c * state.intensity, 0.0), 1.0) for c in state.rgb]
    enc = [_srgb_encode(c) for c in lin]
    return any(v[0] / max(sum(v), 1e-12) >= RED_RATIO for v in (lin, enc))


def chromaticity_uv(state: FlashState) -> tuple[float, float] | None:
    """CIE 1976 u′v′ of the state's light (sRGB primaries, D65); None for black."""
    r, g, b = (min(max(c * state.intensity, 0.0), 1.0) for c in state.rgb)
    x = 0.4124 * r + 0.3576 * g + 0.1805 * b
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = 0.0193 * r + 0.1192 * g + 0.9505 * b
    d = x + 15 * y + 3 * z
    if y < _BLACK or d <= 0:
        return None
    return 4 * x / d, 9 * y / d


def _red_transition(a: FlashState, b: FlashState) -> bool:
    if not (is_saturated_red(a) or is_saturated_red(b)):
        return False
    ua, ub = chromaticity_uv(a), chromaticity_uv(b)
    if ua is None or ub is None:  # to or from black: the colour appears or vanishes entirely
        return True
    return math.hypot(ua[0] - ub[0], ua[1] - ub[1]) > RED_DELTA_UV


@dataclass(frozen=True)
class Transition:
    """One counted change: from its first step to its last (µs on the flash timeline)."""

    t_first_us: int
    t_last_us: int
    kind: str  # "general" or "red"


@dataclass(frozen=True)
class Step:
    """The surface shows ``state`` from ``t_us`` until the next step."""

    t_us: int
    state: FlashState


def general_transitions(steps: Sequence[Step]) -> list[Transition]:
    """Qualifying luminance transitions of a step sequence (zig-zag with 0.1 hysteresis)."""
    if len(steps) < 2:
        return []
    lum = [relative_luminance(s.state) for s in steps]
    times = [s.t_us for s in steps]
    found: list[Transition] = []
    pivot = extreme = 0  # where the current transition starts / the furthest point it reached
    direction = 0  # +1 rising, -1 falling, 0 not yet known

    def close(start: int, end: int) -> None:
        lo, hi = sorted((lum[start], lum[end]))
        if hi - lo >= GENERAL_DELTA - 1e-9 and lo < DARKER_BELOW:
            # It ended at ``end`` and started at the last step taken from within 0.1 of the
            # pivot: a hold after a change under 0.1 (a sequence's last state, then the idle
            # screen a few per cent away for seconds) is not part of the change.
            first = max(j for j in range(start + 1, end + 1)
                        if abs(lum[j - 1] - lum[start]) < GENERAL_DELTA - 1e-9)
            found.append(Transition(times[first], times[end], "general"))

    low = high = 0  # before the first 0.1 move: the lowest and highest points so far
    held_since = times[0]  # when the luminance last changed
    for i in range(1, len(lum)):
        if lum[i] != lum[i - 1]:
            if times[i] - held_since >= WINDOW_US:
                # A level held for a whole window ends any change: what comes after it starts
                # from the held level (no window holds both sides of the hold).
                if direction != 0:
                    close(pivot, extreme)
                low = high = pivot = extreme = i - 1
                direction = 0
            held_since = times[i]
        if direction == 0:
            low = i if lum[i] < lum[low] else low
            high = i if lum[i] > lum[high] else high
            if lum[high] - lum[low] >= GENERAL_DELTA - 1e-9:
                direction = 1 if high > low else -1
                pivot, extreme = (low, high) if high > low else (high, low)
            continue
        if (lum[i] - lum[extreme]) * direction >= 0:
            extreme = i  # still moving the same way (or flat): one transition
        elif abs(lum[i] - lum[extreme]) >= GENERAL_DELTA - 1e-9:
            close(pivot, extreme)  # reversed by at least 0.1: the transition is complete
            pivot, extreme, direction = extreme, i, -direction
    if direction != 0:
        close(pivot, extreme)
    return found


def red_transitions(steps: Sequence[Step]) -> list[Transition]:
    return [
        Transition(b.t_us, b.t_us, "red")
        for a, b in zip(steps, steps[1:], strict=False)
        if _red_transition(a.state, b.state)
    ]


def max_flashes_in_window(transitions: Sequence[Transition], window_us: int = WINDOW_US) -> int:
    """Most flashes (ceil of transitions / 2) any window of ``window_us`` holds."""
    if not transitions:
        return 0
    best = 0
    # A window [w, w + window) touches a transition when t_first < w + window and t_last >= w.
    # The count only rises at window ends that just reach a transition's last step.
    for start in sorted({t.t_last_us for t in transitions}):
        n = sum(1 for t in transitions if t.t_last_us >= start and t.t_first_us < start + window_us)
        best = max(best, n)
    return math.ceil(best / 2)


@dataclass(frozen=True)
class FlashCount:
    general: int  # most general flashes in any one-second window
    red: int  # most red flashes in any one-second window
    idle_luminance: float | None  # the idle screen the count assumed (worst case when unknown)

    def within(self, max_flashes: int) -> bool:
        return self.general <= max_flashes and self.red <= max_flashes


def schedule_steps(schedule: FlashSchedule, t0_us: int = 0) -> list[Step]:
    """The schedule's states as steps from ``t0_us``, the idle screen not included."""
    steps = []
    t = t0_us
    for k, state in enumerate(schedule.states):
        steps.append(Step(t, state))
        t += schedule.duration_of(k)
    return steps


def _idle_candidates(idle: FlashState | None, schedule: FlashSchedule) -> list[FlashState]:
    if idle is not None:
        return [idle]
    grid = set(_IDLE_GRID) | {round(relative_luminance(s), 6) for s in schedule.states}
    candidates = [FlashState((1.0, 1.0, 1.0), v) for v in sorted(grid)]
    # a saturated red idle screen: the worst case for red transitions
    candidates.append(FlashState((1.0, 0.0, 0.0), 1.0))
    return candidates


def count_sequence(schedule: FlashSchedule, idle: FlashState | None = None) -> FlashCount:
    """Flashes of one sequence with the idle screen before and after it (``idle`` None: the
    worst idle screen)."""
    worst = FlashCount(0, 0, None)
    for candidate in _idle_candidates(idle, schedule):
        steps = [Step(-1, candidate), *schedule_steps(schedule, 0)]
        steps.append(Step(schedule.total_us, candidate))
        general = max_flashes_in_window(general_transitions(steps))
        red = max_flashes_in_window(red_transitions(steps))
        if (general, red) > (worst.general, worst.red) or worst.idle_luminance is None:
            worst = FlashCount(general, red, relative_luminance(candidate))
    return worst


def check_schedule(
    schedule: FlashSchedule, max_flashes: int, idle: FlashState | None = None
) -> FlashCount:
    """The schedule's count, or :class:`UnsafeFlashError` when it exceeds ``max_flashes``."""
    count = count_sequence(schedule, idle)
    if not count.within(min(max_flashes, WCAG_MAX_FLASHES_PER_S)):
        raise UnsafeFlashError(
            f"challenge {schedule.nonce[:8]} would show {count.general} general and {count.red} "
            f"red flashes in one second (idle luminance {count.idle_luminance}); the limit is "
            f"{max_flashes}"
        )
    return count


class FlashSafetyGovernor:
    """Counts flashes across consecutive sequences: says when the next one may start.

    Keeps the steps played in the last second (each sequence framed by the idle screen) and finds
    the earliest start at which the new sequence, with them, stays within ``max_flashes`` in every
    one-second window. A retry right after a check is delayed, never played over the limit.
    """

    def __init__(self, max_flashes: int = WCAG_MAX_FLASHES_PER_S, idle: FlashState | None = None):
        if not 1 <= max_flashes <= WCAG_MAX_FLASHES_PER_S:
            raise ValueError(f"max_flashes must be in 1..{WCAG_MAX_FLASHES_PER_S}")
        self.max_flashes = max_flashes
        self.idle = idle
        self._played: list[tuple[int, int, FlashSchedule]] = []  # (first onset, end, schedule)
        self._lock = threading.Lock()

    def _history_steps(self, idle: FlashState, now_us: int) -> list[Step]:
        steps: list[Step] = []
        for start, end, schedule in self._played:
            if end < now_us - 2 * WINDOW_US:
                continue
            steps.append(Step(start - 1, idle))
            steps.extend(schedule_steps(schedule, start))
            steps.append(Step(end, idle))
        return steps

    def _fits(self, schedule: FlashSchedule, start_us: int, now_us: int) -> bool:
        for idle in _idle_candidates(self.idle, schedule):
            steps = self._history_steps(idle, now_us)
            steps.append(Step(start_us - 1, idle))
            steps.extend(schedule_steps(schedule, start_us))
            steps.append(Step(start_us + schedule.total_us, idle))
            for transitions in (general_transitions(steps), red_transitions(steps)):
                if max_flashes_in_window(transitions) > self.max_flashes:
                    return False
        return True

    def earliest_start_us(self, schedule: FlashSchedule, now_us: int) -> int:
        """The first start ≥ now (in 10 ms steps) that keeps every window within the limit;
        :class:`UnsafeFlashError` if the sequence is unsafe even after a quiet second."""
        with self._lock:
            last_end = max((end for _, end, _ in self._played), default=None)
            quiet = now_us if last_end is None else max(now_us, last_end + WINDOW_US + 1)
            t = now_us
            while t < quiet:
                if self._fits(schedule, t, now_us):
                    return t
                t += 10_000
            if self._fits(schedule, quiet, now_us):
                return quiet
        count = count_sequence(schedule, self.idle)
        raise UnsafeFlashError(
            f"challenge {schedule.nonce[:8]} shows {count.general} general and {count.red} red "
            f"flashes in one second on its own (idle luminance {count.idle_luminance}); the "
            f"limit is {self.max_flashes}"
        )

    def record(self, playback: FlashPlayback) -> None:
        """Remember a played sequence (its real onsets and end)."""
        with self._lock:
            start = int(playback.onsets_us[0]) if playback.onsets_us else int(playback.end_us)
            self._played.append((start, int(playback.end_us), playback.schedule))
            horizon = int(playback.end_us) - 2 * WINDOW_US
            self._played = [p for p in self._played if p[1] >= horizon]
