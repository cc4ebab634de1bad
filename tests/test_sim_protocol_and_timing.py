"""Split protocols keep acquisition conditions apart (ATR-FAS §4.2); per-row light weights and
exposure locking behave like the camera they model."""

from __future__ import annotations

import numpy as np
import pytest

from flashfas_edge.sim.device import PROFILES
from flashfas_edge.sim.protocol import draw_request, split_rule, split_sizes
from flashfas_edge.sim.replay_attack import ReplayAttack
from flashfas_edge.sim.sensor import settle_exposure
from flashfas_edge.sim.timing import light_weights, row_state_weights


def _requests(protocol: str, split: str, n: int = 200):
    return [draw_request(0, i, split, protocol, 64, 48) for i in range(n)]


def test_atr_splits_differ_in_scenario_identity_and_device():
    reqs = {s: _requests("atr", s) for s in ("train", "dev", "test")}
    scen = {s: {r.scenario for r in v} for s, v in reqs.items()}
    dev = {s: {r.profile.name for r in v} for s, v in reqs.items()}
    ids = {s: {r.identity_seed for r in v} for s, v in reqs.items()}
    assert scen["train"].isdisjoint(scen["dev"]) and scen["train"].isdisjoint(scen["test"])
    assert "sunlight" in scen["test"]
    for a, b in (("train", "dev"), ("train", "test"), ("dev", "test")):
        assert dev[a].isdisjoint(dev[b])
        assert ids[a].isdisjoint(ids[b])
    # all four classes, roughly 3 : 1 : 1 : 1
    kinds = [r.attack_type for r in reqs["train"]]
    assert 0.4 < kinds.count("live") / len(kinds) < 0.6
    assert all(kinds.count(k) > 15 for k in ("print", "replay", "mask"))


def test_random_protocol_shares_conditions_but_not_people():
    train, test = _requests("random", "train"), _requests("random", "test")
    assert {r.scenario for r in train} == {r.scenario for r in test}
    assert {r.identity_seed for r in train}.isdisjoint({r.identity_seed for r in test})


def test_split_sizes_and_bad_names():
    assert split_sizes(200) == {"train": 140, "dev": 30, "test": 30}
    assert sum(split_sizes(7).values()) == 7
    with pytest.raises(ValueError):
        split_rule("atr", "validation")
    with pytest.raises(ValueError):
        split_rule("nope", "train")


def test_light_weights_sum_to_one_and_follow_the_schedule():
    onsets = np.array([1000.0, 2000.0, 3000.0])
    t = np.array([500.0, 1500.0, 2500.0, 3500.0, 5000.0])
    w = light_weights(t, onsets, 1000, rise_us=1)
    assert np.allclose(w.sum(axis=-1), 1.0)
    assert np.argmax(w, axis=-1).tolist() == [3, 0, 1, 2, 3]  # idle, s0, s1, s2, idle
    # during a 200 µs rise the display is half way at its middle
    w_rise = light_weights(np.array([2100.0]), onsets, 1000, rise_us=200)
    assert w_rise[0, 0] == pytest.approx(0.5) and w_rise[0, 1] == pytest.approx(0.5)


def test_rolling_shutter_rows_straddle_a_transition_in_order():
    onsets = np.array([0.0, 30_000.0])
    w = row_state_weights(25_000.0, 100, 2000, 10_000, onsets, 30_000, 1)
    assert w[0, 0] == pytest.approx(1.0)  # first rows still in state 0
    assert w[-1, 1] == pytest.approx(1.0)  # last rows already in state 1
    assert np.all(np.diff(w[:, 1]) >= -1e-12)  # monotone down the frame


def test_exposure_shortens_in_bright_light_and_gain_rises_in_the_dark():
    p = PROFILES[0]
    bright = settle_exposure(p, face_radiance=200.0)
    dim = settle_exposure(p, face_radiance=0.05)
    assert bright.analog_gain == 1.0 and bright.exposure_us < p.exposure_us
    assert dim.exposure_us == p.exposure_us and dim.analog_gain == p.max_gain
    # locked exposure puts the metered face at the same level whenever the range allows
    mid1, mid2 = settle_exposure(p, 2.0), settle_exposure(p, 8.0)
    assert mid1.scale * 2.0 == pytest.approx(mid2.scale * 8.0, rel=0.02)


def test_pwm_flicker_is_integrated_not_sampled():
    rng = np.random.default_rng(0)
    from flashfas_edge.sim.head import HeadIdentity
    from flashfas_edge.sim.photo import render_photo

    photo = render_photo(rng, HeadIdentity.draw(rng), 60, 75)
    r = ReplayAttack.draw(rng, photo, np.array([0.0, 0.0, 0.5]), 0, 0, 0)
    r.pwm_hz, r.pwm_depth = 500.0, 0.4
    # an exposure of whole PWM periods sees the mean output wherever it starts
    t0 = rng.uniform(0, 1e6, 50)
    assert np.allclose(r.emission_factor(t0, 4 * 2000.0), 1.0, atol=1e-9)
    short = r.emission_factor(t0, 100.0)
    assert short.min() < 0.7 and short.max() > 1.3  # a short exposure catches on / off phases
