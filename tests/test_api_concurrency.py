"""One camera, one flash: checks run one at a time, the rest queue or get 429; none is lost or
mixed up; a check that overruns or loses its camera frees the camera for the next one."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from api_harness import (
    API_KEY,
    double_config,
    double_service,
    serve_double,
    serve_in_thread,
)

AUTH = {"Authorization": f"Bearer {API_KEY}"}



def _fire(url: str, n: int) -> list[tuple[str, httpx.Response]]:
    def one(i: int) -> tuple[str, httpx.Response]:
        ref = f"req-{i:02d}"
        with httpx.Client(base_url=url, timeout=30) as http:
            return ref, http.post("/v1/liveness", headers=AUTH, json={"client_ref": ref})

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _audit(running) -> dict[str, dict]:
    lines = running.config.daemon.audit.path.read_text().splitlines()
    return {rec["check_id"]: rec for rec in map(json.loads, lines)}


def test_twenty_simultaneous_requests_run_one_at_a_time_and_the_overflow_gets_429(tmp_path):
    running, pipeline = serve_double(tmp_path, queue={"max_waiting": 3})
    try:
        answers = _fire(running.url, 20)
        ok = [(ref, r) for ref, r in answers if r.status_code == 200]
        busy = [(ref, r) for ref, r in answers if r.status_code == 429]
        assert len(ok) + len(busy) == 20, [r.status_code for _, r in answers]
        assert pipeline.max_active == 1
        assert len(ok) >= 4  # the running check + 3 waiting were admitted at least
        assert busy, "a queue of 3 cannot have admitted 20 simultaneous requests"
        for _, r in busy:
            assert r.json()["error"]["code"] == "queue_full"
            assert int(r.headers["retry-after"]) >= 1
        # none lost or mixed up: every admitted request has its own check, nonce and audit line
        audit = _audit(running)
        ids = [r.json()["check_id"] for _, r in ok]
        assert len(set(ids)) == len(ok) == pipeline.calls == len(audit)
        for ref, r in ok:
            body = r.json()
            assert audit[body["check_id"]]["client_ref"] == ref
            assert audit[body["check_id"]]["nonce"] == body["nonce"]
        assert sorted(r.json()["nonce"] for _, r in ok) == sorted(pipeline.nonces)
        metrics = httpx.get(f"{running.url}/metrics", headers=AUTH).text
        assert f'flashfas_requests_rejected_total{{code="queue_full"}} {len(busy)}' in metrics
    finally:
        running.stop()


def test_twenty_simultaneous_requests_all_answered_when_the_queue_holds_them(tmp_path):
    running, pipeline = serve_double(tmp_path, queue={"max_waiting": 19})
    try:
        answers = _fire(running.url, 20)
        assert [r.status_code for _, r in answers] == [200] * 20
        assert pipeline.max_active == 1 and pipeline.calls == 20
        waits = sorted(r.json()["queue_wait_ms"] for _, r in answers)
        assert waits[-1] > waits[0] + 100  # the last one really waited behind the others
        audit = _audit(running)
        assert {audit[r.json()["check_id"]]["client_ref"] for _, r in answers} == \
            {ref for ref, _ in answers}
    finally:
        running.stop()


def test_a_check_that_overruns_its_deadline_is_504_and_then_frees_the_camera(tmp_path):
    running, pipeline = serve_double(tmp_path, queue={"check_timeout_s": 0.3})
    try:
        pipeline.extra_sleep_s = 0.8
        with httpx.Client(base_url=running.url, timeout=10) as http:
            t0 = time.monotonic()
            r = http.post("/v1/liveness", headers=AUTH)
            assert r.status_code == 504
            assert r.json()["error"]["code"] == "check_timeout"
            assert time.monotonic() - t0 < 0.7  # answered at the deadline, not when it ended
            pipeline.extra_sleep_s = 0.0
            r = http.post("/v1/liveness", headers=AUTH)  # waits for the overrun one, then runs
            assert r.status_code == 200
            assert pipeline.max_active == 1
            assert http.get("/v1/status", headers=AUTH).json()["queue_depth"] == 0
        # the overrun check is in the audit log too, marked with what its caller was told
        statuses = [rec["http_status"] for rec in _audit(running).values()]
        assert sorted(statuses) == [200, 504]
    finally:
        running.stop()


def test_a_camera_that_stalls_mid_check_gives_503_and_the_next_check_runs(tmp_path):
    running, pipeline = serve_double(tmp_path)
    try:
        camera = running.service.camera
        with httpx.Client(base_url=running.url, timeout=10) as http:
            camera.stall()
            r = http.post("/v1/liveness", headers=AUTH)
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "camera_unavailable"
            assert r.headers["retry-after"]
            [record] = _audit(running).values()
            assert (record["http_status"], record["reason"]) == (503, "camera_unavailable")
            camera.resume()
            time.sleep(0.1)
            r = http.post("/v1/liveness", headers=AUTH)
            assert r.status_code == 200, r.text
    finally:
        running.stop()


def test_a_stalled_camera_makes_health_degraded_and_checks_503_before_queueing(tmp_path):
    running, pipeline = serve_double(tmp_path, watchdog={"frame_stale_s": 0.3})
    try:
        camera = running.service.camera
        with httpx.Client(base_url=running.url, timeout=10) as http:
            camera.stall()
            time.sleep(0.5)
            h = http.get("/v1/health")
            assert h.status_code == 503
            assert h.json()["reason"] == "camera_unavailable"
            calls = pipeline.calls
            r = http.post("/v1/liveness", headers=AUTH)
            assert r.status_code == 503 and r.json()["error"]["code"] == "camera_unavailable"
            assert pipeline.calls == calls  # refused before touching the kiosk
            camera.resume()
            time.sleep(0.1)
            assert http.get("/v1/health").status_code == 200
    finally:
        running.stop()


def test_a_broken_flash_is_503_flash_unavailable_until_it_answers_again(tmp_path):
    running, pipeline = serve_double(tmp_path)
    try:
        flash = running.service.flash
        with httpx.Client(base_url=running.url, timeout=10) as http:
            flash.broken = True
            r = http.post("/v1/liveness", headers=AUTH)
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "flash_unavailable"
            h = http.get("/v1/health")
            assert h.status_code == 503 and h.json()["reason"] == "flash_unavailable"
            flash.broken = False
            deadline = time.monotonic() + 5
            while http.get("/v1/health").status_code != 200:
                assert time.monotonic() < deadline, "the flash fault never cleared"
                time.sleep(0.1)
            assert http.post("/v1/liveness", headers=AUTH).status_code == 200
    finally:
        running.stop()


@pytest.mark.parametrize("warm_up_s", [0.5])
def test_health_is_not_ready_until_warm_up_and_self_test_finish(tmp_path, warm_up_s):
    config = double_config(tmp_path)
    service, _ = double_service(config)
    service.backend.warm_up_s = warm_up_s
    running = serve_in_thread(service, config)
    try:
        with httpx.Client(base_url=running.url, timeout=10) as http:
            h = http.get("/v1/health")
            assert h.status_code == 503
            assert h.json() == {"status": "starting", "ready": False, "reason": "warming_up"}
            r = http.post("/v1/liveness", headers=AUTH)
            assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
            assert service.wait_ready(5)
            assert service.backend.warmed.is_set()
            assert http.get("/v1/health").status_code == 200
    finally:
        running.stop()
