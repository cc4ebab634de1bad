"""The record written beside built TensorRT engines, and the check that refuses stale ones.

An engine is only valid for the exact TensorRT version and GPU compute capability that built it,
and for the ONNX file it came from (docs/ARCHITECTURE.md §4). ``engine_manifest.json`` records
those facts;
:func:`check_engines` compares them with the running machine and the loaded bundle. Any difference
is an :class:`EngineRebuildError` — the daemon never silently runs an engine it cannot vouch for.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flashfas_edge.inference.bundle import Bundle, BundleError, sha256_of_file
from flashfas_edge.inference.gpu_environment import GpuEnvironment

ENGINE_FORMAT_VERSION = 1
ENGINE_MANIFEST_NAME = "engine_manifest.json"
ENGINES_SUBDIR = "tensorrt"  # engines sit beside the ONNX files: <bundle>/tensorrt/
PRECISIONS = ("fp16", "fp32")


class EngineRebuildError(BundleError):
    """Engines are missing, altered or built for another TensorRT/GPU/ONNX: rebuild them."""


def default_engines_dir(bundle_dir: str | Path) -> Path:
    return Path(bundle_dir) / ENGINES_SUBDIR


def rebuild_hint(bundle: Bundle) -> str:
    return f"rebuild: engines/build_engines.sh --bundle {bundle.directory}"


@dataclass(frozen=True)
class EngineModule:
    file: str
    sha256: str
    onnx_sha256: str  # sha256 of the bundle's (FP32) ONNX file this engine was built from
    built_from: str = ""  # the ONNX actually fed to the builder (an FP16 conversion on TRT ≥ 11)


@dataclass(frozen=True)
class EngineManifest:
    bundle_name: str
    bundle_manifest_sha256: str
    tensorrt_version: str
    compute_capability: str
    device_name: str
    precision: str
    builder: str  # "trtexec" | "tensorrt-python"
    batch_min: int
    batch_opt: int
    batch_max: int
    modules: dict[str, EngineModule]
    dla_core: int | None = None
    created: str = ""
    format_version: int = ENGINE_FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def write(self, engines_dir: Path) -> Path:
        path = Path(engines_dir) / ENGINE_MANIFEST_NAME
        path.write_text(self.to_json())
        return path


def read_engine_manifest(engines_dir: str | Path) -> EngineManifest:
    path = Path(engines_dir) / ENGINE_MANIFEST_NAME
    if not path.is_file():
        raise EngineRebuildError(f"{path}: no engine manifest — engines were never built here")
    try:
        data = json.loads(path.read_text())
        if data.get("format_version") != ENGINE_FORMAT_VERSION:
            raise EngineRebuildError(
                f"{path}: engine manifest format_version {data.get('format_version')} is not "
                f"{ENGINE_FORMAT_VERSION}"
            )
        modules = {name: EngineModule(**spec) for name, spec in data.pop("modules").items()}
        return EngineManifest(modules=modules, **data)
    except (json.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
        raise EngineRebuildError(f"{path}: unreadable engine manifest ({exc})") from exc


def check_engines(
    engines_dir: str | Path,
    bundle: Bundle,
    environment: GpuEnvironment,
    *,
    precision: str | None = None,
    check_engine_hashes: bool = True,
) -> EngineManifest:
    """Return the manifest if every engine fits this bundle and machine; else EngineRebuildError."""
    engines_dir = Path(engines_dir)
    manifest = read_engine_manifest(engines_dir)
    path = engines_dir / ENGINE_MANIFEST_NAME
    hint = rebuild_hint(bundle)
    if environment.tensorrt_version and manifest.tensorrt_version != environment.tensorrt_version:
        raise EngineRebuildError(
            f"{path}: engines were built by TensorRT {manifest.tensorrt_version}, this machine "
            f"runs TensorRT {environment.tensorrt_version} — {hint}"
        )
    if manifest.compute_capability != environment.compute_capability:
        raise EngineRebuildError(
            f"{path}: engines were built for compute capability {manifest.compute_capability} "
            f"({manifest.device_name}), this GPU is {environment.compute_capability} "
            f"({environment.device_name}) — {hint}"
        )
    if precision is not None and manifest.precision != precision:
        raise EngineRebuildError(
            f"{path}: engines are {manifest.precision}, {precision} was asked for — {hint}"
        )
    missing = sorted(set(bundle.modules) - set(manifest.modules))
    if missing:
        raise EngineRebuildError(f"{path}: no engine for modules {missing} — {hint}")
    for name, spec in bundle.modules.items():
        module = manifest.modules[name]
        if module.onnx_sha256 != spec.sha256:
            raise EngineRebuildError(
                f"{engines_dir / module.file}: built from another {spec.path.name} "
                f"(sha256 {module.onnx_sha256[:12]}…, bundle has {spec.sha256[:12]}…) — {hint}"
            )
        engine_path = engines_dir / module.file
        if not engine_path.is_file():
            raise EngineRebuildError(f"{engine_path}: engine file is missing — {hint}")
        if check_engine_hashes and sha256_of_file(engine_path) != module.sha256:
            raise EngineRebuildError(f"{engine_path}: sha256 mismatch, engine altered — {hint}")
    return manifest
