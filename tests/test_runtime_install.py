"""`make demo` installs the runtime set only (no dev or train extra): the daemon, the client and
the demo must import with nothing but the runtime dependencies of pyproject.toml."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# What `flashfas-edge serve`, `check`, `demo` and the simulated kiosk load (heavy imports happen
# inside the commands, so import the modules that run them).
RUNTIME_MODULES = [
    "flashfas_edge.cli", "flashfas_edge.api.app", "flashfas_edge.daemon.server",
    "flashfas_edge.api.client", "flashfas_edge.tools.demo", "flashfas_edge.kiosk.assembly",
    "flashfas_edge.kiosk.sim_scene", "flashfas_edge.sim.kiosk_camera",
    "flashfas_edge.capture.v4l2_camera", "flashfas_edge.sim.kiosk_flash",
    "flashfas_edge.face.mtcnn_landmarks", "flashfas_edge.inference.ort_backend",
    "flashfas_edge.inference.factory", "flashfas_edge.pipeline.pipeline",
]

# Installed here but not by the runtime set: importing one of these fails, as in a runtime venv.
_BLOCKER = """
import importlib.abc, json, sys
blocked = set(json.loads(sys.argv[1]))
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the runtime set)")
        return None
sys.meta_path.insert(0, Blocker())
for module in json.loads(sys.argv[2]):
    __import__(module)
print(json.dumps(sorted({n.split(".")[0] for n in sys.modules})))
"""


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _runtime_closure() -> set[str]:
    """The distributions `pip install .` pulls in: the runtime requirements, recursively, without
    any extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    seen: set[str] = {"flashfas-edge"}
    todo = [_name(r) for r in project["dependencies"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r.replace("'", '"')]
    return seen


def test_runtime_code_imports_with_the_runtime_dependencies_only() -> None:
    allowed = _runtime_closure()
    blocked = sorted(
        module for module, dists in metadata.packages_distributions().items()
        if not {d.lower().replace("_", "-") for d in dists} & allowed
    )
    assert "torch" in blocked or "torch" not in metadata.packages_distributions()
    result = subprocess.run(
        [sys.executable, "-c", _BLOCKER, json.dumps(blocked), json.dumps(RUNTIME_MODULES)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "torch" not in json.loads(result.stdout.splitlines()[-1])
