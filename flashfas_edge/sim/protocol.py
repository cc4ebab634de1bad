"""Split protocols: which scenarios, identities and device profiles each split may draw from.

``atr`` follows ATR-FAS §4.2 (intra-type, changed acquisition conditions): train, dev and test
differ in ambient scenario, subject identity and device profile. ``random`` keeps identities
disjoint but lets every split see every scenario and device (an i.i.d. sanity protocol).
A sample's whole scene follows from (dataset seed, split, sample index) alone, so any worker count
gives the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flashfas_edge.sim.ambient import SCENARIOS
from flashfas_edge.sim.device import PROFILES, DeviceProfile
from flashfas_edge.sim.scene import ATTACK_TYPES, SceneRequest

PROTOCOLS = ("atr", "random")
SPLITS = ("train", "dev", "test")
# ATR-FAS collects ~52 % live, the rest print / replay / 3D in about equal parts (§4.1).
ATTACK_PROBS = (0.5, 1 / 6, 1 / 6, 1 / 6)
# identities per split (ATR-FAS has 320 subjects) and their disjoint id ranges
_IDENTITIES = {"train": (0, 400), "dev": (100_000, 80), "test": (200_000, 80)}
_ATR_SCENARIOS = {
    "train": ("dark_room", "office", "backlight", "cloudy", "street_light"),
    "dev": ("bedroom", "shadow"),
    "test": ("bedroom", "shadow", "sunlight"),
}
_ATR_DEVICES = {"train": (0, 1, 2, 3, 4), "dev": (5, 6), "test": (7, 8)}


@dataclass(frozen=True)
class SplitRule:
    scenarios: tuple[str, ...]
    devices: tuple[DeviceProfile, ...]
    identity_base: int
    identity_count: int


def split_rule(protocol: str, split: str) -> SplitRule:
    if protocol not in PROTOCOLS:
        raise ValueError(f"split protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    base, count = _IDENTITIES[split]
    if protocol == "atr":
        return SplitRule(_ATR_SCENARIOS[split], tuple(PROFILES[i] for i in _ATR_DEVICES[split]),
                         base, count)
    return SplitRule(SCENARIOS, PROFILES, base, count)


def split_sizes(n: int) -> dict[str, int]:
    """``--split all``: 70 / 15 / 15 % of n sessions (each split at least one when n ≥ 3)."""
    dev = max(1, round(0.15 * n)) if n >= 3 else 0
    test = max(1, round(0.15 * n)) if n >= 3 else 0
    return {"train": n - dev - test, "dev": dev, "test": test}


def draw_request(seed: int, index: int, split: str, protocol: str = "atr", width: int = 640,
                 height: int = 480) -> SceneRequest:
    rule = split_rule(protocol, split)
    split_id = SPLITS.index(split)
    rng = np.random.default_rng(np.random.SeedSequence([seed, split_id, index, 3]))
    attack = ATTACK_TYPES[int(rng.choice(len(ATTACK_TYPES), p=ATTACK_PROBS))]
    scenario = rule.scenarios[int(rng.integers(len(rule.scenarios)))]
    profile = rule.devices[int(rng.integers(len(rule.devices)))]
    identity = rule.identity_base + int(rng.integers(rule.identity_count))
    return SceneRequest(
        attack_type=attack, scenario=scenario, profile=profile,
        identity_seed=int(np.random.SeedSequence([seed, identity]).generate_state(1)[0]),
        scene_seed=int(np.random.SeedSequence([seed, split_id, index, 5]).generate_state(1)[0]),
        width=width, height=height,
    )
