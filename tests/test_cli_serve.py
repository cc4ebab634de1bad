"""Real subprocess runs of the CLI on the simulated kiosk: `serve` under a real NOTIFY_SOCKET
(READY, WATCHDOG, STOPPING as systemd would see them), `check` against it (JSON and human),
`record` writing dataset-format sessions, and `demo`'s exit code when an attack is accepted."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from sim_bundles import random_weight_bundle

from flashfas_edge.data.dataset_format import read_session_file

KEY = "c" * 48


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flashfas_edge.cli", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return random_weight_bundle(tmp_path_factory.mktemp("bundle") / "b")


def _config(tmp_path, bundle, width=320, height=240):
    key = tmp_path / "api-key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    config = tmp_path / "flashfas-edge.toml"
    config.write_text(
        f'[server]\nport = 0\napi_key_file = "{key}"\n'
        f'[audit]\npath = "{tmp_path / "audit.jsonl"}"\n'
        f'[model]\nbundle = "{bundle}"\nthreads = 1\n'
        f"[kiosk.camera]\nwidth = {width}\nheight = {height}\n")
    return config, key


def test_serve_speaks_sd_notify_and_answers_check(tmp_path, bundle):
    config, key = _config(tmp_path, bundle)
    notify_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify_path))
    sock.settimeout(0.1)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_path), "WATCHDOG_USEC": "1000000",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashfas_edge.cli", "serve", "--sim", "--config", str(config),
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = proc.stdout.readline().split("listening on ", 1)[1].strip()
        messages: list[str] = []
        deadline = time.monotonic() + 90
        while not any("READY=1" in m for m in messages):
            assert time.monotonic() < deadline, f"no READY=1: {messages}"
            assert proc.poll() is None, proc.stderr.read()
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                pass
        ready = next(m for m in messages if "READY=1" in m)
        assert f"MAINPID={proc.pid}" in ready
        pings, end = 0, time.monotonic() + 1.6
        while time.monotonic() < end:
            try:
                pings += sock.recv(4096) == b"WATCHDOG=1"
            except TimeoutError:
                pass
        assert pings >= 2  # every WatchdogSec/2 = 0.5 s while frames arrive
        # From here on, read the socket all the time, as systemd does (its queue holds only 10
        # datagrams; the daemon never blocks on it, but an unread STOPPING=1 would be lost).
        tail: list[str] = []
        reading = threading.Event()
        reading.set()

        def read_like_systemd() -> None:
            while reading.is_set():
                try:
                    tail.append(sock.recv(4096).decode())
                except TimeoutError:
                    pass

        reader = threading.Thread(target=read_like_systemd, daemon=True)
        reader.start()

        result = _cli("check", "--json", "--url", url, "--api-key-file", str(key))
        assert result.returncode in (0, 1), result.stderr
        answer = json.loads(result.stdout)
        assert answer["verdict"] in {"live", "spoof", "retry"}
        assert (answer["verdict"] == "live") == (result.returncode == 0)
        human = _cli("check", "--url", url, "--api-key-file", str(key))
        assert "verdict" in human.stdout and "check_id" in human.stdout
        wrong = tmp_path / "wrong-key"
        wrong.write_text("w" * 40)
        denied = _cli("check", "--json", "--url", url, "--api-key-file", str(wrong))
        assert denied.returncode == 2
        assert json.loads(denied.stdout)["error"]["code"] == "unauthorized"
        # the simulated scene changes without curl
        shown = _cli("sim", "--scene", "mask", "--ambient", "dark_room", "--seed", "4",
                     "--url", url, "--api-key-file", str(key))
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.strip() == "scene mask, ambient dark_room, seed 4"
        refused = _cli("sim", "--scene", "ghost", "--url", url, "--api-key-file", str(key))
        assert refused.returncode == 2 and "ghost" in refused.stderr and "(HTTP 4" in refused.stderr

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        time.sleep(0.2)
        reading.clear()
        reader.join(timeout=2)
        assert any("STOPPING=1" in m for m in tail), tail
        audit = (tmp_path / "audit.jsonl").read_text().splitlines()
        assert json.loads(audit[0])["check_id"] == answer["check_id"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()


def test_record_writes_sessions_in_the_dataset_format(tmp_path, bundle):
    config, _ = _config(tmp_path, bundle)
    out = tmp_path / "rec"
    result = _cli("record", "--sim", "--config", str(config), "--out", str(out), "--n", "2",
                  "--scene", "print", "--ambient", "office", "--seed", "3")
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.npz"))
    assert len(files) == 2
    for path in files:
        session = read_session_file(path)
        assert session.attack_type == "print"
        assert session.frames.shape[1:] == (240, 320, 3) and len(session.frames) >= session.n0
        assert session.landmarks is not None
        assert session.meta["check"]["verdict"] in {"live", "spoof", "retry"}
        assert sorted(session.order.tolist()) == list(range(session.n0))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(p) for p in files]


def test_demo_exits_1_when_an_attack_is_accepted_as_live(tmp_path, bundle):
    """A random-weight bundle scores every face ≈0.56 > 0.5: the print must be flagged."""
    out = tmp_path / "demo.json"
    result = _cli("demo", "--bundle", str(bundle), "--ambients", "office", "--scenes", "print",
                  "--json-out", str(out), timeout=180)
    rows = json.loads(out.read_text())
    assert [r["scene"] for r in rows] == ["print"]
    assert rows[0]["verdict"] == "live"
    assert result.returncode == 1
    assert "ATTACK ACCEPTED" in result.stdout and "FAIL" in result.stdout
    # the first check follows no flash: nothing to wait for; the stages add up to no more than
    # the request's own time (processing counts only what comes after the capture)
    assert rows[0]["safety_wait_ms"] == 0.0
    assert "waited for flash safety:  0 of 1 checks" in result.stdout
    assert 0 < rows[0]["processing_ms"] < rows[0]["latency_ms"] - rows[0]["capture_ms"]


def test_demo_runs_with_the_real_detector_in_the_loop(tmp_path, bundle):
    """``--landmarks mtcnn``: the daemon's config names the detector, and the header says so."""
    from flashfas_edge.config import load_config
    from flashfas_edge.tools.demo import demo_config

    path, _ = demo_config(tmp_path, bundle, landmarks="mtcnn")
    assert load_config(path).pipeline.landmarks.provider == "mtcnn"
    out = tmp_path / "demo.json"
    result = _cli("demo", "--bundle", str(bundle), "--ambients", "office", "--scenes", "live",
                  "--landmarks", "mtcnn", "--json-out", str(out), timeout=180)
    assert "landmarks mtcnn" in result.stdout, result.stdout + result.stderr
    rows = json.loads(out.read_text())
    assert [r["scene"] for r in rows][0] == "live"
    assert all(r["verdict"] in {"live", "spoof", "retry"} for r in rows)
