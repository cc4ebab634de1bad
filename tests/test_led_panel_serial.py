"""The LED-panel driver against the panel firmware's own C core, through a pseudo-terminal.

The simulator (firmware_ctrl/firmware/targets/host_sim) is the firmware's protocol core built with
the system C compiler; the driver talks to it through pyserial on the pty, as it would to
/dev/ttyACM0. Its reports of when the emitters really switched (host clock) are the ground truth
for the clock mapping and the safety checks. A proxy line between them corrupts, drops,
duplicates and delays bytes and frames.
"""

from __future__ import annotations

import shutil
import statistics
import struct
import threading
import time
from pathlib import Path

import pytest
import serial

from flashfas_edge.clock import monotonic_us
from flashfas_edge.flash.base import FlashError, FlashSchedule, FlashState, OnsetGrid
from flashfas_edge.flash.led_protocol import (
    CMD_ARM,
    CMD_FIRE,
    CMD_HELLO,
    CMD_LOAD,
    CMD_REPORT,
    CMD_STATUS,
    CMD_TIME,
    NACK,
    PROTOCOL_VERSION,
    REPLY,
    FrameReader,
    Status,
    encode_frame,
    load_body,
    parse_nack,
)
from flashfas_edge.flash.led_serial import LedSerialFlash, PanelRefused
from flashfas_edge.sim.led_panel import PanelSimulator, build_panel_simulator
from tests.led_panel_rig import (
    FaultyLine,
    delay_frame,
    drop_byte,
    duplicate_byte,
    duplicate_frame,
    flip_byte,
    luminance_edges,
    once,
)

if shutil.which("cc") is None or shutil.which("make") is None:
    pytest.skip("the panel simulator needs cc and make", allow_module_level=True)

LEVELS = (0.75, 0.0, 1.0, 0.25, 0.5)


def schedule(levels=LEVELS, duration_us: int = 40_000, rgb=(1.0, 1.0, 1.0)) -> FlashSchedule:
    return FlashSchedule(tuple(FlashState(rgb, level) for level in levels), duration_us, "ab" * 16)


@pytest.fixture(scope="module")
def binary() -> Path:
    return build_panel_simulator()


