"""The flash levels of a challenge: the one rule the daemon, the renderer and a model bundle share.

A challenge plays N0 flash levels (ATR-FAS §3.2, §5.3.3: N0 = 5 in the paper), brightest first
once sorted, in a random order; differential normalisation turns the N0 aligned frames into
N = 2(N0 − 2) differential frames. The daemon draws its challenge from these levels
(``pipeline/config.py``), the renderer lights its training sessions with them
(``sim/schedule.py``), and a model bundle records the ones it was trained on
(``inference/bundle.py``, docs/MODEL_BUNDLE.md) so the pipeline can refuse to feed it others.

``challenge_family`` names what kind of sequence the levels are played as:
``white_levels`` (white light at each level), ``colour_levels`` (each state in a colour drawn
from a palette, at the level's intensity) or ``hue_levels`` (each level in its own fixed hue of
``HUE_LADDER``: the brightest white, then warm, green and blue, the darkest black). Under
``hue_levels`` every check lights the face with each display primary in a known proportion, so
the differential frames carry each pixel's response per primary: skin and a skin-coloured paint
that look alike under white light answer narrow primaries differently (docs/DATASET.md,
"Spectral physics"). The play order and the timing stay random, as for white levels.
"""

from __future__ import annotations

from collections.abc import Sequence

N0_MIN = 3  # below 3 there is no middle frame to difference against (N = 2(N0 − 2) ≥ 2)
N0_MAX = 8  # the C++ core's bound (core_cpp/src/module.cpp); a test keeps the two equal
DEFAULT_LEVELS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)  # the darkest: ambient only
CHALLENGE_FAMILIES = ("white_levels", "colour_levels", "hue_levels")
# hue_levels: the colour (linear RGB drive) of each of the five default levels, brightest first.
# Relative luminance stays ordered (1, 0.47, 0.41, 0.13, 0) as the levels are, and no colour is a
# WCAG "saturated red" (red share 0.53 < 0.8); the four lit states span the three primaries.
HUE_LADDER: tuple[tuple[float, float, float], ...] = (
    (1.0, 1.0, 1.0), (1.0, 0.55, 0.35), (0.35, 1.0, 0.45), (0.35, 0.5, 1.0), (1.0, 1.0, 1.0))
DEFAULT_CHALLENGE_FAMILY = "white_levels"
# Two levels closer than this are the same level (levels travel through JSON and TOML).
LEVEL_TOLERANCE = 1e-6


def check_n0(n0: int) -> int:
    """``n0`` if it lies in N0_MIN…N0_MAX, else ValueError."""
    if not N0_MIN <= n0 <= N0_MAX:
        raise ValueError(f"N0 must be in {N0_MIN}..{N0_MAX} flash levels, got {n0}")
    return n0


def n_diff_of(n0: int) -> int:
    """Differential frames of N0 levels: N = 2(N0 − 2) (ATR-FAS §3.2)."""
    return 2 * (check_n0(n0) - 2)


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """Valid levels, sorted brightest first: N0 in range, each in [0, 1], all distinct."""
    values = tuple(float(v) for v in levels)
    check_n0(len(values))
    if any(not 0.0 <= v <= 1.0 for v in values):
        raise ValueError("every flash level must lie in [0, 1]")
    if len(set(values)) != len(values):
        raise ValueError("flash levels must be distinct (diffnorm sorts frames by level)")
    return tuple(sorted(values, reverse=True))


def check_family(family: str) -> str:
    if family not in CHALLENGE_FAMILIES:
        raise ValueError(f"challenge family {family!r} is not one of {list(CHALLENGE_FAMILIES)}")
    return family


def level_colours(family: str, levels: Sequence[float]) -> tuple[tuple[float, float, float], ...]:
    """The fixed colour of each level (brightest first) under ``family``; white for
    ``white_levels``. ``colour_levels`` draws its colours per check (no fixed colour: ValueError),
    ``hue_levels`` needs the five default levels."""
    check_family(family)
    if family == "white_levels":
        return tuple((1.0, 1.0, 1.0) for _ in levels)
    if family == "hue_levels" and same_levels(tuple(levels), DEFAULT_LEVELS):
        return HUE_LADDER
    raise ValueError(f"{family} has no fixed colour for the levels {list(levels)}"
                     + (f" (hue_levels needs {list(DEFAULT_LEVELS)})" if family == "hue_levels"
                        else ""))


def same_levels(a: Sequence[float], b: Sequence[float]) -> bool:
    if len(a) != len(b):
        return False
    return all(abs(x - y) <= LEVEL_TOLERANCE for x, y in zip(a, b, strict=True))
