"""Test rig for the display flash: the real daemon app on a real loopback server with a real
``DisplayFlash`` behind ``/v1/flash/ws``; a scripted flash client in Python that speaks the
protocol over a real WebSocket (and misbehaves on request); headless Chromium driven over the
DevTools protocol (tests/test_display_flash_browser.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from api_harness import API_KEY, RunningServer, double_config, double_service, serve_in_thread
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from flashfas_edge.flash.base import FlashSchedule, FlashState
from flashfas_edge.flash.display_flash import DisplayFlash


def socket_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://") + "/v1/flash/ws"


@dataclass
class DisplayDaemon:
    server: RunningServer
    flash: DisplayFlash

    def stop(self) -> None:
        self.flash.stop()
        self.server.stop()


def serve_display(tmp: Path, **driver_options: object) -> DisplayDaemon:
    """The real app (kiosk doubles for camera and model) with a started DisplayFlash as its
    browser flash; the API key is ``api_harness.API_KEY``."""
    config = double_config(tmp)
    service, _ = double_service(config)
    flash = DisplayFlash(**driver_options)  # type: ignore[arg-type]
    flash.start()
    server = serve_in_thread(service, config, flash_clients=flash)
    return DisplayDaemon(server, flash)


def schedule_of(colours: list[tuple[float, float, float]], duration_us: int,
                nonce: str = "ab" * 16) -> FlashSchedule:
    return FlashSchedule(tuple(FlashState(rgb, 1.0) for rgb in colours), duration_us, nonce,
                         tuple(range(len(colours))))


FAULTS = ("disconnect_mid", "non_monotonic", "silent", "late_start", "wrong_colour", "stall",
          "refuse")


class ScriptedClient:
    """A flash client in Python: hello, pongs on its own clock (``clock_offset_ms`` from the
    host's monotonic clock), and each sequence played on time — or with one ``fault``."""

    def __init__(self, http_url: str, key: str = API_KEY, *, clock_offset_ms: float = -5000.0,
                 fault: str | None = None) -> None:
        assert fault is None or fault in FAULTS
        self.url = socket_url(http_url)
        self.key = key
        self.offset_ms = clock_offset_ms
        self.fault = fault
        self.close_code: int | None = None
        self.close_reason = ""
        self.welcomed = threading.Event()
        self.reports: list[dict] = []
        self._socket: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now_ms(self) -> float:
        return time.monotonic_ns() / 1e6 + self.offset_ms

    def start(self) -> ScriptedClient:
        self._socket = self._stack.enter_context(connect(self.url, open_timeout=5))
        self._socket.send(json.dumps({"type": "hello", "key": self.key, "version": 1}))
        self._thread.start()
        return self

    def close(self) -> None:
        self._stack.close()
        self._thread.join(timeout=5)

    def wait_closed(self, timeout_s: float = 5.0) -> int | None:
        self._thread.join(timeout=timeout_s)
        return self.close_code

    def _send(self, message: dict) -> None:
        assert self._socket is not None
        self._socket.send(json.dumps(message))

    def _run(self) -> None:
        assert self._socket is not None
        try:
            for text in self._socket:
                message = json.loads(text)
                if message["type"] == "welcome":
                    self.welcomed.set()
                elif message["type"] == "ping":
                    self._send({"type": "pong", "id": message["id"], "t": self.now_ms()})
                elif message["type"] == "play":
                    if not self._play(message):
                        return
        except ConnectionClosed:
            pass
        finally:
            closed = self._socket.protocol.close_rcvd
            if closed is not None:
                self.close_code, self.close_reason = closed.code, closed.reason

    def _sleep_until(self, t_ms: float) -> None:
        while (left := t_ms - self.now_ms()) > 0:
            time.sleep(min(left / 1000, 0.002))

    def _play(self, message: dict) -> bool:
        """Play on time (reports at the real times), or misbehave; False: the client left."""
        if self.fault == "silent":
            return True
        if self.fault == "refuse":
            self._send({"type": "refused", "id": message["id"], "reason": "kiosk app busy"})
            return True
        due = message["start"] + (150.0 if self.fault == "late_start" else 0.0)
        states = message["states"]
        previous = None
        for slot in range(len(states) + 1):
            self._sleep_until(due)
            t = self.now_ms()
            if self.fault == "non_monotonic" and slot == 2:
                t = previous - 10.0
            rgb = states[slot]["rgb"] if slot < len(states) else None
            if self.fault == "wrong_colour" and slot == 1:
                rgb = [0, 0, 0]
            report = {"type": "shown", "id": message["id"], "slot": slot, "t": t, "rgb": rgb}
            self.reports.append(report)
            self._send(report)
            if self.fault == "disconnect_mid" and slot == 1:
                assert self._socket is not None
                self._socket.close()
                return False
            previous = t
            if slot < len(states):
                due = t + states[slot]["ms"] + (120.0 if self.fault == "stall" and slot == 2
                                                else 0.0)
        return True


# --- headless Chromium ------------------------------------------------------------------------

def chromium_binary() -> str:
    """The Chromium to drive, or the test is skipped (a failure in CI, where .ci/run installs it
    and FLASHFAS_CI_REQUIRE names it)."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path is not None:
            return path
    if "chromium" in os.environ.get("FLASHFAS_CI_REQUIRE", "").split(","):
        pytest.fail("chromium is required here (FLASHFAS_CI_REQUIRE) but not installed")
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium)")


def kiosk_page(directory: Path, daemon_url: str, key: str = API_KEY) -> Path:
    """The documented embed example (docs/DISPLAY_FLASH.md) with this daemon's URL and key."""
    page = directory / "kiosk.html"
    page.write_text(f"""<!doctype html>
<html><head><meta charset="utf-8"><title>kiosk app</title></head>
<body style="margin:0; background:#203040; color:white">
  <h1>Welcome</h1>
  <script src="{daemon_url}/v1/flash/client.js"></script>
  <script>
    FlashfasFlash.connect({{ daemon: "{daemon_url}", apiKey: "{key}",
                            onStatus: (s) => console.log("flash client:", s) }});
  </script>
</body></html>
""")
    return page


class Chromium:
    """Headless Chromium showing ``url``, with a DevTools session on its page."""

    def __init__(self, url: str, profile: Path, size: tuple[int, int] = (320, 240)) -> None:
        self.proc = subprocess.Popen(
            [chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-extensions", "--mute-audio",
             f"--user-data-dir={profile}", "--remote-debugging-port=0",
             f"--window-size={size[0]},{size[1]}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._id = 0
        self.page: ClientConnection | None = None
        deadline = time.monotonic() + 60
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.proc.returncode}")
            if line.startswith("DevTools listening on "):
                browser_url = line.split(" on ", 1)[1].strip()
                break
        else:
            raise RuntimeError("chromium did not open its DevTools port within 60 s")
        threading.Thread(target=self._drain, daemon=True).start()
        port = browser_url.split(":")[2].split("/")[0]
        self._stack = contextlib.ExitStack()
        self.page = self._stack.enter_context(
            connect(self._page_socket(int(port)), max_size=64 * 2**20, open_timeout=10))

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for _ in self.proc.stderr:
            pass

    @staticmethod
    def _page_socket(port: int) -> str:
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise RuntimeError("chromium shows no page")

    def send(self, method: str, **params: object) -> int:
        assert self.page is not None
        self._id += 1
        self.page.send(json.dumps({"id": self._id, "method": method, "params": params}))
        return self._id

    def call(self, method: str, timeout_s: float = 30.0, **params: object) -> dict:
        """Send a DevTools command and return its result (events meanwhile are dropped)."""
        assert self.page is not None
        sent = self.send(method, **params)
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(self.page.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            if message.get("id") == sent:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def events(self, timeout_s: float):
        """DevTools events until ``timeout_s`` passes with none."""
        assert self.page is not None
        while True:
            try:
                yield json.loads(self.page.recv(timeout=timeout_s))
            except TimeoutError:
                return

    def close(self) -> None:
        self._stack.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
