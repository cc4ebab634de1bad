"""The HTTP layer on a real uvicorn server: auth, bad input, health, status, metrics, OpenAPI.

The kiosk behind it is a double (tests/api_harness.py); these tests are about the API contract.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from api_harness import API_KEY, double_config, double_service, serve_in_thread

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api-http")
    config = double_config(tmp, server={"recorded_evaluation": True})
    service, pipeline = double_service(config)
    running = serve_in_thread(service, config)
    assert service.wait_ready(10)
    yield running
    running.stop()


@pytest.fixture()
def client(server):
    with httpx.Client(base_url=server.url, timeout=10) as http:
        yield http


def test_health_needs_no_key_and_says_ready(client):
    r = client.get("/v1/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "ready": True, "reason": None}


@pytest.mark.parametrize("path,method", [
    ("/v1/liveness", "POST"), ("/v1/status", "GET"), ("/metrics", "GET"),
    ("/openapi.json", "GET"), ("/v1/evaluate/recorded", "POST"),
])
def test_every_route_but_health_rejects_a_missing_key(client, path, method):
    r = client.request(method, path)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer wrong-key-0123456789"},
    {"X-API-Key": API_KEY[:-1]},
    {"Authorization": f"Basic {API_KEY}"},
    {"X-API-Key": API_KEY + "x"},
])
def test_a_wrong_key_is_rejected(client, headers):
    r = client.post("/v1/liveness", headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"


def test_a_check_answers_the_documented_fields_and_is_audited(client, server):
    r = client.post("/v1/liveness", headers={"X-API-Key": API_KEY},
                    json={"client_ref": "door-3:4711"})
    assert r.status_code == 200
    body = r.json()
    assert body["verdict"] == "spoof" and body["reason"] == "score_below_threshold"
    for key in ("check_id", "score", "threshold", "type_probs", "timings_ms", "model",
                "backend", "nonce", "queue_wait_ms"):
        assert key in body
    assert body["depth_png_base64"] is None
    lines = server.config.daemon.audit.path.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    mine = [rec for rec in records if rec["check_id"] == body["check_id"]]
    assert len(mine) == 1
    assert mine[0]["client_ref"] == "door-3:4711" and mine[0]["verdict"] == "spoof"
    assert mine[0]["model"]["sha256"] == "0" * 64
    assert "images" not in mine[0]


def test_depth_map_comes_back_as_png_when_asked(client):
    import base64

    r = client.post("/v1/liveness", headers=AUTH, json={"want_depth": True})
    assert r.status_code == 200
    png = base64.b64decode(r.json()["depth_png_base64"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_malformed_json_is_a_400_with_a_reason(client):
    r = client.post("/v1/liveness", headers={**AUTH, "Content-Type": "application/json"},
                    content=b'{"want_depth": tru')
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_json"


@pytest.mark.parametrize("body", [
    {"want_depth": "yes"}, {"want_depth": 1}, {"client_ref": 5}, {"client_ref": "bad ref!"},
    {"unknown_field": True}, [1, 2],
])
def test_wrong_types_are_a_422_naming_the_field(client, body):
    r = client.post("/v1/liveness", headers=AUTH, json=body)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]


def test_an_oversized_json_body_is_refused_before_it_is_read(client):
    r = client.post("/v1/liveness", headers={**AUTH, "Content-Type": "application/json"},
                    content=b'{"client_ref": "' + b"a" * 10_000 + b'"}')
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_an_oversized_upload_is_a_413(client, server):
    limit = server.config.daemon.server.max_upload_bytes
    r = client.post("/v1/evaluate/recorded",
                    headers={**AUTH, "Content-Type": "application/octet-stream"},
                    content=b"\0" * (limit + 1))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_a_chunked_oversized_upload_is_cut_off(client, server):
    limit = server.config.daemon.server.max_upload_bytes

    def chunks():
        sent = 0
        while sent <= limit:
            yield b"\0" * 65536
            sent += 65536

    r = client.post("/v1/evaluate/recorded",
                    headers={**AUTH, "Content-Type": "application/octet-stream"},
                    content=chunks())
    assert r.status_code == 413


def test_an_upload_with_the_wrong_content_type_is_a_415(client):
    r = client.post("/v1/evaluate/recorded", headers=AUTH, json={"frames": []})
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"


def test_unknown_routes_use_the_same_error_body(client):
    r = client.get("/v1/nothing-here", headers=AUTH)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = client.delete("/v1/liveness", headers=AUTH)
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "method_not_allowed"


def test_status_reports_versions_backend_counters_and_uptime(client):
    client.post("/v1/liveness", headers=AUTH)
    body = client.get("/v1/status", headers=AUTH).json()
    assert body["ready"] is True and body["mode"] == "real"
    assert body["backend"]["name"] == "double"
    assert body["counters"]["spoof"] >= 1
    assert body["uptime_s"] > 0
    assert body["camera"]["measured_fps"] is None or body["camera"]["measured_fps"] > 10
    assert "python" in body["versions"]


def test_metrics_are_prometheus_text(client):
    client.post("/v1/liveness", headers=AUTH)
    time.sleep(0.6)  # one fps sample
    r = client.get("/metrics", headers=AUTH)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    assert 'flashfas_checks_total{kind="camera",verdict="spoof",reason="score_below_threshold"}' \
        in text
    assert 'flashfas_stage_latency_seconds_bucket{stage="flash",le="+Inf"}' in text
    assert "flashfas_queue_depth 0" in text
    assert "flashfas_ready 1" in text
    fps_line = next(line for line in text.splitlines() if line.startswith("flashfas_camera_fps "))
    assert float(fps_line.split()[1]) > 10


def test_openapi_is_published_behind_the_key(client):
    r = client.get("/openapi.json", headers=AUTH)
    assert r.status_code == 200
    doc = r.json()
    assert {"/v1/liveness", "/v1/evaluate/recorded", "/v1/health", "/v1/status", "/metrics"} \
        <= set(doc["paths"])
    responses = doc["paths"]["/v1/liveness"]["post"]["responses"]
    assert {"200", "401", "429", "503"} <= set(responses)


def test_keep_alive_answers_are_not_held_back_by_nagle_and_delayed_ack(server):
    """Without TCP_NODELAY every keep-alive answer waits ≥ 40 ms for the client's delayed ACK."""
    import socket as socket_mod

    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.get("/v1/health")
        times_ms = []
        for _ in range(10):
            t0 = time.perf_counter()
            http.get("/v1/health")
            times_ms.append((time.perf_counter() - t0) * 1000)
    assert min(times_ms) < 20, times_ms
    from flashfas_edge.daemon.server import open_listener

    listener = open_listener(server.config)
    try:
        assert listener.sock.proto == socket_mod.IPPROTO_TCP
        assert listener.sock.getsockopt(socket_mod.IPPROTO_TCP, socket_mod.TCP_NODELAY)
    finally:
        listener.sock.close()
