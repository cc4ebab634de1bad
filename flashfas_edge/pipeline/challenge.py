"""Step 1, the challenge: a fresh random play order of the N0 flash levels (and colours), random
state durations, and a nonce.

Two kinds of timing (docs/SAFETY.md §3). Free timing, for any surface: each state lasts long
enough to hold one clean frame whatever the camera's phase, plus random timing steps. Frame-locked
timing, where the surface starts states at their commanded time and the camera leaves a gap
between frames: every onset reaches the camera in that gap, so each state needs only whole frame
periods and every frame shows one state (``frame_lock_phase_us``, ``onset_grid``).

The order and the durations are unpredictable (``secrets``), so a recording of an earlier check,
or a stream injected in place of the camera, reflects the wrong sequence or the wrong onsets;
verification (``reflection_check.py``, ``timing_check.py``) then rejects it. Differential
normalisation does not care about the play order or the timing: ``order`` tells it which played
state is the brightest, the next, ..., the darkest (ATR-FAS §3.2), so the model's input contract
(the bundle's ``challenge_family``) is the same whatever the timing.

Photosensitive safety (docs/SAFETY.md): only orders whose flash count with the idle screen stays
within ``max_flashes_per_challenge`` are drawn (uniformly among them, by rejection), and the drawn
schedule is checked once more before it leaves; an unsafe one is never returned.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashfas_edge.capture.base import CameraInfo
from flashfas_edge.flash.base import FlashDriver, FlashSchedule, FlashState, OnsetGrid
from flashfas_edge.flash.safety import UnsafeFlashError, check_schedule, count_sequence
from flashfas_edge.flash_levels import level_colours
from flashfas_edge.pipeline.config import ChallengeConfig

WHITE = (1.0, 1.0, 1.0)
# Rejection sampling draws until a safe order comes up; with the default levels 40 of the 120
# orders are safe against any idle screen, so 200 draws fail with probability (2/3)^200 ≈ 1e-35.
_MAX_DRAWS = 200


def _shuffled(n: int) -> list[int]:
    """A uniformly random permutation of range(n) from the OS CSPRNG (Fisher–Yates)."""
    items = list(range(n))
    for i in range(n - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def challenge_family(config: ChallengeConfig, supports_colour: bool,
                     bundle_family: str = "white_levels") -> str:
    """What kind of sequence ``draw_challenge`` plays (``flashfas_edge.flash_levels``): a
    configured palette's colours, else the hue ladder when the bundle was trained on it and the
    surface shows colour, else white levels (the pipeline then refuses a hue-levels bundle)."""
    if config.colour_palette and supports_colour:
        return "colour_levels"
    if bundle_family == "hue_levels" and supports_colour:
        return "hue_levels"
    return "white_levels"


def state_duration_for(config: ChallengeConfig, camera: CameraInfo | None) -> int:
    """The configured state duration, else the shortest that always holds one clean frame.

    A frame integrates light over exposure + readout (rolling shutter) and frames start every
    1/fps, at a phase the flash does not control: a state lasting one period + exposure +
    readout always contains one whole frame; ``settle_us`` covers the display's rise time and
    the latency jitter. Shorter sequences mean a faster check (docs/ARCHITECTURE.md §1 steps 2–4).
    """
    if config.state_duration_us is not None:
        return config.state_duration_us
    if camera is None or camera.fps <= 0:
        raise ValueError("a camera-derived state duration needs the camera's fps")
    period_us = 1e6 / camera.fps
    needed = period_us + camera.exposure_us + camera.readout_us + config.settle_us
    return int(math.ceil(needed / 1000.0) * 1000)  # whole milliseconds


@dataclass(frozen=True)
class ChallengeTiming:
    """How long the states last: ``base_us`` (the shortest, which holds one clean frame) +
    j × ``step_us`` for each state but the last, j uniform in 0..``steps`` − 1. ``locked``: the
    onsets are locked to the camera's frames and ``step_us`` is one frame period."""

    base_us: int
    step_us: int
    steps: int
    locked: bool = False

    def mean_sequence_us(self, n0: int) -> float:
        return n0 * self.base_us + (n0 - 1) * self.step_us * (self.steps - 1) / 2


