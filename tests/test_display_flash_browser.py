"""The browser display flash in real headless Chromium: the documented kiosk page connects, the
states are painted full-screen in order (pixels of the page's own frames, from the DevTools
screencast), the reported presentation times increase, and `serve` on the simulated kiosk with
the shipped example configuration set to `[kiosk.flash] kind = "display"` reports ready once the
page is up, answers checks live, and answers retry — never live — once the browser is gone."""

from __future__ import annotations

import base64
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from display_flash_rig import Chromium, chromium_binary, kiosk_page, schedule_of, serve_display

from flashfas_edge.flash.base import FlashError
from flashfas_edge.flash.presentation import PresentationLimits, srgb_bytes

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BUNDLE = REPO / "engines" / "edge-default"
EXAMPLE_CONFIG = REPO / "systemd" / "flashfas-edge.toml"
PAGE_BACKGROUND = (0x20, 0x30, 0x40)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _chromium_present():
    chromium_binary()


def _wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if condition():
                return
        except (FlashError, httpx.HTTPError):
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _self_tested(flash) -> bool:
    flash.self_test()
    return True


def test_the_page_paints_each_state_in_order_and_reports_increasing_times(tmp_path):
    # Wide lateness limits: a loaded machine's headless Chromium may drop frames, which the
    # default limits turn into FlashError (tested in test_display_flash_protocol.py); here the
    # question is what the page paints, and in which order.
    daemon = serve_display(tmp_path, limits=PresentationLimits(max_start_delay_us=300_000,
                                                               max_overrun_us=300_000))
    browser = Chromium(kiosk_page(tmp_path, daemon.server.url).as_uri(), tmp_path / "profile")
    try:
        _wait_until(lambda: _self_tested(daemon.flash), 60, "the page's flash client")
        colours = [(1.0, 1.0, 1.0), (1.0, 0.2, 0.0), (0.0, 0.6, 0.1), (0.1, 0.2, 1.0),
                   (0.0, 0.0, 0.0)]
        schedule = schedule_of(colours, 150_000)
        expected = [srgb_bytes(state) for state in schedule.states]
        browser.call("Page.startScreencast", format="png", everyNthFrame=1)
        result: dict = {}

        def play() -> None:
            try:
                result["playback"] = daemon.flash.play(schedule, timeout_s=3.0)
            except FlashError as exc:
                result["error"] = exc

        player = threading.Thread(target=play)
        player.start()
        seen: list[tuple[int, int, int]] = []
        for event in browser.events(timeout_s=1.5):
            if event.get("method") != "Page.screencastFrame":
                continue
            params = event["params"]
            browser.send("Page.screencastFrameAck", sessionId=params["sessionId"])
            image = cv2.imdecode(np.frombuffer(base64.b64decode(params["data"]), np.uint8),
                                 cv2.IMREAD_COLOR)
            h, w = image.shape[:2]
            corners = [image[2, 2], image[h - 3, w - 3], image[h // 2, w // 2]]
            if any((c != corners[0]).any() for c in corners):
                continue  # a frame not covered by one colour: not a flash state
            b, g, r = (int(v) for v in corners[0])
            if not seen or seen[-1] != (r, g, b):
                seen.append((r, g, b))
            if not player.is_alive() and len(seen) > len(expected):
                break
        player.join(timeout=5)
        assert "error" not in result, result.get("error")
        flashes = [c for c in seen if c != PAGE_BACKGROUND]
        assert flashes == expected, seen  # every state, in order, exactly the colour asked for
        assert seen[-1] == PAGE_BACKGROUND  # back to the kiosk app's own screen
        playback = result["playback"]
        times = [*playback.onsets_us, playback.end_us]
        assert all(b > a for a, b in zip(times, times[1:], strict=False)), times
        assert all(b - a >= 150_000 - 2_000 for a, b in zip(times, times[1:], strict=False))
    finally:
        browser.close()
        daemon.stop()


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(),
                    reason="the trained default bundle is not in this checkout")
def test_serve_with_the_browser_display_as_flash_answers_checks_on_the_simulated_camera(
        tmp_path):
    key = "d" * 48
    key_file = tmp_path / "api-key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    # the shipped example configuration, set to the display flash, with this test's paths
    text = EXAMPLE_CONFIG.read_text()
    for old, new in (('kind = "led_serial"', 'kind = "display"'), ("port = 8787", "port = 0"),
                     ('# surface = "browser"', 'surface = "browser"'),  # not the sim's own
                     ("/etc/flashfas-edge/api-key", str(key_file)),
                     ("/var/log/flashfas-edge/audit.jsonl", str(tmp_path / "audit.jsonl")),
                     ("/var/lib/flashfas-edge/audit-images", str(tmp_path / "images")),
                     # no site calibration here: the simulated display's latency applies
                     ('calibration_file = "/etc/flashfas-edge/calibration.json"', "")):
        assert old in text, old
        text = text.replace(old, new)
    config = tmp_path / "flashfas-edge.toml"
    config.write_text(text)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashfas_edge.cli", "serve", "--sim", "--config", str(config),
         "--log-level", "warning"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    browser = None
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split("listening on ", 1)[1].strip()
        headers = {"X-API-Key": key}

        def health() -> dict:
            return httpx.get(f"{url}/v1/health", timeout=5).json()

        _wait_until(lambda: health()["reason"] == "flash_unavailable", 120,
                    "the self-test to miss the flash client")
        answer = httpx.post(f"{url}/v1/liveness", headers=headers, timeout=60)
        assert answer.status_code == 503 and answer.json()["error"]["code"] == "flash_unavailable"

        browser = Chromium(kiosk_page(tmp_path, url, key).as_uri(), tmp_path / "profile")
        _wait_until(lambda: health()["ready"], 60, "ready with the page connected")
        verdicts = []
        for _ in range(6):  # a loaded machine starves the simulated camera: retry, then live
            answer = httpx.post(f"{url}/v1/liveness", headers=headers, timeout=60)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            verdicts.append((body["verdict"], body["reason"]))
            if body["verdict"] == "live":
                break
            time.sleep(0.5)
        assert verdicts[-1] == ("live", "score_above_threshold"), verdicts
        assert all(v == "retry" for v, _ in verdicts[:-1]), verdicts

        browser.close()  # the kiosk's browser is gone: no check may pass without its flash
        browser = None
        answer = httpx.post(f"{url}/v1/liveness", headers=headers, timeout=60)
        body = answer.json()
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 200:
            assert (body["verdict"], body["reason"]) == ("retry", "flash_unavailable"), body
        else:
            assert body["error"]["code"] in ("flash_unavailable", "not_ready"), body
        _wait_until(lambda: health()["reason"] == "flash_unavailable", 30,
                    "health to report the missing flash client")
    finally:
        if browser is not None:
            browser.close()
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(),
                    reason="the trained default bundle is not in this checkout")