@pytest.fixture
def panel(binary, tmp_path):
    sim = PanelSimulator(tmp_path / "ttyPANEL", binary=binary, drift_ppm=250.0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def driver(panel):
    flash = LedSerialFlash(str(panel.port))
    flash.start()
    yield flash
    flash.stop()


@pytest.fixture
def line(panel, tmp_path):
    proxy = FaultyLine(panel.port, tmp_path / "ttyLINE")
    yield proxy
    proxy.close()


def truth_onsets(panel: PanelSimulator, since_us: int) -> list[int]:
    time.sleep(0.02)
    events = [e for e in panel.events if e.host_us >= since_us]
    while events and events[0].levels == (0, 0, 0):  # lights-off commands before the sequence
        events.pop(0)
    return [e.host_us for e in events]


def raw_request(port: serial.Serial, reader: FrameReader, command: int, seq: int,
                body: bytes = b"") -> tuple[int, bytes]:
    port.write(encode_frame(command, seq, body))
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        for frame in reader.feed(port.read(max(1, port.in_waiting))):
            if frame.seq == seq:
                return frame.frame_type, frame.body
    raise AssertionError(f"no answer to command {command}")


def test_the_panel_powers_up_dark(panel):
    time.sleep(0.05)
    assert panel.events and panel.events[0].levels == (0, 0, 0)


def test_handshake_reports_the_firmware_limits_and_round_trips_are_quick(driver):
    info = driver.info
    assert info is not None and info.protocol_version == PROTOCOL_VERSION
    assert (info.channels, info.pwm_bits, info.max_level) == (3, 8, 255)
    assert info.max_flash_edges == 6 and info.flash_window_us == 1_000_000
    assert driver.supports_colour()
    round_trips = []
    with driver._lock:
        for _ in range(200):
            t0 = monotonic_us()
            driver._request(CMD_STATUS)
            round_trips.append(monotonic_us() - t0)
    median = statistics.median(round_trips)
    print(f"pty round trip (STATUS): median {median:.0f} µs, "
          f"p95 {sorted(round_trips)[189]:.0f} µs over 200")
    assert median < 20_000


def test_reported_onsets_match_when_the_emitters_switched(driver, panel):
    time.sleep(1.2)  # idle clock samples over > 0.5 s: the drift is estimated
    errors = []
    for _ in range(3):
        playback = driver.play(schedule(), timeout_s=3.0)
        truth = truth_onsets(panel, playback.onsets_us[0] - 5_000)
        assert len(truth) >= 6  # five steps and lights off
        errors += [got - real for got, real in zip(playback.onsets_us, truth[:5], strict=True)]
        errors.append(playback.end_us - truth[5])
        time.sleep(0.7)
    worst = max(abs(e) for e in errors)
    print(f"onset mapping error over {len(errors)} edges: median {statistics.median(errors):.0f}"
          f" µs, worst {worst} µs; drift estimated {driver.clock.drift_ppm:.0f} ppm (true 250)")
    # a scheduling hiccup of the loaded host shows up as a few hundred µs (536 µs p95 measured,
    # docs/LED_PANEL.md); a broken mapping is off by milliseconds — the states last ≥ 64 ms and
    # the timing steps 25 ms, so 1 ms is far inside what verification can tell apart
    assert worst < 1_000
    assert abs(driver.clock.drift_ppm - 250) < 50


def test_a_grid_start_puts_every_onset_on_the_camera_frame_grid(driver, panel):
    """Frame-locked timing (pipeline/challenge.py): FIRE names a grid time, and every state
    lasts whole frame periods, so every later onset lands on the grid. The firmware times each
    step from its real onset (firmware_ctrl/PROTOCOL.md §4: a state is never shortened), so on
    an MCU's timer the onsets stay within microseconds of the grid; the panel simulator is the
    firmware's host build, where one late wake of the loaded host (a millisecond or so) is
    carried into every later onset. So the test holds the first onset to the grid and each
    state's length to whole frame periods, each within one late wake, instead of summing the
    wakes over five states."""
    time.sleep(1.2)  # idle clock samples: the drift is estimated
    period = 1e6 / 30
    grid = OnsetGrid(reference_us=monotonic_us() + 12_345, period_us=period)
    durations = (66_666, 33_333, 99_999, 33_333, 33_333)
    locked = FlashSchedule(tuple(FlashState((1.0, 1.0, 1.0), level) for level in LEVELS),
                           33_333, "ab" * 16, durations_us=durations, frame_locked=True)
    playback = driver.play(locked, timeout_s=3.0, grid=grid)
    truth = truth_onsets(panel, playback.onsets_us[0] - 5_000)[:5]
    first_off_grid = ((truth[0] - grid.reference_us + period / 2) % period) - period / 2
    lengths = [b - a for a, b in zip(truth, truth[1:], strict=False)]
    off_whole_periods = [n - round(n / period) * period for n in lengths]
    print(f"first onset off the grid {first_off_grid:.0f} µs; state lengths off whole frame "
          f"periods {[round(v) for v in off_whole_periods]} µs")
    # a state that missed the grid by a frame would be 33 ms off; a late wake is ~1 ms
    assert abs(first_off_grid) < 2_000
    assert [round(n / period) for n in lengths] == [round(d / period) for d in durations[:4]]
    assert max(abs(v) for v in off_whole_periods) < 2_000


def test_the_levels_the_panel_switched_are_the_schedules(driver, panel):
    since = monotonic_us()
    driver.play(schedule(rgb=(1.0, 0.5, 0.25)), timeout_s=3.0)
    time.sleep(0.02)
    switched = [e.levels for e in panel.events if e.host_us >= since]
    assert switched == [(191, 96, 48), (0, 0, 0), (255, 128, 64), (64, 32, 16), (128, 64, 32),
                        (0, 0, 0)]


@pytest.mark.parametrize(("direction", "kind", "fault"), [
    ("to_panel", CMD_LOAD, flip_byte),
    ("to_host", CMD_LOAD | REPLY, flip_byte),
    ("to_panel", CMD_FIRE, drop_byte),
    ("to_host", CMD_ARM | REPLY, drop_byte),
    ("to_panel", CMD_ARM, duplicate_byte),
    ("to_host", CMD_FIRE | REPLY, duplicate_byte),
])
def test_a_damaged_frame_is_dropped_and_the_command_retransmitted(panel, line, direction, kind,
                                                                  fault):
    line.rules.append(once(direction, kind, fault))
    flash = LedSerialFlash(str(line.port), reply_timeout_s=0.05)
    flash.start()
    try:
        since = monotonic_us()
        playback = flash.play(schedule(), timeout_s=3.0)
        assert line.applied == 1
        truth = truth_onsets(panel, since)
        assert len(truth) == 6  # played once: a retransmitted FIRE did not fire twice
        assert all(abs(a - b) < 2_000 for a, b in zip(playback.onsets_us, truth, strict=False))
        status = flash.status()
        if direction == "to_panel":
            assert status.frames_bad >= 1  # the firmware saw the damage and dropped it
        else:
            assert flash._reader.bad_frames >= 1
    finally:
        flash.stop()


def test_duplicated_and_late_acks_are_dropped_not_taken_for_later_answers(panel, line):
    line.rules += [once("to_host", CMD_LOAD | REPLY, duplicate_frame),
                   once("to_host", CMD_ARM | REPLY, delay_frame(0.12))]
    flash = LedSerialFlash(str(line.port), reply_timeout_s=0.05)
    flash.start()
    try:
        since = monotonic_us()
        flash.play(schedule(), timeout_s=3.0)
        assert len(truth_onsets(panel, since)) == 6
        assert flash.stale_replies >= 2  # the duplicate LOAD ack and the late ARM ack
    finally:
        flash.stop()


@pytest.mark.parametrize(("levels", "duration_us", "reason"), [
    ((1.0,) * 13, 20_000, "more steps"),  # 13 steps > max_steps 12
    ((1.0, 1.0, 1.0, 1.0, 0.75), 40_000, "duty-cycle"),  # mean 95 % > 70 %
    (LEVELS, 3_000, "duration limits"),  # steps shorter than 5 ms
    (LEVELS * 2, 120_000, "duration limits"),  # 1.2 s > 1 s sequence
    ((1.0, 0.0) * 5, 20_000, "photosensitive"),  # 10 edges within 0.2 s
])
def test_a_sequence_beyond_the_safety_caps_is_refused_by_the_firmware(driver, panel, levels,
                                                                      duration_us, reason):
    since = monotonic_us()
    with pytest.raises(PanelRefused, match=reason):
        driver.play(schedule(levels, duration_us), timeout_s=3.0)
    time.sleep(0.05)
    assert all(e.levels == (0, 0, 0) for e in panel.events if e.host_us >= since)
    driver.play(schedule(), timeout_s=3.0)  # refused, not broken: the next one plays


def test_a_level_above_the_brightness_cap_is_refused_by_the_firmware(panel):
    with serial.Serial(str(panel.port), 115200, timeout=0.01) as port:
        reader = FrameReader()
        kind, body = raw_request(port, reader, CMD_LOAD, 1,
                                 load_body([(300, 0, 0)] * 2, [40_000] * 2))
        assert kind == NACK and parse_nack(body)[1] == 3


def test_the_firmware_caps_the_flash_rate_across_sequences(driver, panel):
    since = monotonic_us()
    started = time.monotonic()
    for _ in range(3):
        driver.play(schedule(), timeout_s=3.0)
    elapsed = time.monotonic() - started
    time.sleep(0.05)
    edges = luminance_edges([e for e in panel.events if e.host_us >= since])
    assert len(edges) >= 15
    worst = max(sum(1 for t in edges if e - 1_000_000 < t <= e) for e in edges)
    print(f"3 sequences back to back took {elapsed:.2f} s; at most {worst} edges in any 1 s")
    assert worst <= 6  # ≤ 3 flashes in any second (WCAG 2.3.1), enforced by the panel
    assert elapsed > 1.6  # the driver waited as the panel told it


def test_the_watchdog_disarms_the_panel_when_the_host_falls_silent(panel):
    with serial.Serial(str(panel.port), 115200, timeout=0.01) as port:
        reader = FrameReader()
        raw_request(port, reader, CMD_HELLO, 1, bytes([PROTOCOL_VERSION]))
        assert raw_request(port, reader, CMD_LOAD, 2,
                           load_body([(255, 255, 255), (0, 0, 0)], [40_000] * 2)
                           )[0] == CMD_LOAD | REPLY
        assert raw_request(port, reader, CMD_ARM, 3)[0] == CMD_ARM | REPLY
        time.sleep(2.3)  # watchdog 2 s
        _, now = raw_request(port, reader, CMD_TIME, 4, bytes(8))
        at = struct.unpack("<Q", now)[0] + 20_000
        kind, body = raw_request(port, reader, CMD_FIRE, 5, struct.pack("<Q", at))
        assert kind == NACK and parse_nack(body)[1] == 9  # no longer armed
        status = Status.parse(raw_request(port, reader, CMD_STATUS, 6)[1])
        assert not status.lights_on


def test_an_over_temperature_fault_turns_the_lights_off_mid_sequence(driver, panel):
    result: list[BaseException | None] = []

    def play() -> None:
        try:
            driver.play(schedule(duration_us=150_000), timeout_s=3.0)
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result.append(exc)

    worker = threading.Thread(target=play)
    worker.start()
    time.sleep(0.25)
    panel.heat()
    worker.join(5)
    assert isinstance(result[0], FlashError) and "over-temperature" in str(result[0])
    time.sleep(0.02)
    assert panel.events[-1].levels == (0, 0, 0)
    with pytest.raises(FlashError, match="over-temperature"):
        driver.self_test()
    panel.cool()
    time.sleep(0.02)
    driver.clear_fault()
    driver.self_test()
    time.sleep(1.0)
    driver.play(schedule(), timeout_s=3.0)


def test_unplugged_mid_sequence_fails_then_the_driver_recovers_on_the_next(driver, panel):
    result: list[BaseException | None] = []

    def play() -> None:
        try:
            driver.play(schedule(duration_us=120_000), timeout_s=3.0)
            result.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result.append(exc)

    worker = threading.Thread(target=play)
    worker.start()
    time.sleep(0.2)
    panel.unplug()
    worker.join(5)
    assert isinstance(result[0], FlashError)
    with pytest.raises(FlashError, match="cannot open"):
        driver.play(schedule(), timeout_s=3.0)  # still unplugged: a clear error, not a hang
    panel.plug()
    time.sleep(0.1)  # the panel powers up (dark) before the check
    since = monotonic_us()
    playback = driver.play(schedule(), timeout_s=3.0)  # reconnects and shakes hands again
    truth = truth_onsets(panel, since)
    assert all(abs(a - b) < 2_000 for a, b in zip(playback.onsets_us, truth, strict=False))
    driver.self_test()


def test_a_firmware_of_another_protocol_version_is_a_clear_error_at_start(tmp_path):
    other = build_panel_simulator(tmp_path / "v2", extra_cflags="-DPANEL_PROTOCOL_VERSION=2")
    sim = PanelSimulator(tmp_path / "ttyV2", binary=other)
    sim.start()
    try:
        flash = LedSerialFlash(str(sim.port))
        with pytest.raises(FlashError, match="speaks protocol version 2; this daemon speaks "
                                             "version 1"):
            flash.start()
    finally:
        sim.stop()


def test_a_silent_port_is_a_clear_error_at_start(tmp_path):
    import os
    import tty

    master, slave = os.openpty()  # a pty with nothing behind it: a board without firmware
    tty.setraw(slave)
    try:
        flash = LedSerialFlash(os.ttyname(slave), reply_timeout_s=0.05)
        with pytest.raises(FlashError, match="did not answer"):
            flash.start()
    finally:
        os.close(master)
        os.close(slave)


def test_report_of_an_idle_panel_has_no_onsets(panel):
    with serial.Serial(str(panel.port), 115200, timeout=0.01) as port:
        kind, body = raw_request(port, FrameReader(), CMD_REPORT, 9)
        assert kind == CMD_REPORT | REPLY and body[0] == 0


def test_each_state_lasts_its_own_duration_on_the_panel(driver, panel):
    durations = (40_000, 55_000, 40_000, 70_000, 45_000)
    random_timing = FlashSchedule(tuple(FlashState((1.0, 1.0, 1.0), v) for v in LEVELS), 40_000,
                                  "cd" * 16, durations_us=durations)
    since = monotonic_us()
    playback = driver.play(random_timing, timeout_s=3.0)
    truth = truth_onsets(panel, since)
    lasted = [b - a for a, b in zip(truth, truth[1:], strict=False)]
    assert all(abs(got - want) < 2_000 for got, want in zip(lasted, durations, strict=True))
    assert abs((playback.end_us - playback.onsets_us[0]) - sum(durations)) < 2_000
