"""The daemon's runtime loads only what it runs: no TensorRT build tooling, no training code, no
torch. Checked in a fresh interpreter, after building a real service (default bundle on ONNX
Runtime, simulated kiosk) and importing the HTTP server and the real camera."""

from __future__ import annotations

import json
import subprocess
import sys

# Module prefixes the daemon never runs.
NOT_AT_RUNTIME = ("flashfas_edge.inference.trt_build", "flashfas_edge.train", "torch")

_PROBE = """
import json, sys
{imports}
print(json.dumps(sorted(m for m in sys.modules
                        if m.startswith(("flashfas_edge", "torch", "tensorrt")))))
"""

_DAEMON = """
from flashfas_edge.daemon import server  # noqa: F401 - the HTTP daemon itself
from flashfas_edge.kiosk.assembly import build_kiosk
from flashfas_edge.capture import v4l2_camera  # noqa: F401 - the real kiosk's camera
from flashfas_edge.config import load_config

service = build_kiosk(load_config(None, sim=True)).service
"""


def loaded_modules(imports: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(imports=imports)],
        capture_output=True, text=True, timeout=300, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def forbidden(modules: list[str]) -> list[str]:
    return [m for m in modules if m == "torch" or m.startswith(NOT_AT_RUNTIME)]


def test_daemon_runtime_loads_no_build_tooling_training_code_or_torch():
    modules = loaded_modules(_DAEMON)
    assert "flashfas_edge.inference.ort_backend" in modules  # it really built a backend
    assert "flashfas_edge.pipeline.pipeline" in modules
    assert forbidden(modules) == []


def test_the_probe_sees_build_tooling_when_it_is_imported():
    modules = loaded_modules("import flashfas_edge.inference.trt_build.engines")
    assert "flashfas_edge.inference.trt_build.engines" in forbidden(modules)
