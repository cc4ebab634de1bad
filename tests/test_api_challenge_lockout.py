"""Repeated challenge mismatches lock checks out for a while (daemon/challenge_lockout.py), and
repeated lock-outs for longer and longer: a replayed recording passes about once in 1 200 tries
(docs/SAFETY.md §4), so replaying until it does must take weeks, not hours."""

from __future__ import annotations

import time

import httpx
import pytest
from api_harness import serve_in_thread
from sim_bundles import random_weight_bundle
from test_api_sim_kiosk import AUTH, sim_config

from flashfas_edge.daemon.challenge_lockout import ChallengeLockout
from flashfas_edge.kiosk.assembly import build_kiosk


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_mismatches_within_the_window_lock_checks_out_for_the_cooldown():
    clock = _Clock()
    lockout = ChallengeLockout(max_mismatches=3, window_s=60, cooldown_s=300, clock=clock)
    for _ in range(2):
        lockout.record_mismatch()
        clock.now += 10
    assert lockout.remaining_s() == 0
    lockout.record_mismatch()
    assert lockout.remaining_s() == pytest.approx(300)
    clock.now += 299
    assert lockout.remaining_s() == pytest.approx(1)
    clock.now += 2
    assert lockout.remaining_s() == 0


def test_mismatches_spread_wider_than_the_window_never_lock():
    clock = _Clock()
    lockout = ChallengeLockout(max_mismatches=3, window_s=60, cooldown_s=300, clock=clock)
    for _ in range(10):
        lockout.record_mismatch()
        clock.now += 31  # at most 2 inside any 60 s window
        assert lockout.remaining_s() == 0


def _lock_out(lockout: ChallengeLockout, clock: _Clock) -> float:
    """Five quick mismatches, then how long the lock-out lasts; the clock ends after it."""
    for _ in range(5):
        lockout.record_mismatch()
        clock.now += 1
    remaining = lockout.remaining_s()
    clock.now += remaining
    return remaining + 1  # the last mismatch's second


def test_each_lock_out_soon_after_the_last_lasts_twice_as_long_up_to_the_cap():
    clock = _Clock()
    lockout = ChallengeLockout(max_mismatches=5, window_s=300, cooldown_s=300, clock=clock,
                               escalation=2.0, max_cooldown_s=14_400,
                               escalation_window_s=86_400)
    lengths = [_lock_out(lockout, clock) for _ in range(8)]
    assert lengths == pytest.approx([300, 600, 1200, 2400, 4800, 9600, 14_400, 14_400], abs=2)
    # a replay attacker's tries in a day: five per lock-out
    clock.now, lockout = 1000.0, ChallengeLockout(5, 300, 300, clock, 2.0, 14_400, 86_400)
    tries = 0
    while clock.now < 1000.0 + 86_400:
        _lock_out(lockout, clock)
        tries += 5
    assert tries <= 60
    # a quiet day forgets: the next lock-out is the first again
    clock.now += 86_401
    assert lockout.next_cooldown_s() == 300
    assert _lock_out(lockout, clock) == pytest.approx(300, abs=2)


def test_a_fixed_cooldown_allows_a_try_a_minute():
    """The old behaviour (escalation 1): what the escalation is for."""
    clock = _Clock()
    lockout = ChallengeLockout(5, 300, 300, clock)
    tries = 0
    while clock.now < 1000.0 + 86_400:
        _lock_out(lockout, clock)
        tries += 5
    assert tries > 1_300


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        ChallengeLockout(max_mismatches=0, window_s=60, cooldown_s=1)
    with pytest.raises(ValueError):
        ChallengeLockout(5, 60, 300, escalation=0.5)
    with pytest.raises(ValueError):
        ChallengeLockout(5, 60, 300, max_cooldown_s=100)


def test_replaying_recordings_locks_the_daemon_out_and_even_a_live_face_waits(tmp_path):
    config = sim_config(tmp_path, random_weight_bundle(tmp_path / "bundle"),
                        lockout={"max_mismatches": 2, "window_s": 600, "cooldown_s": 600})
    kiosk = build_kiosk(config)
    service = kiosk.service
    running = serve_in_thread(service, config, kiosk.scene_controls)
    try:
        assert service.wait_ready(60), service.health()
        with httpx.Client(base_url=running.url, headers=AUTH, timeout=30) as http:
            http.put("/v1/sim/scene", json={"scene": "live", "ambient": "office", "seed": 5})
            # frames of the new scene in the ring: the check's presence gate looks at the newest
            # ones, and what it looked at is part of the recording replayed below
            time.sleep(0.3)
            first = http.post("/v1/liveness").json()
            assert first["reason"] != "challenge_mismatch", first
            http.put("/v1/sim/scene", json={"scene": "injected_replay"})
            mismatches = 0
            for _ in range(8):  # dropped frames (no_clean_frame) or a 1-in-120 repeat: again
                body = http.post("/v1/liveness").json()
                assert body["verdict"] != "live", body
                mismatches += body["reason"] in ("challenge_mismatch", "challenge_unclear")
                if body["reason"] == "challenge_lockout":
                    break
            assert mismatches == 2 and body["reason"] == "challenge_lockout", body
            http.put("/v1/sim/scene", json={"scene": "live"})
            played_before = service.recorder.last_playback()
            locked = http.post("/v1/liveness").json()
            assert (locked["verdict"], locked["reason"]) == ("retry", "challenge_lockout")
            assert 0 < locked["detail"]["retry_after_s"] <= 600
            assert service.recorder.last_playback() is played_before  # no flash while locked out
    finally:
        running.stop()
