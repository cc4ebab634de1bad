"""Arrows point one way (docs/ARCHITECTURE.md §7): every import inside ``flashfas_edge`` goes from a
layer to one it may use, never back up. An AST walk over the package, so imports inside functions
(the lazy ones the CLI and the factories use) count as much as those at the top of a file.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "flashfas_edge"

# The allowed directions, in one table. A module belongs to the longest key that is it or a package
# above it; it may import its own layer and the layers listed (names without "flashfas_edge.").
_BASE = {"_core", "clock", "flash_levels"}
ALLOWED: dict[str, set[str]] = {
    # leaves: the C++ core, the one clock, the flash-level rule
    "flashfas_edge": set(),  # the package root (__version__)
    "flashfas_edge._core": set(),
    "flashfas_edge.clock": set(),
    "flashfas_edge.flash_levels": set(),
    # the seams and what flows through them
    "flashfas_edge.capture": {"clock"},  # Camera + the V4L2 camera
    "flashfas_edge.flash": {"clock", "flash_levels"},  # FlashDriver
    "flashfas_edge.face": {"capture"},  # LandmarkProvider reads Frames
    "flashfas_edge.data": set(),  # Session + dataset format
    "flashfas_edge.inference": {"flash_levels"},  # bundle + Backends (the runtime)
    # TensorRT build tooling: never imported by the runtime; `engines verify --data` reads a
    # dataset through the training cache
    "flashfas_edge.inference.trt_build": {"inference", "train", *_BASE},
    # one check over the four seams
    "flashfas_edge.pipeline": {"capture", "flash", "face", "data", "inference", *_BASE},
    # the daemon's configuration tree embeds the pipeline's sections
    "flashfas_edge.config": {"pipeline", "face", "flash_levels"},
    # tools around the runtime
    "flashfas_edge.sim": {"capture", "flash", "face", "data", *_BASE},
    "flashfas_edge.train": {"capture", "flash", "face", "data", "inference", "pipeline", *_BASE},
    # the daemon's core: service, check queue, audit log, metrics, watchdog — no HTTP, and only
    # the seams' protocols (never a concrete kiosk, never training code or build tooling)
    "flashfas_edge.daemon": {"capture", "flash", "data", "inference", "pipeline", "config",
                             *_BASE},
    # the HTTP room: routes, bodies, errors, auth, limits, the client; over the daemon's core
    "flashfas_edge.api": {"", "daemon", "capture", "flash", "data", "inference", "pipeline",
                          "config", *_BASE},
    # kiosk assembly: camera + flash + landmarks + backend + pipeline from the config, real or
    # simulated, and the service over them
    "flashfas_edge.kiosk": {"daemon", "capture", "flash", "face", "data", "inference",
                            "pipeline", "config", "sim", *_BASE},
    # the entry points that wire the rooms together: the server (HTTP + kiosk + daemon) and the
    # daemon's commands (serve, and the client commands check and sim)
    "flashfas_edge.daemon.server": {"daemon", "api", "kiosk", "config", *_BASE},
    "flashfas_edge.daemon.cli": {"daemon", "daemon.server", "api", "kiosk", "config",
                                 "inference", *_BASE},
    # operator tools: record and demo, on top of everything the daemon runs
    "flashfas_edge.tools": {"daemon", "api", "kiosk", "capture", "flash", "data", "inference",
                            "pipeline", "config", "sim", *_BASE},
    # site calibration: drives the camera and flash through their protocols, scores live checks
    # with the pipeline; builds the kiosk's devices (real, or simulated) through kiosk assembly,
    # never the simulator itself. Nothing in the runtime imports it but the CLI (by name).
    "flashfas_edge.calibrate": {"capture", "flash", "face", "pipeline", "inference", "config",
                                "kiosk", *_BASE},
    "flashfas_edge.cli": {""},  # loads the command modules by name (importlib)
}
# Single module-to-module exceptions, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("flashfas_edge.sim.cli", "flashfas_edge.train.render_cache"):
        "`synth --aligned-cache` hands the renderer to the training cache writer",
    ("flashfas_edge.calibrate.browser_flash", "flashfas_edge.api.flash_routes"):
        "calibrate runs with the daemon stopped: it serves the browser flash client's routes",
    ("flashfas_edge.calibrate.browser_flash", "flashfas_edge.api.auth"):
        "... with the daemon's own API key",
}
# Layers the daemon's runtime must never reach, whatever the table says.
NEVER: dict[str, set[str]] = {
    "flashfas_edge.inference": {"flashfas_edge.train", "flashfas_edge.inference.trt_build"},
    "flashfas_edge.capture": {"flashfas_edge.sim"},
    "flashfas_edge.flash": {"flashfas_edge.sim"},
    "flashfas_edge.face": {"flashfas_edge.pipeline"},
    "flashfas_edge.calibrate": {"flashfas_edge.sim"},
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str, root: Path) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    base = root / rel
    # a source module, a package, or the compiled core (known by its type stub)
    return any(p.is_file() for p in (base.with_suffix(".py"), base / "__init__.py",
                                     base.with_suffix(".pyi")))


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, imported module) for each package import in ``path``; relative ones resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = root.name
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == top]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != top:
                continue
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub, root) else target))
    return found


def layer_of(module: str) -> str | None:
    """The longest table key that is ``module`` or a package above it (the root only itself)."""
    keys = [k for k in ALLOWED
            if module == k or (k != "flashfas_edge" and module.startswith(k + "."))]
    return max(keys, key=len) if keys else None


def violations(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        layer = layer_of(importer)
        where = f"{path.relative_to(root.parent)}"
        if layer is None:
            out.append(f"{where}: {importer} is in no layer of the table")
            continue
        allowed = {layer} | {f"flashfas_edge.{n}" if n else "flashfas_edge" for n in ALLOWED[layer]}
        for line, imported in imports_of(path, root):
            target = layer_of(imported)
            never = [n for k, ns in NEVER.items() if layer == k for n in ns
                     if imported == n or imported.startswith(n + ".")]
            if never:
                out.append(f"{where}:{line}: {importer} imports {imported} (never allowed)")
            elif target not in allowed and (importer, imported) not in EXCEPTIONS:
                out.append(f"{where}:{line}: {importer} ({layer}) imports {imported} ({target})")
    return out


def test_every_import_in_the_package_points_the_allowed_way():
    assert violations(PACKAGE_DIR) == []


def test_every_exception_is_still_needed():
    used = {(module_name(p, PACKAGE_DIR), m) for p in PACKAGE_DIR.rglob("*.py")
            for _, m in imports_of(p, PACKAGE_DIR)}
    assert set(EXCEPTIONS) <= used


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "flashfas_edge"
    for rel, text in {"__init__.py": "", **files}.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.relative_to(root).parents:
            (root / parent / "__init__.py").touch()
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "flagged"),
    [
        # a device module importing the simulator, at the top and inside a function
        ({"sim/kiosk.py": "", "capture/cam.py": "from flashfas_edge.sim.kiosk import SimKiosk\n"},
         "capture/cam.py:1"),
        ({"sim/kiosk.py": "", "flash/drv.py": "def f():\n    from ..sim import kiosk\n"},
         "flash/drv.py:2"),
        # the runtime importing training code
        ({"train/splits.py": "", "inference/eng.py": "import flashfas_edge.train.splits\n"},
         "inference/eng.py:1"),
        # face reaching up into the pipeline
        ({"pipeline/config.py": "", "face/f.py": "from flashfas_edge.pipeline import config\n"},
         "face/f.py:1"),
        # a module outside every layer
        ({"utils.py": "import os\n"}, "utils.py: flashfas_edge.utils is in no layer"),
    ],
)
def test_a_bad_import_is_flagged(tmp_path, files, flagged):
    found = violations(_tree(tmp_path, files))
    assert any(flagged in v for v in found), found


def test_a_good_import_is_not_flagged(tmp_path):
    root = _tree(tmp_path, {"capture/base.py": "", "clock.py": "",
                            "sim/cam.py": "from flashfas_edge.capture.base import Frame\n",
                            "capture/v.py": "from ..clock import monotonic_us\n"})
    assert violations(root) == []
