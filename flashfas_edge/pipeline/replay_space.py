"""How often a recording of one check passes the verification of another challenge: the replay
match probability per try, measured over the challenge space (docs/SAFETY.md §4).

A recording of an accepted check is replayed, in thought, against challenges drawn the way
``draw_challenge`` draws them: every safe play order × every timing pattern (one whole number of
timing steps per state but the last). The attacker is granted the best case: the replay's first
light reaches the camera exactly when the new challenge's does, at the same phase of the
camera's frames; the new challenge's onsets miss their schedule exactly as the recording's did
(so a recording replayed against its own challenge is the recording itself); and the recording
loops when a longer challenge outlasts it (as the simulated kiosk's ``injected_replay`` does).
Whether the replayed frames pass is what ``Pipeline.verify_frames`` says: the same sync, face
gates, flash evidence, order/colour check and timing fit as a live check. The model is assumed
to accept the recording (it did once): only verification stands between a replay and ``live``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from flashfas_edge.capture.base import Frame
from flashfas_edge.flash.base import FlashPlayback, FlashSchedule
from flashfas_edge.flash.safety import count_sequence
from flashfas_edge.flash_levels import level_colours
from flashfas_edge.pipeline.challenge import ChallengeTiming, build_schedule, idle_state_of
from flashfas_edge.pipeline.config import ChallengeConfig


@dataclass(frozen=True)
class ChallengeSpace:
    """Every challenge ``draw_challenge`` can play with ``timing``, each equally likely: the safe
    play orders (play slot k shows level ``order[k]``) × ``steps ** (n0 − 1)`` timing patterns
    (the last state's length is fixed)."""

    config: ChallengeConfig
    family: str
    timing: ChallengeTiming
    play_orders: tuple[tuple[int, ...], ...]
    level_rgb: tuple[tuple[float, float, float], ...]  # each level's fixed colour

    @property
    def timing_patterns(self) -> int:
        return self.timing.steps ** (self.config.n0 - 1)

    @property
    def size(self) -> int:
        return len(self.play_orders) * self.timing_patterns

    def pattern(self, index: int) -> tuple[int, ...]:
        """Timing pattern ``index``: the extra steps of each play slot (base-``steps`` digits;
        0 for the last)."""
        steps, digits = self.timing.steps, []
        for _ in range(self.config.n0 - 1):
            index, digit = divmod(index, steps)
            digits.append(digit)
        return (*digits, 0)

    @property
    def mean_sequence_us(self) -> float:
        return self.timing.mean_sequence_us(self.config.n0)

    def schedule(self, play_order: Sequence[int], pattern: Sequence[int],
                 timing: ChallengeTiming | None = None) -> FlashSchedule:
        """The challenge of this order and pattern (with ``timing``, else the space's: the
        camera's exposure sets the free base duration per check)."""
        return build_schedule(self.config, play_order, pattern,
                              self.timing if timing is None else timing,
                              [self.level_rgb[level] for level in play_order], nonce="0" * 32)

    def all_patterns(self) -> Iterator[tuple[int, ...]]:
        return (self.pattern(i) for i in range(self.timing_patterns))


def challenge_space(config: ChallengeConfig, family: str,
                    timing: ChallengeTiming) -> ChallengeSpace:
    """The space of ``config``'s challenges under ``family`` with ``timing``."""
    if family not in ("white_levels", "hue_levels"):
        raise ValueError(f"{family}: only fixed-colour families have an enumerable space")
    idle = idle_state_of(config)
    every = ChallengeSpace(config, family, timing,
                           tuple(itertools.permutations(range(config.n0))),
                           level_colours(family, config.levels))
    longest = (timing.steps - 1,) * (config.n0 - 1) + (0,)
    safe = []
    for order in every.play_orders:
        verdicts = {count_sequence(every.schedule(order, p), idle)
                    .within(config.max_flashes_per_challenge)
                    for p in ((0,) * config.n0, longest)}
        if len(verdicts) != 1:  # a sequence over 1 s: safety would depend on the timing
            raise ValueError("the safe orders depend on the timing pattern for this config")
        if verdicts.pop():
            safe.append(order)
    return dataclasses.replace(every, play_orders=tuple(safe))


def play_order_of(schedule: FlashSchedule) -> tuple[int, ...]:
    """Play slot k → level index (0 = brightest), from ``schedule.order`` (rank → slot)."""
    slots = [0] * schedule.n0
    for rank, slot in enumerate(schedule.order):
        slots[slot] = rank
    return tuple(slots)


def pattern_of(schedule: FlashSchedule, timing: ChallengeTiming) -> tuple[int, ...]:
    """The timing pattern a drawn schedule was played with."""
    step = max(timing.step_us, 1)
    return tuple((d - schedule.state_duration_us) // step for d in schedule.durations_us)


def replayed(recording: Sequence[Frame], recorded: FlashPlayback, challenge: FlashSchedule,
             latency_us: int) -> tuple[list[Frame], FlashPlayback]:
    """The frames a perfectly aligned replay of ``recording`` shows while ``challenge`` plays,
    and that challenge's playback: the first onsets coincide, each frame keeps its time from
    the first light, the new challenge keeps the recording's timing errors (its onsets are off
their schedule by as much as the recording's were), and the recording loops (frames one period
apart) when it runs out."""
    if not recording or not recorded.onsets_us:
        raise ValueError("an empty recording cannot be replayed")
    onset0 = int(recorded.onsets_us[0])
    # where the recording's light changed, against where its own schedule put the changes: the
    # new challenge is granted the same timing errors (the attacker's best case)
    nominal = np.concatenate([[0], np.cumsum(recorded.schedule.durations_us)]) + onset0
    actual = np.array([*recorded.onsets_us, recorded.end_us], np.int64)
    errors = actual - nominal
    wanted = np.concatenate([[0], np.cumsum(challenge.durations_us)]) + onset0 + errors
    onsets = tuple(int(v) for v in wanted[:-1])
    t = int(wanted[-1])
    playback = FlashPlayback(challenge, onsets, t)
    first = recording[0]
    t0 = onset0 + latency_us
    t1 = t + latency_us - first.exposure_us - first.readout_us + 1
    times = [f.t_start_us for f in recording]
    period = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 33_333
    frames, j = [], 0
    while True:
        t_start = times[j] if j < len(times) else int(round(times[-1] + (j - len(times) + 1)
                                                             * period))
        if t_start >= t1:
            break
        if t_start >= t0:
            source = recording[j % len(recording)]
            frames.append(Frame(j, t_start, source.exposure_us, source.readout_us, source.image,
                                dict(source.meta)))
        j += 1
    return frames, playback


def upper_bound_95(k: int, n: int) -> float:
    """One-sided 95 % Clopper–Pearson upper bound on p after k successes in n trials."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    if k == 0:
        return 1.0 - 0.05 ** (1.0 / n)

    def cdf(p: float) -> float:  # P(X ≤ k | p), in logs: n may be in the hundreds of thousands
        total = 0.0
        for i in range(k + 1):
            log_term = (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                        + i * math.log(p) + (n - i) * math.log1p(-p))
            total += math.exp(log_term)
        return total

    lo, hi = k / n, 1.0
    for _ in range(100):  # P(X ≤ k | p) = 0.05
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 0.05 else (lo, mid)
    return hi
