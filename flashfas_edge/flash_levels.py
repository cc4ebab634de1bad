"""The flash levels of a challenge: the one rule the daemon, the renderer and a model bundle share.

A challenge plays N0 flash levels (ATR-FAS §3.2, §5.3.3: N0 = 5 in the paper), brightest first
once sorted, in a random order; differential normalisation turns the N0 aligned frames into
N = 2(N0 − 2) differential frames. The daemon draws its challenge from these levels
(``pipeline/config.py``), the renderer lights its training sessions with them
(``sim/schedule.py``), and a model bundle records the ones it was trained on
(``inference/bundle.py``, docs/MODEL_BUNDLE.md) so the pipeline can refuse to feed it others.

``challenge_family`` names what kind of sequence the levels are played as:
``white_levels`` (white light at each level) or ``colour_levels`` (each state in a colour drawn
from a palette, at the level's intensity).
"""

from __future__ import annotations

from collections.abc import Sequence

N0_MIN = 3  # below 3 there is no middle frame to difference against (N = 2(N0 − 2) ≥ 2)
N0_MAX = 8  # the C++ core's bound (core_cpp/src/module.cpp); a test keeps the two equal
DEFAULT_LEVELS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25, 0.0)  # the darkest: ambient only
CHALLENGE_FAMILIES = ("white_levels", "colour_levels")
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


def same_levels(a: Sequence[float], b: Sequence[float]) -> bool:
    if len(a) != len(b):
        return False
    return all(abs(x - y) <= LEVEL_TOLERANCE for x, y in zip(a, b, strict=True))
