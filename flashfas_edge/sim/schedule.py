"""Flash schedules for synthetic sessions: the same shape of challenge the daemon draws
(``flashfas_edge.pipeline.challenge``): N0 levels, brightest first, the darkest black, played in a
random order (MoESA §3.1: first frame under white, last under black; ATR-FAS §3.2, §5.3.3: N0 = 5).

The default levels are the daemon's (``flashfas_edge.flash_levels``): the model is trained on
what the kiosk will play. A training set stays what it was because its ``dataset.json`` and the
bundle exported from it record the levels; the pipeline refuses a bundle whose levels differ from
its challenge (docs/ARCHITECTURE.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.flash.base import FlashSchedule, FlashState
from flashfas_edge.flash_levels import DEFAULT_LEVELS, check_family, check_n0, level_colours

DEFAULT_STATE_DURATION_US = 100_000
IDLE_STATE = FlashState(rgb=(1.0, 1.0, 1.0), intensity=0.3)  # kiosk UI between checks


@dataclass(frozen=True)
class ScheduleSpec:
    levels: tuple[float, ...] = DEFAULT_LEVELS
    palette: tuple[tuple[float, float, float], ...] = ()
    state_duration_us: int = DEFAULT_STATE_DURATION_US
    family: str = "white_levels"  # hue_levels: each level in its fixed hue (flash_levels.py)

    def __post_init__(self) -> None:
        check_n0(len(self.levels))
        check_family(self.family)
        if self.family == "hue_levels":
            level_colours(self.family, self.levels)  # ValueError for levels it cannot colour
        if tuple(sorted(self.levels, reverse=True)) != tuple(self.levels):
            raise ValueError("levels must be sorted brightest first")

    @property
    def n0(self) -> int:
        return len(self.levels)


def draw_schedule(rng: np.random.Generator, spec: ScheduleSpec) -> FlashSchedule:
    """A random play order of the levels (and palette colours), with ``order`` for diffnorm."""
    play = rng.permutation(spec.n0)  # play slot k shows level play[k]
    states = []
    fixed = level_colours(spec.family, spec.levels) if spec.family == "hue_levels" else None
    for level_index in play:
        if fixed is not None:
            rgb = fixed[int(level_index)]
        elif spec.palette:
            rgb = spec.palette[int(rng.integers(len(spec.palette)))]
        else:
            rgb = (1.0, 1.0, 1.0)
        states.append(FlashState(rgb=(float(rgb[0]), float(rgb[1]), float(rgb[2])),
                                 intensity=float(spec.levels[level_index])))
    order = tuple(int(np.nonzero(play == r)[0][0]) for r in range(spec.n0))
    nonce = rng.bytes(16).hex()
    return FlashSchedule(tuple(states), spec.state_duration_us, nonce, order)
