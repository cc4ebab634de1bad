"""The API contract, checked by clients nobody here wrote and by the ones we ship.

schemathesis (property-based requests generated from docs/openapi.json, every check on) runs
against the daemon on the simulated kiosk; the JavaScript and Python clients call only what the
document describes, and the examples in docs/API.md run against the same daemon.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from api_harness import API_KEY, serve_in_thread, write_key_file
from sim_bundles import random_weight_bundle

from flashfas_edge.api.openapi_doc import check_examples
from flashfas_edge.config import load_config
from flashfas_edge.kiosk.assembly import build_kiosk
from flashfas_edge.pipeline.result import Reason

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"
JS_CLIENT = ROOT / "clients" / "js" / "flashfas-edge-client.mjs"
PY_CLIENT = ROOT / "flashfas_edge" / "api" / "client.py"
API_DOC = ROOT / "docs" / "API.md"
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    key = write_key_file(tmp)
    config = load_config(None, sim=True, overrides={
        "server": {"port": 0, "api_key_file": str(key), "recorded_evaluation": True},
        "audit": {"path": str(tmp / "audit.jsonl")},
        "model": {"bundle": str(random_weight_bundle(tmp / "bundle")), "threads": 1},
        "kiosk": {"camera": {"width": 320, "height": 240}},
        "queue": {"max_waiting": 8},
    })
    kiosk = build_kiosk(config)
    service = kiosk.service
    running = serve_in_thread(service, config, kiosk.scene_controls)
    assert service.wait_ready(60), service.health()
    yield running, key
    running.stop()


def test_schemathesis_finds_no_difference_between_the_daemon_and_its_document(daemon, tmp_path):
    running, _ = daemon
    st = Path(sys.executable).parent / "schemathesis"
    result = subprocess.run(
        [str(st), "--config-file", str(ROOT / "tests" / "schemathesis.toml"), "run",
         str(DOCUMENT), "--url", running.url, "-H", f"Authorization: Bearer {API_KEY}",
         "--checks", "all", "--max-examples", "12", "--workers", "1", "--seed", "20261205",
         "--phases", "coverage,fuzzing,stateful", "--request-timeout", "30"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)  # its cache: not in the tree
    tail = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    operations = re.search(r"Tested:\s+(\d+)", result.stdout)
    assert operations and int(operations.group(1)) == 7, tail  # every route of the document


def _document() -> dict:
    return json.loads(DOCUMENT.read_text())


def _routes_called(source: str, pattern: str) -> set[tuple[str, str]]:
    return {(m.group(1).lower(), m.group(2)) for m in re.finditer(pattern, source)}


def test_both_clients_call_only_routes_the_document_describes(daemon):
    running, _ = daemon
    paths = _document()["paths"]
    documented = {(method, path) for path, ops in paths.items() for method in ops}
    # the simulated kiosk's daemon documents its one extra route, PUT /v1/sim/scene
    served = httpx.get(f"{running.url}/openapi.json", headers={"X-API-Key": API_KEY}).json()
    sim_documented = {(m, p) for p, ops in served["paths"].items() for m in ops}
    assert sim_documented - documented == {("put", "/v1/sim/scene")}
    js = _routes_called(JS_CLIENT.read_text(), r'#call\("([A-Z]+)", "(/[^"]*)"')
    py = _routes_called(PY_CLIENT.read_text(), r'_call\("([A-Z]+)", "(/[^"]*)"')
    assert len(js) == 4 and len(py) >= 5
    assert js <= documented, js - documented
    assert py <= sim_documented, py - sim_documented


def test_the_retry_reasons_clients_switch_on_are_the_documents():
    doc_reasons = set(_document()["components"]["schemas"]["Reason"]["enum"])
    assert doc_reasons == {r.value for r in Reason}
    answered_retry = {example["value"]["reason"] for example in check_examples().values()
                      if example["value"]["verdict"] == "retry"}
    js_list = re.search(r"RETRY_REASONS = Object\.freeze\(\[(.*?)\]\)", JS_CLIENT.read_text(),
                        re.DOTALL)
    assert js_list is not None
    assert set(re.findall(r'"([a-z_]+)"', js_list.group(1))) == answered_retry
    examples = _document()["paths"]["/v1/liveness"]["post"]["responses"]["200"]["content"][
        "application/json"]["examples"]
    assert {e["value"]["reason"] for e in examples.values()} == answered_retry | {
        "score_above_threshold", "score_below_threshold", "challenge_mismatch"}


def test_metrics_and_uploads_document_their_error_bodies_and_media_types():
    paths = _document()["paths"]
    unauthorized = paths["/metrics"]["get"]["responses"]["401"]["content"]
    assert list(unauthorized) == ["application/json"]
    upload = paths["/v1/evaluate/recorded"]["post"]
    assert set(upload["requestBody"]["content"]) == {
        "application/x-npz", "application/zip", "application/octet-stream"}
    assert {"415", "422", "429"} <= set(upload["responses"])
    assert "Retry-After" in upload["responses"]["429"]["headers"]


def _api_doc_block(language: str) -> str:
    section = API_DOC.read_text().split("## Clients", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{language}\n(.*?)```", section, re.DOTALL).group(1)  # type: ignore[union-attr]


@pytest.mark.skipif(NODE is None, reason="node is not installed (needed for the JS client)")
def test_the_js_client_and_its_docs_example_run_against_the_daemon(daemon, tmp_path):
    running, key = daemon
    client_url = JS_CLIENT.as_uri()
    script = tmp_path / "drive.mjs"
    script.write_text(f"""
