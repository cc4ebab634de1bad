"""What an outside probe of the daemon found, each kept as a promise: uploads never decide a door,
every started check has its audit line (shutdown, cancelled callers, a kill -9), corrupt uploads
are a 422, slow or idle clients are dropped while checks go on, uploads are refused before their
body is read, Retry-After tells how long the queue really takes, and no internals leak.

The HTTP-layer tests run the real app on a real uvicorn server (the daemon's own server build,
with its connection guard) around the kiosk doubles of ``api_harness``; the crash and start-up
tests run the real CLI as a subprocess on the simulated kiosk.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from api_harness import (
    API_KEY,
    live_session_file,
    serve_double,
    serve_in_thread,
)

from flashfas_edge.api.errors import InvalidUpload
from flashfas_edge.api.session_upload import decode_uploaded_session
from flashfas_edge.daemon.audit_log import AuditLog
from flashfas_edge.daemon.check_gate import CheckGate, ShuttingDownError

AUTH = {"Authorization": f"Bearer {API_KEY}"}
NPZ = {**AUTH, "Content-Type": "application/x-npz"}



def _audit_lines(running) -> list[dict]:
    return [json.loads(x) for x in running.config.daemon.audit.path.read_text().splitlines()]


def _host_port(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


# ----- 1. an uploaded recording never decides a door ----------------------------------------------

def test_recorded_evaluation_is_off_by_default_and_the_old_route_is_gone(tmp_path):
    running, pipeline = serve_double(tmp_path)
    try:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            r = http.post("/v1/evaluate/recorded", headers=NPZ, content=b"PK\x03\x04")
            assert r.status_code == 403
            assert r.json()["error"]["code"] == "evaluation_disabled"
            # a kiosk app still calling the old route gets no answer it could open a door on
            r = http.post("/v1/liveness/recorded", headers=NPZ, content=b"PK\x03\x04")
            assert r.status_code == 404 and "verdict" not in r.json()
        assert pipeline.calls == 0 and not running.config.daemon.audit.path.exists()
    finally:
        running.stop()


# ----- 2. shutdown: new and waiting checks get 503 JSON; every started check is audited ----------

def test_shutdown_answers_waiting_checks_503_in_json_and_audits_the_running_one(tmp_path):
    running, pipeline = serve_double(tmp_path, queue={"max_waiting": 6, "check_timeout_s": 5.0})
    pipeline.extra_sleep_s = 0.8
    answers: list[httpx.Response] = []

    def one(i: int) -> httpx.Response:
        with httpx.Client(base_url=running.url, timeout=30) as http:
            return http.post("/v1/liveness", headers=AUTH, json={"client_ref": f"c{i}"})

    pool = ThreadPoolExecutor(max_workers=6)
    futures = [pool.submit(one, i) for i in range(6)]
    deadline = time.monotonic() + 5
    while running.gate.depth < 6:  # one running, five waiting
        assert time.monotonic() < deadline, running.gate.depth
        time.sleep(0.01)
    t0 = time.monotonic()
    running.server.should_exit = True  # what SIGTERM does
    answers = [f.result(timeout=30) for f in futures]
    running.thread.join(timeout=10)
    pool.shutdown()
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [503] * 5, statuses
    for r in answers:
        assert r.headers["content-type"] == "application/json"
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "stopping"
    assert time.monotonic() - t0 < 3  # waiting ones were not left to a cancellation
    assert pipeline.calls == 1
    [line] = _audit_lines(running)
    assert line["http_status"] == 200 and line["check_id"] == next(
        r.json()["check_id"] for r in answers if r.status_code == 200)
    running.gate.close()
    running.service.stop()


def test_a_check_whose_caller_is_cancelled_is_still_audited_with_503():
    gate = CheckGate(max_waiting=2)
    settled: list[str] = []
    started = threading.Event()

    def work(ticket):
        started.set()
        time.sleep(0.3)
        settled.append(ticket.settle())
        return "result"

    async def scenario() -> None:
        task = asyncio.ensure_future(gate.run(work, timeout_s=5))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.close_admission()
        with pytest.raises(ShuttingDownError):
            gate.reserve("camera")

    asyncio.run(scenario())
    gate.close(wait_s=2)
    assert settled == ["abandoned"]


# ----- 3. corrupt uploads are a 422, whatever the parser raises -----------------------------------

@pytest.fixture(scope="module")
def session_bytes(tmp_path_factory):
    return live_session_file(tmp_path_factory.mktemp("s"), identity=5, seed=2)


def _deflated(raw: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as src, \
            zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    return buf.getvalue()


def _corrupt_deflate(raw: bytes) -> bytes:
    data = bytearray(_deflated(raw))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("s0000/frames.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 20, start + 60):
        data[i] ^= 0x5A  # the compressed stream, not its headers
    return bytes(data)


def _set_in_headers(raw: bytes, offset_local: int, offset_central: int, value: bytes) -> bytes:
    """Patch the same field in every local (PK\\3\\4) and central (PK\\1\\2) header."""
    data = bytearray(raw)
    for sig, off in ((b"PK\x03\x04", offset_local), (b"PK\x01\x02", offset_central)):
        at = data.find(sig)
        while at >= 0:
            data[at + off: at + off + len(value)] = value
            at = data.find(sig, at + 4)
    return bytes(data)


def _broken_npy_header(raw: bytes) -> bytes:
    arrays: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        for name in zf.namelist():
            arrays[name] = zf.read(name)
    member = arrays["s0000/order.npy"]
    arrays["s0000/order.npy"] = member.replace(b"'descr'", b"'descr'((", 1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in arrays.items():
            zf.writestr(name, data)
    return buf.getvalue()


CORRUPTIONS = {
    "corrupt deflate stream": _corrupt_deflate,
    "encrypted flag": lambda raw: _set_in_headers(raw, 6, 8, b"\x01\x00"),
    "compression method 99": lambda raw: _set_in_headers(raw, 8, 10, b"\x63\x00"),
    "broken npy header": _broken_npy_header,
}


@pytest.fixture(scope="module")
def eval_server(tmp_path_factory):
    running, _ = serve_double(tmp_path_factory.mktemp("eval"), server={"recorded_evaluation": True})
    yield running
    running.stop()


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_the_probe_sent_is_a_422_not_a_500(eval_server, session_bytes, name):
    payload = CORRUPTIONS[name](session_bytes)
    with pytest.raises(InvalidUpload):
        decode_uploaded_session(payload, "application/x-npz")
    r = httpx.post(f"{eval_server.url}/v1/evaluate/recorded", headers=NPZ, content=payload,
                   timeout=30)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_session"
    assert " at 0x" not in r.text and "BytesIO" not in r.text


def test_fuzzed_uploads_are_a_valid_session_or_a_422_never_anything_else(session_bytes):
    rng = np.random.default_rng(1234)
    bases = [session_bytes, _deflated(session_bytes)]
    outcomes = {"session": 0, "invalid": 0}
    for i in range(400):
        data = bytearray(bases[i % 2])
        how = i % 4
        if how == 0:  # flip a few bytes anywhere
            for at in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
                data[at] ^= int(rng.integers(1, 256))
        elif how == 1:  # flip bytes inside the first 2 KiB (headers, npy header)
            for at in rng.integers(0, min(2048, len(data)), size=int(rng.integers(1, 6))):
                data[at] = int(rng.integers(0, 256))
        elif how == 2:  # truncate
            del data[int(rng.integers(1, len(data))):]
        else:  # splice a chunk of itself elsewhere
            a, b = sorted(rng.integers(0, len(data), size=2))
            at = int(rng.integers(0, len(data)))
            data[at:at] = data[a:b][:4096]
        try:
            decode_uploaded_session(bytes(data), "application/x-npz")
        except InvalidUpload as exc:
            assert " at 0x" not in str(exc)
            outcomes["invalid"] += 1
        else:
            outcomes["session"] += 1
    assert outcomes["invalid"] > 300, outcomes  # the mutations really broke most uploads


# ----- 4. record --sim stores the simulated kiosk's latency -------------------------------------

def test_record_sim_stores_the_kiosk_latency_and_its_sessions_are_usable(tmp_path):
    import subprocess
    import sys

    from sim_bundles import random_weight_bundle

    from flashfas_edge.data.dataset_format import read_session_file
    from flashfas_edge.sim.device import PROFILE_BY_NAME

    bundle = random_weight_bundle(tmp_path / "bundle")
    config = _cli_config(tmp_path, bundle)
    out = tmp_path / "rec"
    result = subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", "record", "--sim", "--config", str(config),
         "--out", str(out), "--n", "1", "--scene", "live", "--seed", "2"],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    [path] = sorted(out.glob("*.npz"))
    session = read_session_file(path)
    latency_us = int(PROFILE_BY_NAME["kiosk15_mipi"].latency_us)
    assert latency_us > 0 and session.latency_us == latency_us

    from flashfas_edge.face.ground_truth import GroundTruthLandmarks
    from flashfas_edge.inference.ort_backend import OrtBackend
    from flashfas_edge.pipeline.config import PipelineConfig
    from flashfas_edge.pipeline.pipeline import Pipeline

    pipeline = Pipeline(None, None, GroundTruthLandmarks(), OrtBackend(bundle),
                        PipelineConfig())
    assert pipeline.run_recorded(session).reason.value != "no_clean_frame"


# ----- 5. uploads take a queue place before their body is read -----------------------------------

def _raw_request(url: str, head: bytes, body_part: bytes = b"") -> socket.socket:
    sock = socket.create_connection(_host_port(url), timeout=5)
    sock.sendall(head + body_part)
    return sock


def _read_response(sock: socket.socket, timeout_s: float) -> bytes:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + \
                int(data.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0] or 0):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, IndexError, ValueError):
        pass
    return data


def _upload_head(url: str, length: int) -> bytes:
    host, port = _host_port(url)
    return (f"POST /v1/evaluate/recorded HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/x-npz\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def test_a_full_queue_refuses_an_upload_before_its_body_is_sent(tmp_path):
    running, pipeline = serve_double(tmp_path, queue={"max_waiting": 1},
                               server={"recorded_evaluation": True})
    size = 32 * 1024 * 1024 - 1
    held: list[socket.socket] = []
    try:
        # two uploads that never finish their bodies hold the running place and the waiting one
        for _ in range(2):
            held.append(_raw_request(running.url, _upload_head(running.url, size), b"PK"))
        deadline = time.monotonic() + 5
        while running.gate.depth < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # the third is answered 429 though it has sent 2 bytes of 32 MiB
        third = _raw_request(running.url, _upload_head(running.url, size), b"PK")
        answer = _read_response(third, 5)
        assert answer.startswith(b"HTTP/1.1 429"), answer[:200]
        assert b'"queue_full"' in answer and b"retry-after:" in answer.lower()
        third.close()
    finally:
        for sock in held:
            sock.close()
        running.stop()


# ----- 6. slow and idle clients are dropped; checks go on ----------------------------------------

def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_idle_and_slow_clients_are_dropped_while_checks_go_on(tmp_path):
    running, pipeline = serve_double(tmp_path, server={
        "header_timeout_s": 0.6, "body_timeout_s": 1.0, "max_connections": 8})
    try:
        idle = socket.create_connection(_host_port(running.url))
        slow_head = socket.create_connection(_host_port(running.url))
        stop = threading.Event()

        def trickle() -> None:
            for byte in b"GET /v1/status HTTP/1.1\r\nHost: x\r\n":
                if stop.is_set():
                    return
                try:
                    slow_head.send(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.1)

        threading.Thread(target=trickle, daemon=True).start()
        slow_body = _raw_request(
            running.url,
            (f"POST /v1/liveness HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\n"
             f"Content-Type: application/json\r\nContent-Length: 40\r\n\r\n").encode(), b"{")
        with httpx.Client(base_url=running.url, timeout=10) as http:
            assert http.post("/v1/liveness", headers=AUTH).status_code == 200
        assert _closed_within(idle, 2.0)
        assert _closed_within(slow_head, 2.0)
        stop.set()
        answer = _read_response(slow_body, 3)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"request_timeout"' in answer
        with httpx.Client(base_url=running.url, timeout=10) as http:
            assert http.post("/v1/liveness", headers=AUTH).status_code == 200
        assert pipeline.calls == 2
    finally:
        running.stop()


def test_connections_beyond_the_cap_are_answered_503_and_closed(tmp_path):
    running, _ = serve_double(tmp_path, server={"max_connections": 4, "header_timeout_s": 30})
    held = [socket.create_connection(_host_port(running.url)) for _ in range(4)]
    try:
        time.sleep(0.2)
        extra = socket.create_connection(_host_port(running.url))
        answer = _read_response(extra, 3)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b'"too_many_connections"' in answer
        for sock in held:
            sock.close()
        time.sleep(0.2)
        assert httpx.get(f"{running.url}/v1/health", timeout=5).status_code == 200
    finally:
        running.stop()


# ----- 7. Retry-After: the time the queue really takes -------------------------------------------

def test_retry_after_is_not_dragged_down_by_fast_failures_and_covers_the_drain(tmp_path):
    running, pipeline = serve_double(tmp_path, queue={"max_waiting": 2, "check_timeout_s": 10},
                               server={"recorded_evaluation": True})
    try:
        pipeline.extra_sleep_s = 0.6
        with httpx.Client(base_url=running.url, timeout=30) as http:
            for _ in range(3):  # learn how long a camera check takes
                assert http.post("/v1/liveness", headers=AUTH).status_code == 200
            for _ in range(20):  # fast failures: they must not shorten the estimate
                assert http.post("/v1/evaluate/recorded", headers=NPZ,
                                 content=b"not a zip").status_code == 422

        def one(_: int) -> httpx.Response:
            with httpx.Client(base_url=running.url, timeout=30) as http:
                return http.post("/v1/liveness", headers=AUTH)

        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = [pool.submit(one, i) for i in range(3)]
            deadline = time.monotonic() + 5
            while running.gate.depth < 3:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            refused_at = time.monotonic()
            refused = httpx.post(f"{running.url}/v1/liveness", headers=AUTH, timeout=10)
            assert refused.status_code == 429
            retry_after = int(refused.headers["retry-after"])
            for f in futures:
                assert f.result().status_code == 200
            drained_s = time.monotonic() - refused_at
        # three checks of ~0.6 s were ahead: the advice covers the drain and one more check,
        # and does not overshoot wildly
        assert drained_s <= retry_after <= drained_s + 4, (retry_after, drained_s)
    finally:
        running.stop()


# ----- 8. no internals in answers; health, HEAD, start-up errors, scene options ------------------

def test_status_and_errors_show_no_paths_and_health_follows_the_audit_log(tmp_path):
    running, _ = serve_double(tmp_path)
    audit_path = running.config.daemon.audit.path
    try:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            status = http.get("/v1/status", headers=AUTH).json()
            assert "directory" not in status["model"]["extra"]
            assert str(tmp_path) not in json.dumps(status)
            head = http.head("/v1/health")
            assert head.status_code == 200 and head.content == b""
            audit_path.mkdir(parents=True)  # the log's file is now a folder: cannot append
            r = http.post("/v1/liveness", headers=AUTH)
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "audit_log_unavailable"
            assert str(tmp_path) not in r.text
            health = http.get("/v1/health")
            assert health.status_code == 503
            assert health.json()["reason"] == "audit_log_unavailable"
            assert http.head("/v1/health").status_code == 503
            audit_path.rmdir()
            time.sleep(1.1)  # the log is probed again at most once a second
            assert http.get("/v1/health").json()["ready"] is True
            assert http.post("/v1/liveness", headers=AUTH).status_code == 200
    finally:
        running.stop()


def _cli_config(tmp_path, bundle, *, port: int = 0, audit_path: str | None = None):
    key = tmp_path / "api-key"
    key.write_text("k" * 48 + "\n")
    key.chmod(0o600)
    config = tmp_path / "flashfas-edge.toml"
    config.write_text(
        f'[server]\nport = {port}\napi_key_file = "{key}"\n'
        f'[audit]\npath = "{audit_path or tmp_path / "audit.jsonl"}"\n'
        f'[model]\nbundle = "{bundle}"\nthreads = 1\n'
        "[kiosk.camera]\nwidth = 320\nheight = 240\n")
    return config


@pytest.fixture(scope="module")
def cli_bundle(tmp_path_factory):
    from sim_bundles import random_weight_bundle

    return random_weight_bundle(tmp_path_factory.mktemp("bundle") / "b")


def _serve_cli(config, *extra: str, timeout: float = 120):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "flashfas_edge.cli", "serve", "--sim",
                           "--config", str(config), "--log-level", "warning", *extra],
                          capture_output=True, text=True, timeout=timeout)


def test_a_port_in_use_is_a_one_line_error_and_exit_78(tmp_path, cli_bundle):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        result = _serve_cli(_cli_config(tmp_path, cli_bundle, port=taken.getsockname()[1]))
    finally:
        taken.close()
    assert result.returncode == 78, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot listen on" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_an_unusable_audit_folder_is_a_one_line_error_and_exit_78(tmp_path, cli_bundle):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the audit folder should be")
    result = _serve_cli(_cli_config(tmp_path, cli_bundle,
                                    audit_path=str(blocker / "audit.jsonl")))
    assert result.returncode == 78, result.stderr
    assert "Traceback" not in result.stderr and "audit log" in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1


@pytest.mark.parametrize("options", [
    {"distance_range_m": 5}, {"distance_range_m": [2.0, 1.0]}, {"ambient_scale": 1e308},
    {"exposure_scale": -1}, {"motion_px": float("inf")}, {"faces": "two"},
])
def test_out_of_range_scene_options_are_refused_before_the_renderer_sees_them(options):
    from flashfas_edge.kiosk.sim_scene import SceneError, SimSceneControls

    controls = SimSceneControls(kiosk=None)  # type: ignore[arg-type]  # refused before use
    with pytest.raises(SceneError) as raised:
        controls.subject_for("live", options=options)
    assert "options." in str(raised.value)


def test_out_of_range_scene_options_are_a_422_through_the_api(tmp_path):
    from sim_bundles import random_weight_bundle

    from flashfas_edge.config import load_config
    from flashfas_edge.kiosk.assembly import build_kiosk

    key = tmp_path / "api-key"
    key.write_text(API_KEY + "\n")
    key.chmod(0o600)
    config = load_config(None, sim=True, overrides={
        "server": {"port": 0, "api_key_file": str(key)},
        "audit": {"path": str(tmp_path / "audit.jsonl")},
        "model": {"bundle": str(random_weight_bundle(tmp_path / "b")), "threads": 1},
        "kiosk": {"camera": {"width": 160, "height": 120}}})
    kiosk = build_kiosk(config)
    running = serve_in_thread(kiosk.service, config, kiosk.scene_controls)
    try:
        assert kiosk.service.wait_ready(60)
        with httpx.Client(base_url=running.url, headers=AUTH, timeout=30) as http:
            for options in ({"distance_range_m": 5}, {"ambient_scale": 1e308}):
                r = http.put("/v1/sim/scene", json={"scene": "live", "options": options})
                assert r.status_code == 422, r.text
                assert r.json()["error"]["code"] == "invalid_request"
            time.sleep(0.5)
            assert http.get("/v1/health").json()["ready"] is True  # the camera goes on
    finally:
        running.stop()


def test_a_frame_the_renderer_fails_on_does_not_stop_the_simulated_camera():
    from flashfas_edge.sim.kiosk import SimKiosk
    from flashfas_edge.sim.kiosk_camera import SimCamera

    kiosk = SimKiosk(width=160, height=120)
    real_render = kiosk.render_frame
    failing = {"n": 0}

    def sometimes_failing(t_us):
        if failing["n"] > 0:
            failing["n"] -= 1
            raise FloatingPointError("overflow in the scene")
        return real_render(t_us)

    kiosk.render_frame = sometimes_failing  # type: ignore[method-assign]
    camera = SimCamera(kiosk, fps=30)
    camera.start()
    try:
        failing["n"] = 3
        deadline = time.monotonic() + 10
        while camera.render_errors < 3:
            assert time.monotonic() < deadline, camera.render_errors
            time.sleep(0.02)
        after_errors_us = time.monotonic_ns() // 1000
        while (camera.last_frame_time_us() or 0) <= after_errors_us:
            assert time.monotonic() < deadline, "the camera stopped after a failed frame"
            time.sleep(0.02)
        assert camera.render_errors == 3
    finally:
        camera.stop()


# ----- crash: kill -9 in the middle of a check ----------------------------------------------------

def test_torn_last_line_is_cut_and_recorded_at_start(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"check_id": "a", "verdict": "spoof"}\n{"check_id": "b", "verd')
    written = AuditLog(path, 1 << 20, 2).recover()
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x.get("check_id") for x in lines] == ["a", None]
    assert lines[1]["reason"] == "torn_line_dropped"
    assert written[0]["dropped_bytes"] == len('{"check_id": "b", "verd')


def test_a_kill_during_a_check_leaves_a_parseable_log_and_the_check_recorded_interrupted(
        tmp_path, cli_bundle):
    import os
    import signal
    import subprocess
    import sys

    config = _cli_config(tmp_path, cli_bundle)
    audit_path = tmp_path / "audit.jsonl"
    marker = audit_path.with_name("audit.jsonl.inflight")

    def start():
        proc = subprocess.Popen(
            [sys.executable, "-m", "flashfas_edge.cli", "serve", "--sim", "--config",
             str(config), "--log-level", "warning"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        url = proc.stdout.readline().split("listening on ", 1)[1].strip()
        deadline = time.monotonic() + 120
        while httpx.get(f"{url}/v1/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        return proc, url

    key_auth = {"Authorization": "Bearer " + "k" * 48}
    proc, url = start()
    try:
        assert httpx.post(f"{url}/v1/liveness", headers=key_auth, timeout=30).status_code == 200
        def doomed_check() -> None:
            with pytest.raises(httpx.TransportError):  # the daemon dies before it answers
                httpx.post(f"{url}/v1/liveness", headers=key_auth, timeout=30)

        pending = threading.Thread(target=doomed_check, daemon=True)
        pending.start()
        deadline = time.monotonic() + 10
        while not marker.exists():
            assert time.monotonic() < deadline, "the check never started"
            time.sleep(0.002)
        interrupted_id = json.loads(marker.read_text())["check_id"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = audit_path.read_text().splitlines()
    assert all(json.loads(line) for line in before)  # nothing torn by the kill
    proc, url = start()
    try:
        lines = [json.loads(x) for x in audit_path.read_text().splitlines()]
        assert not marker.exists()
        assert len(lines) == len(before) + 1
        assert lines[-1]["check_id"] == interrupted_id
        assert lines[-1]["reason"] == "interrupted" and lines[-1]["verdict"] is None
        assert interrupted_id not in {x["check_id"] for x in lines[:-1]}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
