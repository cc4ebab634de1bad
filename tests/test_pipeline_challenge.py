"""Step 1: every check draws a fresh, unpredictable flash order (and colours) with a nonce."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from pydantic import ValidationError

from flashfas_edge.capture.base import CameraInfo
from flashfas_edge.pipeline.challenge import WHITE, draw_challenge, state_duration_for
from flashfas_edge.pipeline.config import ChallengeConfig, PipelineConfig

PALETTE = ((1.0, 0.2, 0.2), (0.2, 1.0, 0.2), (0.2, 0.2, 1.0))
CAMERA = CameraInfo(width=640, height=480, fps=30.0, exposure_us=6_000, readout_us=16_000)


def test_challenge_plays_each_level_once_and_order_sorts_them_brightest_first():
    config = ChallengeConfig()
    schedule = draw_challenge(config, supports_colour=False, camera=CAMERA)
    levels = [s.intensity for s in schedule.states]
    assert sorted(levels, reverse=True) == list(config.levels)
    assert [levels[i] for i in schedule.order] == list(config.levels)
    assert schedule.state_duration_us == state_duration_for(config, CAMERA)
    assert all(s.rgb == WHITE for s in schedule.states)


def test_every_challenge_has_a_fresh_nonce_and_orders_and_timings_vary():
    config = ChallengeConfig()
    draws = [draw_challenge(config, supports_colour=False, camera=CAMERA) for _ in range(600)]
    assert len({d.nonce for d in draws}) == len(draws)
    assert all(len(d.nonce) == 32 for d in draws)
    orders = Counter(tuple(s.intensity for s in d.states) for d in draws)
    # 40 of the 120 orders of 5 levels are within the flash limit with any idle screen
    # (docs/SAFETY.md): 600 draws see all of them, uniformly (15 each on average).
    assert len(orders) == 40
    assert max(orders.values()) < 35
    # Each state but the last lasts the clean-frame duration plus 0, 1 or 2 timing steps,
    # uniformly; the last (it meets the idle screen) lasts the clean-frame duration.
    base = state_duration_for(config, CAMERA)
    extra = Counter((dur - base) // config.timing_step_us
                    for d in draws for dur in d.durations_us[:-1])
    assert set(extra) == {0, 1, 2}
    assert min(extra.values()) > 600 * 4 / 3 * 0.8
    assert {d.durations_us[-1] for d in draws} == {base}
    assert all(d.state_duration_us == base <= min(d.durations_us) for d in draws)


def test_colours_are_drawn_only_when_the_surface_shows_colour():
    config = ChallengeConfig(colour_palette=PALETTE)
    mono = draw_challenge(config, supports_colour=False, camera=CAMERA)
    assert {s.rgb for s in mono.states} == {WHITE}
    colours = Counter(
        s.rgb
        for _ in range(200)
        for s in draw_challenge(config, supports_colour=True, camera=CAMERA).states
    )
    assert set(colours) == set(PALETTE)


def test_config_rejects_bad_levels_and_palettes():
    with pytest.raises(ValidationError):
        ChallengeConfig(levels=(1.0, 0.5))
    with pytest.raises(ValidationError):
        ChallengeConfig(levels=(1.0, 0.5, 0.5, 0.0))
    with pytest.raises(ValidationError):
        ChallengeConfig(levels=(1.0, 0.5, 1.5))
    with pytest.raises(ValidationError):
        ChallengeConfig(colour_palette=((0.0, 0.0, 0.0),))
    with pytest.raises(ValidationError):
        PipelineConfig(gates={"min_challenge_corr": 0.1})
    with pytest.raises(ValidationError):
        PipelineConfig(unknown_field=1)


def test_config_sorts_levels_brightest_first():
    assert ChallengeConfig(levels=(0.0, 1.0, 0.5)).levels == (1.0, 0.5, 0.0)


def test_state_duration_always_holds_one_whole_frame_of_the_camera():
    config = ChallengeConfig()
    duration = state_duration_for(config, CAMERA)
    period = 1e6 / CAMERA.fps
    assert duration >= period + CAMERA.exposure_us + CAMERA.readout_us + config.settle_us
    assert duration < period + CAMERA.exposure_us + CAMERA.readout_us + config.settle_us + 1000
    # whatever the camera's phase, some frame integrates only inside the state
    for phase in range(0, int(period), 1000):
        starts = [phase + k * period for k in range(-2, 10)]
        clean = [
            t
            for t in starts
            if t >= config.settle_us / 2
            and t + CAMERA.exposure_us + CAMERA.readout_us <= duration - config.settle_us / 2
        ]
        assert clean, phase
    assert state_duration_for(ChallengeConfig(state_duration_us=150_000), CAMERA) == 150_000
    with pytest.raises(ValueError):
        state_duration_for(config, None)


def test_a_challenge_drawn_ahead_is_taken_once_and_only_for_its_own_timing():
    from flashfas_edge.flash.safety import UnsafeFlashError
    from flashfas_edge.pipeline.challenge import free_timing, locked_timing
    from flashfas_edge.pipeline.challenge_deck import ChallengeDeck

    config = ChallengeConfig()
    drawn = []

    def draw(timing):
        schedule = draw_challenge(config, supports_colour=False, timing=timing)
        drawn.append(schedule.nonce)
        return schedule

    def settled(deck):  # the background draw has returned
        deadline = time.monotonic() + 10
        while not deck._next[1].done() and time.monotonic() < deadline:
            time.sleep(0.005)

    deck = ChallengeDeck(draw)
    free = free_timing(config, CAMERA)
    try:
        deck.prepare(free)
        settled(deck)
        ahead = deck.take(free)
        assert ahead.nonce == drawn[0] and len(drawn) == 1  # the one drawn in the background
        again = deck.take(free)  # nothing prepared: drawn now, never the same one twice
        assert again.nonce == drawn[1] != ahead.nonce
        # drawn ahead for another timing: not played, a fresh one for this timing instead
        deck.prepare(free)
        locked = locked_timing(config, CAMERA)
        assert locked != free
        settled(deck)
        other = deck.take(locked)
        assert other.nonce == drawn[3] and other.frame_locked
        # a draw still waiting to start is not waited for
        deck.prepare(free, delay_s=5.0)
        assert deck.take(free).nonce == drawn[4]
    finally:
        deck.close()

    def unsafe(timing):
        raise UnsafeFlashError("no safe challenge")

    failing = ChallengeDeck(unsafe)
    try:
        failing.prepare(free)
        settled(failing)
        with pytest.raises(UnsafeFlashError):  # fails closed on the check's own thread
            failing.take(free)
    finally:
        failing.close()


def test_a_closed_deck_draws_nothing_ahead_and_still_draws_on_demand():
    from flashfas_edge.pipeline.challenge import free_timing
    from flashfas_edge.pipeline.challenge_deck import ChallengeDeck

    config = ChallengeConfig()
    deck = ChallengeDeck(lambda timing: draw_challenge(config, False, timing=timing))
    deck.close()
    timing = free_timing(config, CAMERA)
    deck.prepare(timing)  # a check ending while the pipeline stops: no error, nothing drawn
    assert len(deck.take(timing).nonce) == 32


def test_a_challenge_drawn_ahead_is_kept_when_the_check_before_played_none():
    """A check that ended at presence took no challenge: the one already drawn for the same
    timing is kept, not drawn again."""
    from flashfas_edge.pipeline.challenge import free_timing
    from flashfas_edge.pipeline.challenge_deck import ChallengeDeck

    config = ChallengeConfig()
    drawn = []

    def draw(timing):
        schedule = draw_challenge(config, False, timing=timing)
        drawn.append(schedule.nonce)
        return schedule

    deck = ChallengeDeck(draw)
    timing = free_timing(config, CAMERA)
    try:
        deck.prepare(timing)
        deck.prepare(timing)  # the presence retry's turn: nothing new
        deadline = time.monotonic() + 10
        while not deck._next[1].done() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert deck.take(timing).nonce == drawn[0] and len(drawn) == 1
    finally:
        deck.close()
