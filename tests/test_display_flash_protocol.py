"""The browser display flash's promises, over the real loopback server and a real WebSocket: the
key is required, the client's clock is mapped onto the host's, and every way a client can fail —
absent, gone mid-sequence, silent, late, stalled, wrong colour, non-monotonic times, refusing —
is a FlashError naming it (so the check answers retry), never a playback."""

from __future__ import annotations

import time

import httpx
import pytest
from display_flash_rig import ScriptedClient, schedule_of, serve_display, socket_url
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from flashfas_edge.clock import monotonic_us
from flashfas_edge.flash.base import FlashError, FlashState
from flashfas_edge.flash.display_flash import client_script
from flashfas_edge.flash.presentation import playback_from_presentations, srgb_bytes

COLOURS = [(1.0, 1.0, 1.0), (0.25, 0.25, 0.25), (1.0, 0.5, 0.0), (0.0, 0.0, 0.0)]


@pytest.fixture
def daemon(tmp_path):
    running = serve_display(tmp_path)
    yield running
    running.stop()


def _wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _connected(daemon, **client_options) -> ScriptedClient:
    client = ScriptedClient(daemon.server.url, **client_options).start()
    assert client.welcomed.wait(5)
    daemon.flash.self_test()  # maps its clock (a burst of pings)
    return client


def test_no_client_connected_fails_the_self_test_saying_so(daemon):
    with pytest.raises(FlashError, match="no browser flash client is connected"):
        daemon.flash.self_test()
    with pytest.raises(FlashError, match="no browser flash client is connected"):
        daemon.flash.play(schedule_of(COLOURS, 70_000), timeout_s=2)


def test_the_socket_needs_the_api_key_in_its_first_message(daemon):
    wrong = ScriptedClient(daemon.server.url, key="not-the-key-" + "0" * 20).start()
    assert wrong.wait_closed() == 4401
    with connect(socket_url(daemon.server.url), open_timeout=5) as silent:
        silent.send('{"type": "ping"}')  # not a hello
        with pytest.raises(ConnectionClosed) as closed:
            silent.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    with pytest.raises(FlashError, match="no browser flash client"):
        daemon.flash.self_test()


def test_the_client_script_is_served_without_a_key(daemon):
    answer = httpx.get(f"{daemon.server.url}/v1/flash/client.js", timeout=5)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/javascript")
    assert answer.text == client_script() and "FlashfasFlash" in answer.text


def test_onsets_are_mapped_from_the_client_clock_to_the_host_clock(daemon):
    client = _connected(daemon, clock_offset_ms=-7300.0)
    schedule = schedule_of(COLOURS, 70_000)
    before_us = monotonic_us()
    playback = daemon.flash.play(schedule, timeout_s=schedule.total_us / 1e6 + 1)
    reported_us = [round((r["t"] - client.offset_ms) * 1000) for r in client.reports]
    # the host time each report was really taken, against the mapped one
    errors = [m - r for m, r in zip([*playback.onsets_us, playback.end_us], reported_us,
                                    strict=True)]
    assert max(abs(e) for e in errors) < 2_000, errors
    assert playback.onsets_us[0] >= before_us
    assert all(b - a >= 70_000 - 2_000 for a, b in
               zip(playback.onsets_us, [*playback.onsets_us[1:], playback.end_us], strict=True))
    assert [r["rgb"] for r in client.reports[:-1]] == [list(srgb_bytes(s))
                                                       for s in schedule.states]
    client.close()


@pytest.mark.parametrize(("fault", "message"), [
    ("disconnect_mid", "disconnected"),
    ("non_monotonic", "not increasing"),
    ("silent", "reported 0 of 4 states before the deadline"),
    ("late_start", "late"),
    ("stall", "the display stalled"),
    ("wrong_colour", "painted"),
    ("refuse", "refused the sequence: kiosk app busy"),
])
def test_a_misbehaving_client_is_a_flash_error_not_a_playback(daemon, fault, message):
    client = _connected(daemon, fault=fault)
    schedule = schedule_of(COLOURS, 70_000)
    with pytest.raises(FlashError, match=message):
        daemon.flash.play(schedule, timeout_s=schedule.total_us / 1e6 + 0.5)
    client.close()


def test_a_newer_client_replaces_the_older_one(daemon):
    first = _connected(daemon)
    second = _connected(daemon)
    assert first.wait_closed() == 4000
    schedule = schedule_of(COLOURS, 70_000)
    assert len(daemon.flash.play(schedule, timeout_s=2).onsets_us) == 4
    assert second.reports and not first.reports
    second.close()


def test_a_client_gone_after_the_self_test_fails_the_next_play(daemon):
    client = _connected(daemon)
    client.close()
    _wait_for(lambda: not daemon.flash._client.connected)
    with pytest.raises(FlashError, match="no browser flash client is connected"):
        daemon.flash.play(schedule_of(COLOURS, 70_000), timeout_s=2)


def test_reports_from_the_future_or_before_the_request_are_refused():
    schedule = schedule_of(COLOURS[:2], 50_000)
    ok = playback_from_presentations(schedule, [1_000_000, 1_050_000], 1_100_000,
                                     sent_us=950_000, requested_start_us=1_000_000,
                                     reported_by_us=1_100_500, surface="test")
    assert ok.onsets_us == (1_000_000, 1_050_000) and ok.end_us == 1_100_000
    with pytest.raises(FlashError, match="in the future"):
        playback_from_presentations(schedule, [1_000_000, 1_050_000], 1_100_000,
                                    sent_us=950_000, requested_start_us=1_000_000,
                                    reported_by_us=1_090_000, surface="test")
    with pytest.raises(FlashError, match="before the sequence was sent"):
        playback_from_presentations(schedule, [940_000, 1_050_000], 1_100_000,
                                    sent_us=950_000, requested_start_us=1_000_000,
                                    reported_by_us=1_100_500, surface="test")
    with pytest.raises(FlashError, match="shorter than"):
        playback_from_presentations(schedule, [1_000_000, 1_040_000], 1_100_000,
                                    sent_us=950_000, requested_start_us=1_000_000,
                                    reported_by_us=1_100_500, surface="test")
    with pytest.raises(FlashError, match="reported 1 of 2"):
        playback_from_presentations(schedule, [1_000_000], 1_100_000,
                                    sent_us=950_000, requested_start_us=1_000_000,
                                    reported_by_us=1_100_500, surface="test")


def test_states_are_painted_as_srgb_of_their_linear_light():
    assert srgb_bytes(FlashState((1.0, 1.0, 1.0), 1.0)) == (255, 255, 255)
    assert srgb_bytes(FlashState((1.0, 1.0, 1.0), 0.0)) == (0, 0, 0)
    assert srgb_bytes(FlashState((1.0, 1.0, 1.0), 0.5)) == (188, 188, 188)  # sRGB of 50 % light
    assert srgb_bytes(FlashState((1.0, 0.5, 0.0), 0.25)) == (137, 99, 0)
