"""Photosensitive safety (docs/SAFETY.md): the WCAG 2.3.1 flash counter on sequences whose flash
count is known, the governor across consecutive checks, and the promise that no challenge the
daemon draws exceeds the limits, on every kind of flash surface."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashfas_edge.flash.base import DARK, FlashPlayback, FlashSchedule, FlashState
from flashfas_edge.flash.safety import (
    FlashSafetyGovernor,
    Step,
    UnsafeFlashError,
    check_schedule,
    count_sequence,
    general_transitions,
    is_saturated_red,
    max_flashes_in_window,
    red_transitions,
    relative_luminance,
    schedule_steps,
)
from flashfas_edge.pipeline.challenge import draw_challenge, idle_between_sequences
from flashfas_edge.pipeline.config import ChallengeConfig

WHITE = (1.0, 1.0, 1.0)
RED = (1.0, 0.0, 0.0)


def white(level: float) -> FlashState:
    return FlashState(WHITE, level)


def steps_of(levels: list[float], every_us: int, rgb=WHITE) -> list[Step]:
    return [Step(i * every_us, FlashState(rgb, v)) for i, v in enumerate(levels)]


def general_flashes(levels: list[float], every_us: int = 50_000) -> int:
    return max_flashes_in_window(general_transitions(steps_of(levels, every_us)))


def schedule_of(levels, duration_us=64_000, rgb=WHITE) -> FlashSchedule:
    return FlashSchedule(tuple(FlashState(rgb, v) for v in levels), duration_us, "0" * 32)


def test_relative_luminance_is_wcag_of_linear_light():
    assert relative_luminance(white(1.0)) == pytest.approx(1.0)
    assert relative_luminance(white(0.25)) == pytest.approx(0.25)
    assert relative_luminance(FlashState((0.0, 1.0, 0.0), 1.0)) == pytest.approx(0.7152)
    assert relative_luminance(FlashState(RED, 0.5)) == pytest.approx(0.1063)


def test_a_steady_screen_never_flashes():
    assert general_flashes([0.5] * 20) == 0


def test_ten_hertz_black_white_is_ten_flashes_in_a_second():
    assert general_flashes([1.0, 0.0] * 10, every_us=50_000) == 10


def test_three_flashes_in_a_second_are_three_and_four_are_four():
    assert general_flashes([0.0, 1.0] * 3 + [0.0], every_us=100_000) == 3
    assert general_flashes([0.0, 1.0] * 4 + [0.0], every_us=100_000) == 4


def test_an_odd_transition_counts_as_a_whole_flash():
    assert general_flashes([0.0, 1.0, 0.0, 1.0]) == 2  # three transitions


def test_changes_below_ten_percent_are_not_transitions():
    assert general_flashes([0.5, 0.59] * 10) == 0


def test_changes_among_bright_states_are_not_flashes():
    # the darker state must be below 0.80
    assert general_flashes([0.85, 1.0] * 10) == 0
    assert general_flashes([0.75, 1.0] * 10) == 10


def test_a_ramp_is_one_transition():
    assert general_flashes([0.0, 0.25, 0.5, 0.75, 1.0]) == 1
    assert general_flashes([0.0, 0.25, 0.5, 0.75, 1.0, 0.5, 0.0]) == 1  # up, down: one pair


def test_a_small_reversal_does_not_split_a_transition():
    # 1.0 → 0.95 → 1.0 turns back by less than 0.1: still one rise and one fall
    assert general_flashes([0.0, 1.0, 0.95, 1.0, 0.0]) == 1


def test_flashes_spread_over_more_than_a_second_are_counted_per_window():
    # eight transitions 300 ms apart: any one-second window touches at most four
    assert general_flashes([0.0, 1.0] * 4 + [0.0], every_us=300_000) == 2


def test_a_change_starts_where_it_leaves_its_start_level_and_a_held_second_ends_it():
    def spans(levels_at):
        steps = [Step(t, white(v)) for t, v in levels_at]
        return [(t.t_first_us, t.t_last_us) for t in general_transitions(steps)]

    # down to 0.25, 0.3 (a 0.05 step) held for 0.6 s, then up to 0.75: the rise is the last step
    assert spans([(0, 1.0), (100, 0.25), (200, 0.3), (600_200, 0.75)]) == [
        (100, 100), (600_200, 600_200)]
    # 1.0 to 0.85 (not a flash: both above 0.8), held for a second, then down to 0.0: the fall
    # starts after the hold, not before it (no window holds both ends)
    assert spans([(0, 0.0), (100, 1.0), (200, 0.85), (1_000_200, 0.85), (1_000_300, 0.0)]) == [
        (100, 100), (1_000_300, 1_000_300)]
    # a rise held under a second is still one change with the rest of the rise
    assert spans([(0, 0.0), (100, 0.5), (900_100, 1.0), (900_200, 0.0)]) == [
        (100, 900_100), (900_200, 900_200)]


def test_saturated_red_is_recognised_and_a_red_tint_is_not():
    assert is_saturated_red(FlashState(RED, 0.6))
    assert not is_saturated_red(FlashState((1.0, 0.2, 0.2), 1.0))
    assert not is_saturated_red(white(1.0))


def test_red_flashes_count_even_at_equal_luminance():
    red, grey = FlashState(RED, 1.0), white(relative_luminance(FlashState(RED, 1.0)))
    steps = [Step(i * 100_000, s) for i, s in enumerate([red, grey] * 4 + [red])]
    assert max_flashes_in_window(general_transitions(steps)) == 0
    assert max_flashes_in_window(red_transitions(steps)) == 4
    with pytest.raises(UnsafeFlashError):
        check_schedule(FlashSchedule((red, grey) * 4, 100_000, "0" * 32), 3, idle=red)


def test_the_idle_screen_before_and_after_counts():
    # 1.0, 0.0 alone is one transition; from a mid-grey idle screen and back it is three
    seq = schedule_of([1.0, 0.0])
    assert count_sequence(seq, idle=white(0.0)).general == 1
    assert count_sequence(seq, idle=white(0.5)).general == 2
    assert count_sequence(seq).general == 2  # unknown idle: the worst one


def test_earlier_releases_drew_orders_over_the_per_challenge_limit():
    # the five default levels at 64 ms per state: 80 of the 120 orders show three flashes with
    # the worst idle screen; a retry right after one would make six in a second
    counts = [count_sequence(schedule_of(p)).general
              for p in itertools.permutations((1.0, 0.75, 0.5, 0.25, 0.0))]
    assert counts.count(3) == 80 and counts.count(2) == 40
    zigzag = schedule_of([1.0, 0.0, 0.75, 0.25, 0.5])
    assert count_sequence(zigzag, idle=white(0.3)).general == 3
    with pytest.raises(UnsafeFlashError):
        check_schedule(zigzag, 2)


def test_a_retry_right_after_a_check_is_delayed_until_the_second_has_room():
    governor = FlashSafetyGovernor(max_flashes=3)
    ramp = schedule_of([0.0, 0.5, 1.0, 0.75, 0.25])  # two flashes with the worst idle screen
    assert governor.earliest_start_us(ramp, 10_000_000) == 10_000_000  # nothing played yet
    start = 10_000_000
    onsets = tuple(start + k * 64_000 for k in range(5))
    governor.record(FlashPlayback(ramp, onsets, start + ramp.total_us))
    now = start + ramp.total_us + 1_000
    later = governor.earliest_start_us(ramp, now)
    assert later > now  # 2 + 2 flashes would fall in one second
    assert later <= start + ramp.total_us + 1_000_001


def test_a_surface_that_goes_dark_between_checks_needs_no_wait_for_a_one_flash_retry():
    # Against a dark idle this ramp is one flash (up from dark, down to dark): two back to back
    # are two. Against the worst idle screen each is two, and the retry has to wait.
    ramp = schedule_of([0.0, 0.5, 1.0, 0.75, 0.25])
    assert count_sequence(ramp, DARK).general == 1
    start = 10_000_000
    onsets = tuple(start + k * 64_000 for k in range(5))
    now = start + ramp.total_us + 1_000
    waits = {}
    for name, idle in (("dark", DARK), ("worst", None)):
        governor = FlashSafetyGovernor(max_flashes=3, idle=idle)
        governor.record(FlashPlayback(ramp, onsets, start + ramp.total_us))
        waits[name] = governor.earliest_start_us(ramp, now) - now
    assert waits == {"dark": 0, "worst": waits["worst"]} and waits["worst"] > 0


def _timeline(played: list[tuple[int, FlashSchedule]], idle: FlashState) -> list[Step]:
    steps = [Step(-1, idle)]
    for start, schedule in played:
        steps += [*schedule_steps(schedule, start), Step(start + schedule.total_us, idle)]
    return steps


@settings(max_examples=40, deadline=None)
@given(idle=st.sampled_from([DARK, white(0.3), white(1.0)])
       | st.tuples(*[st.floats(0.0, 1.0)] * 3).map(lambda rgb: FlashState(rgb, 1.0)),
       gaps_ms=st.lists(st.integers(0, 400), min_size=2, max_size=4),
       colour=st.booleans())
def test_checks_back_to_back_stay_within_three_flashes_against_the_idle_the_governor_knows(
    idle, gaps_ms, colour
):
    """What the governor lets through, counted as the face sees it (the surface's idle between
    the sequences), never holds more than three flashes in any second."""
    config = ChallengeConfig(state_duration_us=34_000, timing_steps=4)
    governor = FlashSafetyGovernor(max_flashes=3, idle=idle)
    played: list[tuple[int, FlashSchedule]] = []
    now = 5_000_000
    for gap_ms in gaps_ms:
        schedule = draw_challenge(config, supports_colour=colour)
        start = governor.earliest_start_us(schedule, now)
        onsets = tuple(step.t_us for step in schedule_steps(schedule, start))
        governor.record(FlashPlayback(schedule, onsets, start + schedule.total_us))
        played.append((start, schedule))
        now = start + schedule.total_us + gap_ms * 1000
    steps = _timeline(played, idle)
    assert max_flashes_in_window(general_transitions(steps)) <= 3
    assert max_flashes_in_window(red_transitions(steps)) <= 3


def test_each_surface_names_the_idle_it_shows_and_the_daemon_counts_against_it():
    from flashfas_edge.flash.display_flash import DisplayFlash
    from flashfas_edge.flash.display_window import WindowDisplayFlash
    from flashfas_edge.flash.led_serial import LedSerialFlash

    grey = (0.2, 0.2, 0.2)
    assert LedSerialFlash("/dev/null").idle_state() == DARK  # the panel is off between sequences
    assert WindowDisplayFlash().idle_state() == DARK  # the daemon's window paints black ...
    assert WindowDisplayFlash(idle_rgb=grey).idle_state() == FlashState(grey, 1.0)  # ... or this
    assert DisplayFlash().idle_state() is None  # the kiosk app's own screen: not known
    configured = ChallengeConfig(idle_rgb=grey)
    assert idle_between_sequences(configured, LedSerialFlash("/dev/null")) == DARK
    assert idle_between_sequences(configured, DisplayFlash()) == FlashState(grey, 1.0)
    assert idle_between_sequences(ChallengeConfig(), DisplayFlash()) is None  # the worst
    assert idle_between_sequences(ChallengeConfig(), None) is None


def test_the_governor_refuses_a_sequence_unsafe_on_its_own():
    with pytest.raises(UnsafeFlashError):
        FlashSafetyGovernor(max_flashes=3).earliest_start_us(
            schedule_of([0.0, 1.0] * 4, duration_us=50_000), 0
        )


def test_no_order_fits_a_one_flash_budget_so_none_is_played():
    with pytest.raises(UnsafeFlashError):
        draw_challenge(ChallengeConfig(state_duration_us=64_000, max_flashes_per_challenge=1),
                       supports_colour=False)


_PALETTES = st.lists(
    st.tuples(*[st.floats(0.05, 1.0)] * 3).filter(
        lambda rgb: not is_saturated_red(FlashState(rgb, 1.0))
    ),
    max_size=4,
).map(tuple)


@settings(max_examples=60, deadline=None)
@given(
    levels=st.sampled_from([(1.0, 0.75, 0.5, 0.25, 0.0), (1.0, 0.5, 0.0), (1.0, 0.6, 0.3, 0.0),
                            (0.9, 0.7, 0.5, 0.3, 0.1, 0.0)]),
    palette=_PALETTES,
    colour_surface=st.booleans(),
    idle=st.none() | st.tuples(*[st.floats(0.0, 1.0)] * 3),
    steps=st.integers(1, 4),
    max_flashes=st.integers(2, 3),
)
def test_no_drawn_challenge_exceeds_the_limits_on_any_surface(
    levels, palette, colour_surface, idle, steps, max_flashes
):
    config = ChallengeConfig(levels=levels, colour_palette=palette, state_duration_us=64_000,
                             timing_steps=steps, idle_rgb=idle,
                             max_flashes_per_challenge=max_flashes)
    for _ in range(3):
        schedule = draw_challenge(config, supports_colour=colour_surface)
        assert count_sequence(schedule, None if idle is None else FlashState(idle, 1.0)).within(
            max_flashes
        )


@settings(max_examples=40, deadline=None)
@given(idle=st.none() | st.tuples(*[st.floats(0.0, 1.0)] * 3), steps=st.integers(1, 4),
       max_flashes=st.integers(2, 3))
def test_no_drawn_hue_levels_challenge_exceeds_the_limits(idle, steps, max_flashes):
    config = ChallengeConfig(state_duration_us=64_000, timing_steps=steps, idle_rgb=idle,
                             max_flashes_per_challenge=max_flashes)
    for _ in range(3):
        schedule = draw_challenge(config, supports_colour=True, family="hue_levels")
        assert not any(is_saturated_red(s) for s in schedule.states)
        assert count_sequence(schedule, None if idle is None else FlashState(idle, 1.0)).within(
            max_flashes
        )