def free_timing(config: ChallengeConfig, camera: CameraInfo | None) -> ChallengeTiming:
    """States of the camera-derived clean-frame duration + ``timing_steps`` of
    ``timing_step_us``: onsets at any phase of the camera's frames."""
    return ChallengeTiming(state_duration_for(config, camera), config.timing_step_us,
                           config.timing_steps)


def frame_lock_phase_us(config: ChallengeConfig, camera: CameraInfo | None,
                        rise_us: int) -> float | None:
    """Where a locked onset's light reaches the camera, in µs after a frame's first row starts:
    the middle of the gap between that frame's last row ending (exposure + readout) and the
    next frame's first row starting, less the display's rise. None where frame lock is off,
    state durations are configured, or the gap is narrower than rise + ``frame_lock_margin_us``
    (slow readout or long exposure: the timing stays free)."""
    if (not config.frame_lock or config.state_duration_us is not None or camera is None
            or camera.fps <= 0):
        return None
    period_us = 1e6 / camera.fps
    span_us = camera.exposure_us + camera.readout_us
    slack_us = period_us - span_us - rise_us
    if slack_us < config.frame_lock_margin_us:
        return None
    return span_us + slack_us / 2


def locked_timing(config: ChallengeConfig, camera: CameraInfo) -> ChallengeTiming:
    """Frame-locked states: 1 + j frame periods, j in 0..``frame_lock_steps`` − 1."""
    period_us = int(round(1e6 / camera.fps))
    return ChallengeTiming(period_us, period_us, config.frame_lock_steps, locked=True)


def challenge_timing(config: ChallengeConfig, camera: CameraInfo, rise_us: int,
                     holds_timing: bool) -> tuple[ChallengeTiming, float | None]:
    """How a check's states are timed with this camera, and where a locked onset's light
    reaches the camera after a frame starts (None: free timing). Locked only where the flash
    surface holds its commanded times (``holds_timing``) and the camera's frames leave room
    (docs/SAFETY.md §3)."""
    phase = frame_lock_phase_us(config, camera, rise_us) if holds_timing else None
    if phase is None:
        return free_timing(config, camera), None
    return locked_timing(config, camera), phase


def frame_grid_start_us(frame_starts_us: Sequence[int], period_us: float) -> int | None:
    """Where the camera's frame grid lies, from the start times of its recent frames: the newest
    start moved by the median of every frame's offset from the grid the newest one implies. One
    late or early timestamp (a USB camera stamped on arrival) does not move it; dropped frames
    leave no offset. None without frames."""
    if len(frame_starts_us) == 0:
        return None
    starts = np.asarray(frame_starts_us, np.float64)
    newest = float(starts.max())
    periods = np.round((newest - starts) / period_us)
    return int(round(newest + float(np.median(starts + periods * period_us - newest))))


def onset_grid(phase_us: float, camera: CameraInfo, frame_start_us: int,
               latency_us: int) -> OnsetGrid:
    """The host times to command locked onsets at: the light (``latency_us`` later) reaches the
    camera ``phase_us`` after a frame starts, frames starting at ``frame_start_us`` + k × the
    period."""
    return OnsetGrid(reference_us=int(round(frame_start_us + phase_us - latency_us)),
                     period_us=1e6 / camera.fps)


def idle_state_of(config: ChallengeConfig) -> FlashState | None:
    """The configured idle screen as a flash state; None: unknown (the worst one is assumed)."""
    return None if config.idle_rgb is None else FlashState(rgb=config.idle_rgb, intensity=1.0)


