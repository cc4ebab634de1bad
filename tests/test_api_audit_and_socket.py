"""The audit log rotates and keeps no face image unless configured; the API can listen on a Unix
socket instead of TCP."""

from __future__ import annotations

import json
import stat

import httpx
from api_harness import API_KEY, double_config, double_service, serve_in_thread

from flashfas_edge.daemon.audit_log import AuditLog
from flashfas_edge.pipeline.result import CheckResult, Reason, Verdict

AUTH = {"X-API-Key": API_KEY}


def _result(i: int) -> CheckResult:
    return CheckResult(f"id{i:04d}", Verdict.SPOOF, Reason.SCORE_BELOW_THRESHOLD, 0.1, 0.5,
                       timings_ms={"total": 1.0}, model={"name": "m", "manifest_sha256": "ab"})


def test_the_audit_log_rotates_and_keeps_a_bounded_number_of_files(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl", max_bytes=4096, backups=2)
    for i in range(200):
        log.record(_result(i), kind="camera", queue_wait_ms=0.0)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for name in files:
        assert (tmp_path / name).stat().st_size <= 4096
    newest = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert newest[-1]["check_id"] == "id0199"
    older = [json.loads(x) for x in (tmp_path / "audit.jsonl.1").read_text().splitlines()]
    assert older[-1]["check_id"] == f"id{int(newest[0]['check_id'][2:]) - 1:04d}"  # no gap
    assert stat.S_IMODE((tmp_path / "audit.jsonl").stat().st_mode) == 0o640


def test_no_face_image_is_stored_unless_configured(tmp_path):
    config = double_config(tmp_path, audit={"store_images": False,
                                            "images_dir": str(tmp_path / "images")})
    service, _ = double_service(config)
    running = serve_in_thread(service, config)
    try:
        assert service.wait_ready(10)
        r = httpx.post(f"{running.url}/v1/liveness", headers=AUTH)
        assert r.status_code == 200
        assert not (tmp_path / "images").exists()
        line = json.loads(config.daemon.audit.path.read_text().splitlines()[-1])
        assert "images" not in line
    finally:
        running.stop()


def test_frames_are_stored_beside_the_log_when_configured(tmp_path):
    images = tmp_path / "images"
    config = double_config(tmp_path, audit={"store_images": True, "images_dir": str(images)})
    service, _ = double_service(config)
    running = serve_in_thread(service, config)
    try:
        assert service.wait_ready(10)
        r = httpx.post(f"{running.url}/v1/liveness", headers=AUTH)
        check_id = r.json()["check_id"]
        line = json.loads(config.daemon.audit.path.read_text().splitlines()[-1])
        assert line["images"] and all(n.startswith(check_id) for n in line["images"])
        for name in line["images"]:
            assert (images / name).read_bytes()[:4] == b"\x89PNG"
    finally:
        running.stop()


def test_the_api_listens_on_a_unix_socket_when_configured(tmp_path):
    path = tmp_path / "api.sock"
    # an LED-panel kiosk: the browser display flash needs TCP (its WebSocket), so the config
    # refuses a Unix socket with it (test_display_flash_config.py)
    config = double_config(tmp_path, server={"unix_socket": str(path)},
                           kiosk={"flash": {"kind": "led_serial"}})
    service, _ = double_service(config)
    running = serve_in_thread(service, config)
    try:
        assert running.url == f"unix:{path}"
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
        assert service.wait_ready(10)
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://daemon") as http:
            assert http.get("/v1/health").status_code == 200
            assert http.post("/v1/liveness").status_code == 401
            assert http.post("/v1/liveness", headers=AUTH).json()["verdict"] == "spoof"
        from flashfas_edge.api.client import LivenessClient

        with LivenessClient(f"unix:{path}", API_KEY) as client:  # what `check --url unix:` uses
            assert client.check()["verdict"] == "spoof"
    finally:
        running.stop()
