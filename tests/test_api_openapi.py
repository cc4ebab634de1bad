"""The published OpenAPI document (docs/openapi.json) is the one the daemon serves.

Regenerate after an API change with: python tests/test_api_openapi.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from api_harness import double_config, double_service  # noqa: E402

from flashfas_edge.api.app import create_app  # noqa: E402
from flashfas_edge.daemon.audit_log import AuditLog  # noqa: E402

PUBLISHED = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


def served_document(tmp: Path) -> dict:
    config = double_config(tmp)
    service, _ = double_service(config)
    app = create_app(config, service, AuditLog(tmp / "a.jsonl", 4096, 1), "x" * 32)
    return json.loads(json.dumps(app.openapi()))


def test_published_openapi_matches_the_served_one(tmp_path):
    assert PUBLISHED.is_file(), "docs/openapi.json is missing; run python tests/test_api_openapi.py"
    assert json.loads(PUBLISHED.read_text()) == served_document(tmp_path), \
        "docs/openapi.json is stale; run python tests/test_api_openapi.py"


def test_every_error_response_is_documented_with_the_error_body(tmp_path):
    doc = served_document(tmp_path)
    post = doc["paths"]["/v1/liveness"]["post"]
    for status in ("400", "401", "413", "422", "429", "503", "504"):
        schema = post["responses"][status]["content"]["application/json"]["schema"]
        assert schema["$ref"].endswith("/ErrorResponse")
    assert "securitySchemes" in doc["components"]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        document = served_document(Path(tmp))
    PUBLISHED.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    print(f"wrote {PUBLISHED}")