def idle_between_sequences(config: ChallengeConfig, flash: FlashDriver | None) -> FlashState | None:
    """What the face sees between two sequences, for counting flashes across checks: the
    surface's own idle where the surface decides it (a dark LED panel, the daemon's window),
    else the configured idle screen, else None (the worst one is assumed). Each challenge on
    its own is still drawn against the configured or worst idle screen (docs/SAFETY.md §2)."""
    own = None if flash is None else flash.idle_state()
    return own if own is not None else idle_state_of(config)


def build_schedule(config: ChallengeConfig, play_order: Sequence[int], extra_steps: Sequence[int],
                   timing: ChallengeTiming,
                   colours: Sequence[tuple[float, float, float]] | None = None,
                   nonce: str | None = None) -> FlashSchedule:
    """The schedule that shows level ``play_order[k]`` in play slot k, in ``colours[k]`` (white
    when None), for ``timing.base_us`` + ``extra_steps[k]`` timing steps. Checks nothing: a
    schedule only leaves :func:`draw_challenge` after the safety checker has passed it."""
    levels = config.levels  # sorted brightest first by the config validator
    rgbs = colours if colours is not None else [WHITE] * len(play_order)
    states = tuple(
        FlashState(rgb=(float(r), float(g), float(b)), intensity=levels[level_index])
        for level_index, (r, g, b) in zip(play_order, rgbs, strict=True)
    )
    # order[r] = play slot that shows the r-th brightest level.
    order = tuple(list(play_order).index(r) for r in range(len(levels)))
    return FlashSchedule(
        states=states,
        state_duration_us=timing.base_us,
        nonce=nonce if nonce is not None else secrets.token_hex(16),
        order=order,
        durations_us=tuple(timing.base_us + int(j) * timing.step_us for j in extra_steps),
        frame_locked=timing.locked,
    )


def draw_challenge(
    config: ChallengeConfig, supports_colour: bool, camera: CameraInfo | None = None,
    family: str | None = None, timing: ChallengeTiming | None = None,
) -> FlashSchedule:
    """Draw one safe challenge, or raise :class:`UnsafeFlashError` (fail closed).

    Colours are drawn per state only when the surface can show them; under ``hue_levels`` each
    level shows its fixed hue. Each state but the last lasts the clean-frame duration plus a
    random whole number of timing steps (so each onset after the first moves); the last lasts
    the clean-frame duration. ``timing``: the states' lengths (default: free timing from the
    configuration and the camera).
    """
    if timing is None:
        timing = free_timing(config, camera)
    palette = config.colour_palette if supports_colour else ()
    fixed = None
    if family == "hue_levels":
        if not supports_colour:
            raise UnsafeFlashError("hue_levels needs a flash surface that shows colour")
        fixed = level_colours(family, config.levels)
    idle = idle_state_of(config)
    n0 = len(config.levels)
    for _ in range(_MAX_DRAWS):
        play_order = _shuffled(n0)  # play slot k shows level play_order[k]
        if fixed is not None:
            colours = [fixed[level] for level in play_order]
        elif palette:
            colours = [palette[secrets.randbelow(len(palette))] for _ in play_order]
        else:
            colours = None
        # the onsets carry the timing: the last state's end meets the idle screen, whose colour
        # the camera cannot check, so its length would add time and no entropy
        steps = [secrets.randbelow(timing.steps) for _ in play_order[1:]] + [0]
        schedule = build_schedule(config, play_order, steps, timing, colours)
        if count_sequence(schedule, idle).within(config.max_flashes_per_challenge):
            # the same check as a gate that stands on its own, whatever drew the schedule
            check_schedule(schedule, config.max_flashes_per_challenge, idle)
            return schedule
    raise UnsafeFlashError(
        f"no challenge within {config.max_flashes_per_challenge} flashes per second in "
        f"{_MAX_DRAWS} draws (levels {list(config.levels)}, palette {list(palette)})"
    )
