"""systemd notify protocol over a real Unix datagram NOTIFY_SOCKET: READY after warm-up, WATCHDOG
pings while camera frames arrive, none while the camera is stalled, STOPPING at the end."""

from __future__ import annotations

import os
import socket
import time

import pytest
from api_harness import double_config, double_service, serve_in_thread

from flashfas_edge.daemon.sd_notify import NotifyError, SystemdNotifier
from flashfas_edge.daemon.server import watchdog_condition
from flashfas_edge.daemon.watchdog import WatchdogPinger


class NotifySocket:
    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.05)
        self.path = path

    def drain(self, duration_s: float) -> list[str]:
        messages = []
        deadline = time.monotonic() + duration_s
        while time.monotonic() < deadline:
            try:
                messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
        return messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def notify_socket(tmp_path):
    sock = NotifySocket(str(tmp_path / "notify.sock"))
    yield sock
    sock.close()


def test_environment_is_read_like_sd_watchdog_enabled():
    n = SystemdNotifier.from_environment({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000"})
    assert n.enabled and n.watchdog_interval_us == 4_000_000
    other = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_us is None  # the watchdog belongs to another process
    mine = SystemdNotifier.from_environment(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "10", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval_us == 10
    off = SystemdNotifier.from_environment({})
    assert not off.enabled and off.send(READY=1) is False


def test_abstract_namespace_socket_receives_messages():
    name = f"flashfas-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        SystemdNotifier("@" + name).status("hello")
        assert sock.recv(4096) == b"STATUS=hello"
    finally:
        sock.close()


def test_an_unreachable_notify_socket_is_a_typed_error(tmp_path):
    with pytest.raises(NotifyError):
        SystemdNotifier(str(tmp_path / "absent.sock")).watchdog()


def test_ready_and_watchdog_arrive_and_pings_stop_while_the_camera_stalls(tmp_path,
                                                                         notify_socket):
    config = double_config(tmp_path, watchdog={"frame_stale_s": 0.3})
    service, _ = double_service(config)
    service.backend.warm_up_s = 0.3
    notifier = SystemdNotifier(notify_socket.path, watchdog_interval_us=200_000)  # ping / 0.1 s
    service.on_ready(lambda: notifier.ready("ready"))
    running = serve_in_thread(service, config)
    pinger = WatchdogPinger(notifier, watchdog_condition(service, running.gate.running_for_s,
                                                         stuck_after_s=15.0))
    assert pinger.interval_s == pytest.approx(0.1)
    pinger.start()
    try:
        first = notify_socket.drain(1.5)
        ready = [m for m in first if "READY=1" in m]
        assert len(ready) == 1 and f"MAINPID={os.getpid()}" in ready[0]
        assert sum(m == "WATCHDOG=1" for m in first) >= 4

        service.camera.stall()
        # frame_stale_s (0.3 s) passes; a ping decided just before may arrive late on a busy box
        notify_socket.drain(0.8)
        stalled = notify_socket.drain(0.8)
        assert "WATCHDOG=1" not in stalled
        assert any(m.startswith("STATUS=unhealthy: camera stalled") for m in stalled)

        service.camera.resume()
        resumed = notify_socket.drain(1.0)
        assert sum(m == "WATCHDOG=1" for m in resumed) >= 2
    finally:
        pinger.stop()  # joins the ping thread: nothing is sent after this returns
        running.stop()
        notify_socket.drain(0.2)  # pings sent before the stop, after the last drain above
        notifier.stopping()
    assert notify_socket.drain(0.2) == ["STOPPING=1\nSTATUS=stopping"]


def test_a_stuck_check_stops_the_pings(tmp_path, notify_socket):
    config = double_config(tmp_path, queue={"check_timeout_s": 0.2})
    service, pipeline = double_service(config)
    notifier = SystemdNotifier(notify_socket.path, watchdog_interval_us=200_000)
    running = serve_in_thread(service, config)
    assert service.wait_ready(5)
    pinger = WatchdogPinger(notifier, watchdog_condition(service, running.gate.running_for_s,
                                                         stuck_after_s=0.3))
    pinger.start()
    try:
        import httpx
        from api_harness import API_KEY

        assert notify_socket.drain(0.6).count("WATCHDOG=1") >= 2
        pipeline.extra_sleep_s = 2.0  # one check hangs on the worker thread
        r = httpx.post(f"{running.url}/v1/liveness", headers={"X-API-Key": API_KEY}, timeout=5)
        assert r.status_code == 504  # at 0.2 s; "stuck" from 0.3 s on the worker
        notify_socket.drain(0.4)
        assert "WATCHDOG=1" not in notify_socket.drain(0.8)
        pipeline.extra_sleep_s = 0.0
        time.sleep(1.2)  # the hung check returns
        assert notify_socket.drain(0.8).count("WATCHDOG=1") >= 2
    finally:
        pinger.stop()
        running.stop()
