"""Step 1, the challenge: a fresh random play order of the N0 flash levels (and colours) + nonce.

The order is unpredictable (``secrets``), so a recording of an earlier check, or a stream injected
in place of the camera, reflects the wrong sequence; verification (``reflection_check.py``) then
rejects it. Differential normalisation does not care about the play order: ``order`` tells it
which played state is the brightest, the next, ..., the darkest (ATR-FAS §3.2).
"""

from __future__ import annotations

import math
import secrets

from flashfas_edge.capture.base import CameraInfo
from flashfas_edge.flash.base import FlashSchedule, FlashState
from flashfas_edge.pipeline.config import ChallengeConfig

WHITE = (1.0, 1.0, 1.0)


def _shuffled(n: int) -> list[int]:
    """A uniformly random permutation of range(n) from the OS CSPRNG (Fisher–Yates)."""
    items = list(range(n))
    for i in range(n - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        items[i], items[j] = items[j], items[i]
    return items


def challenge_family(config: ChallengeConfig, supports_colour: bool) -> str:
    """What kind of sequence ``draw_challenge`` plays (``flashfas_edge.flash_levels``)."""
    return "colour_levels" if config.colour_palette and supports_colour else "white_levels"


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


def draw_challenge(
    config: ChallengeConfig, supports_colour: bool, camera: CameraInfo | None = None
) -> FlashSchedule:
    """Draw one challenge. Colours are drawn per state only when the surface can show them."""
    levels = config.levels  # sorted brightest first by the config validator
    play_order = _shuffled(len(levels))  # play slot k shows level play_order[k]
    palette = config.colour_palette if supports_colour else ()
    states = []
    for level_index in play_order:
        r, g, b = palette[secrets.randbelow(len(palette))] if palette else WHITE
        states.append(FlashState(rgb=(float(r), float(g), float(b)), intensity=levels[level_index]))
    # order[r] = play slot that shows the r-th brightest level.
    order = tuple(play_order.index(r) for r in range(len(levels)))
    return FlashSchedule(
        states=tuple(states),
        state_duration_us=state_duration_for(config, camera),
        nonce=secrets.token_hex(16),
        order=order,
    )
