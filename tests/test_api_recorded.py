"""POST /v1/evaluate/recorded on a real uvicorn server with the real pipeline and ONNX Runtime:
sessions rendered by the simulator and written by the dataset writer go through steps 4–10;
corrupt, oversized, inconsistent and zip-bomb uploads are a 4xx naming what is wrong.

The bundle here has random weights (only the plumbing is under test); decisions of the trained
default bundle are tested through the demo and test_api_product.py.
"""

from __future__ import annotations

import io
import json
import zipfile

import httpx
import numpy as np
import pytest
from api_harness import (
    API_KEY,
    SleepingFlash,
    TickingCamera,
    double_config,
    live_session_file,
    serve_in_thread,
)

from flashfas_edge import _core
from flashfas_edge.api import session_upload
from flashfas_edge.daemon.service import LivenessService
from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.inference.ort_backend import OrtBackend
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle
from flashfas_edge.kiosk.recording import CheckRecording
from flashfas_edge.pipeline.pipeline import Pipeline

AUTH = {"Authorization": f"Bearer {API_KEY}"}
NPZ = {**AUTH, "Content-Type": "application/x-npz"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recorded")
    folder = write_synthetic_bundle(tmp / "bundle", n0=5, input_size=64)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["normalisation"] = {"method": _core.NORMALISATION}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    backend = OrtBackend(folder, intra_op_threads=1)
    config = double_config(tmp, server={"recorded_evaluation": True})
    recording = CheckRecording(TickingCamera(), SleepingFlash())
    pipeline = Pipeline(recording.camera, recording.flash, GroundTruthLandmarks(), backend,
                        config.pipeline)
    service = LivenessService(
        recording.camera.inner, recording.flash.inner, recording, backend, pipeline,
        mode="real", frame_stale_s=2.0,
        model_identity={"name": backend.bundle.name,
                        "manifest_sha256": backend.bundle.manifest_sha256})
    running = serve_in_thread(service, config)
    assert service.wait_ready(30)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def session_bytes(tmp_path_factory):
    return live_session_file(tmp_path_factory.mktemp("s"))


def _members(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw)) as npz:
        return {k: npz[k] for k in npz.files}


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            zf.writestr(name + ".npy", member.getvalue())
    return buf.getvalue()


def test_a_recorded_session_is_evaluated_never_decided_and_audited_apart(server, session_bytes):
    before = httpx.get(f"{server.url}/v1/status", headers=AUTH).json()
    r = httpx.post(f"{server.url}/v1/evaluate/recorded", headers=NPZ, content=session_bytes,
                   timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    # an evaluation a kiosk app cannot mistake for a verdict
    assert "verdict" not in body and "check_id" not in body
    assert body["access_decision"] is False
    assert body["outcome"] in {"live", "spoof", "retry"}
    assert body["score"] is not None and 0.0 <= body["score"] <= 1.0, body
    assert "infer" in body["timings_ms"]
    assert body["model"]["sha256"] == server.service.backend.bundle.manifest_sha256
    audit = [json.loads(x) for x in server.config.daemon.audit.path.read_text().splitlines()]
    last = audit[-1]
    assert last["check_id"] == body["evaluation_id"] and last["kind"] == "recorded_evaluation"
    assert last["verdict"] is None and last["outcome"] == body["outcome"]
    assert last["access_decision"] is False
    # counted apart: the checks' counters do not move
    after = httpx.get(f"{server.url}/v1/status", headers=AUTH).json()
    assert after["counters"] == before["counters"]
    assert sum(after["evaluations"].values()) == sum(before["evaluations"].values()) + 1
    metrics = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    assert f'flashfas_evaluations_total{{outcome="{body["outcome"]}"' in metrics
    assert 'flashfas_checks_total{kind="recorded' not in metrics


@pytest.mark.parametrize("mutate,field", [
    (lambda a: a.update({"s0000/frames": a["s0000/frames"].astype(np.float32)}), "frames"),
    (lambda a: a.update({"s0000/order": np.array([0, 0, 1, 2, 3])}), "order"),
    (lambda a: a.pop("s0000/flash_onsets_us"), "flash_onsets_us"),
    (lambda a: a.update({"s0000/frame_times_us": a["s0000/frame_times_us"][::-1].copy()}),
     "frame_times_us"),
    (lambda a: a.update({"s0000/flash_intensity": np.full(5, 2.0, np.float32)}),
     "flash_intensity"),
    (lambda a: a.update({"s0000/landmarks": np.full((5, 5, 2), np.nan, np.float32)}),
     "landmarks"),
])
def test_an_inconsistent_session_is_a_422_naming_the_field(server, session_bytes, mutate, field):
    arrays = _members(session_bytes)
    mutate(arrays)
    r = httpx.post(f"{server.url}/v1/evaluate/recorded", headers=NPZ, content=_pack(arrays),
                   timeout=30)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_session"
    assert field in error["message"]


@pytest.mark.parametrize("payload", [
    b"", b"not a zip at all", b"PK\x03\x04" + b"\0" * 100,
])
def test_corrupt_uploads_are_a_422(server, payload):
    r = httpx.post(f"{server.url}/v1/evaluate/recorded", headers=NPZ, content=payload)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_session"


def test_a_truncated_session_file_is_a_422(server, session_bytes):
    r = httpx.post(f"{server.url}/v1/evaluate/recorded", headers=NPZ,
                   content=session_bytes[: len(session_bytes) // 2])
    assert r.status_code == 422


def test_a_pickle_or_unknown_member_is_refused_before_numpy_reads_it(server, session_bytes):
    arrays = _members(session_bytes)
    raw = _pack({**arrays, "s0000/../../etc/passwd": np.zeros(1)})
    r = httpx.post(f"{server.url}/v1/evaluate/recorded", headers=NPZ, content=raw)
    assert r.status_code == 422 and "unexpected member" in r.json()["error"]["message"]
    raw = _pack({**arrays, "s0001/frames": arrays["s0000/frames"]})  # two sessions
    assert httpx.post(f"{server.url}/v1/evaluate/recorded", headers=NPZ,
                      content=raw).status_code == 422


def test_a_zip_bomb_is_refused_by_its_declared_size(server, monkeypatch):
    monkeypatch.setattr(session_upload, "MAX_UNPACKED_BYTES", 1024 * 1024)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        member = io.BytesIO()
        np.lib.format.write_array(member, np.zeros((8, 512, 512, 3), np.uint8))
        zf.writestr("s0000/frames.npy", member.getvalue())
    assert len(buf.getvalue()) < 100_000  # 6 MiB of frames in a few KiB
    r = httpx.post(f"{server.url}/v1/evaluate/recorded", headers=NPZ, content=buf.getvalue())
    assert r.status_code == 422 and "unpack" in r.json()["error"]["message"]