import {{ FlashfasEdgeClient, FlashfasEdgeError, mayOpenDoor }} from "{client_url}";
const edge = new FlashfasEdgeClient({{ baseUrl: "{running.url}", apiKey: "{API_KEY}",
                                       timeoutMs: 30000 }});
const out = {{}};
out.health = await edge.health();
out.status_mode = (await edge.status()).mode;
out.check = await edge.check({{ clientRef: "js-1" }});
out.may_open = mayOpenDoor(out.check);
try {{ await new FlashfasEdgeClient({{ baseUrl: "{running.url}", apiKey: "wrong" }}).status(); }}
catch (err) {{ out.wrong_key = [err instanceof FlashfasEdgeError, err.status, err.code]; }}
try {{ await edge.evaluateRecorded(new Uint8Array([1, 2, 3])); }}
catch (err) {{ out.bad_upload = [err.status, err.code]; }}
out.evaluation_may_open = mayOpenDoor({{ outcome: "live", access_decision: false }});
console.log(JSON.stringify(out));
""")
    result = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["health"]["ready"] is True and out["status_mode"] == "sim"
    assert out["check"]["verdict"] in {"live", "spoof", "retry"}
    assert out["may_open"] == (out["check"]["verdict"] == "live")
    assert out["wrong_key"] == [True, 401, "unauthorized"]
    assert out["bad_upload"] == [422, "invalid_session"]
    assert out["evaluation_may_open"] is False

    example = _api_doc_block("js")
    example = example.replace('"./flashfas-edge-client.mjs"', f'"{client_url}"')
    example = example.replace('"http://127.0.0.1:8787"', f'"{running.url}"')
    example = example.replace('"/etc/flashfas-edge/api-key"', f'"{key}"')
    (tmp_path / "example.mjs").write_text(example)
    result = subprocess.run([NODE, str(tmp_path / "example.mjs")], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.match(r"^(open [0-9a-f]{32}|try again: [a-z_]+|denied: [a-z_]+)$",
                    result.stdout.strip()), result.stdout


def test_the_python_docs_example_runs_against_the_daemon(daemon, tmp_path):
    running, key = daemon
    example = _api_doc_block("python")
    example = example.replace('"http://127.0.0.1:8787"', f'"{running.url}"')
    example = example.replace('"/etc/flashfas-edge/api-key"', f'"{key}"')
    result = subprocess.run([sys.executable, "-c", example], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert re.match(r"^(open [0-9a-f]{32}|(retry|spoof) [a-z_]+)$", result.stdout.strip()), \
        result.stdout


def test_head_health_answers_like_get(daemon):
    running, _ = daemon
    get = httpx.get(f"{running.url}/v1/health", timeout=10)
    head = httpx.head(f"{running.url}/v1/health", timeout=10)
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == "application/json"