def test_calibrate_serves_the_flash_client_and_measures_through_the_browser(tmp_path):
    """calibrate runs with the daemon stopped: it serves the page's flash client itself on the
    daemon's address and key, waits for the page, and measures through its presentations."""
    import json
    import socket

    from api_harness import API_KEY, write_key_file

    from flashfas_edge.config import load_calibration

    with socket.socket() as s:  # a free loopback port for the daemon's address
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    key = write_key_file(tmp_path)
    config = tmp_path / "site.toml"
    config.write_text(f'[server]\nport = {port}\napi_key_file = "{key}"\n'
                      f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n'
                      '[kiosk.flash]\nkind = "display"\nsurface = "browser"\n')
    out = tmp_path / "calibration.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashfas_edge.cli", "calibrate", "--sim", "--yes", "--json",
         "--config", str(config), "--out", str(out), "--toggles", "6", "--live-checks", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    browser = None
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until(lambda: httpx.get(f"{url}/v1/flash/client.js", timeout=2).status_code == 200,
                    120, "calibrate to serve the flash client")
        assert httpx.get(f"{url}/v1/health", timeout=2).status_code == 404  # only the flash
        browser = Chromium(kiosk_page(tmp_path, url, API_KEY).as_uri(), tmp_path / "profile")
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if browser is not None:
            browser.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 1), stderr[-3000:]  # calibrated (site pass/warn or fail)
    assert "serving the flash client" in stderr
    answer = json.loads(stdout)
    cal = load_calibration(out)
    assert cal.identity is not None and "display" in cal.identity.flash
    assert 0 <= cal.latency_us < 250_000
    assert Path(answer["report"]).read_text().count("<svg") == 3
