"""Choosing a backend by config: ``auto`` = TensorRT when a GPU and matching engines exist, else
ONNX Runtime on the CPU (docs/ARCHITECTURE.md §4). The pipeline and the evaluation CLI call only
this."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flashfas_edge.inference.backend import Backend, BackendError
from flashfas_edge.inference.bundle import Bundle, BundleError, RoutingConfig, load_bundle
from flashfas_edge.inference.engine_manifest import (
    EngineRebuildError,
    check_engines,
    default_engines_dir,
)
from flashfas_edge.inference.gpu_environment import GpuUnavailable, probe_gpu

BACKEND_KINDS = ("auto", "onnxruntime", "tensorrt")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackendChoice:
    kind: str  # "onnxruntime" | "tensorrt"
    reason: str  # why, for the start-up log and `engines info`


def choose_backend(
    bundle: Bundle, kind: str = "auto", *, engines_dir: str | Path | None = None
) -> BackendChoice:
    """Decide which backend ``kind`` means on this machine, without loading any network."""
    if kind not in BACKEND_KINDS:
        raise BackendError(f"unknown backend {kind!r}; choose one of {', '.join(BACKEND_KINDS)}")
    if kind == "onnxruntime":
        return BackendChoice("onnxruntime", "configured")
    engines = Path(engines_dir or default_engines_dir(bundle.directory))
    try:
        environment = probe_gpu()
        check_engines(engines, bundle, environment, precision=None)
    except (GpuUnavailable, EngineRebuildError) as exc:
        if kind == "tensorrt":
            raise  # asked for explicitly: a clear start-up error, never a silent fallback
        # auto: stale engines are never run; the CPU backend is always valid.
        return BackendChoice("onnxruntime", f"TensorRT not used: {exc}")
    return BackendChoice("tensorrt", f"engines in {engines} match this GPU and TensorRT")


def create_backend(
    bundle_dir: str | Path | Bundle,
    kind: str = "auto",
    *,
    expect_n0: int | None = None,
    expect_input_size: int | None = None,
    expect_normalisation: dict[str, Any] | None = None,
    routing: RoutingConfig | None = None,
    engines_dir: str | Path | None = None,
    intra_op_threads: int | None = None,
    warm_up: bool = True,
) -> Backend:
    """Load and validate a bundle, pick the backend, warm it up. Raises BundleError/BackendError.

    ``routing=None`` uses the bundle manifest's ``routing`` block (sparse on/off as shipped).
    """
    expectations = (expect_n0, expect_input_size, expect_normalisation)
    if isinstance(bundle_dir, Bundle) and all(e is None for e in expectations):
        bundle = bundle_dir
    else:  # (re)validate against what the caller will feed
        directory = bundle_dir.directory if isinstance(bundle_dir, Bundle) else bundle_dir
        bundle = load_bundle(
            directory,
            expect_n0=expect_n0,
            expect_input_size=expect_input_size,
            expect_normalisation=expect_normalisation,
        )
    choice = choose_backend(bundle, kind, engines_dir=engines_dir)
    log.info("inference backend %s for bundle %s: %s", choice.kind, bundle.name, choice.reason)
    backend: Backend
    if choice.kind == "tensorrt":
        from flashfas_edge.inference.tensorrt_backend import TensorRTBackend

        backend = TensorRTBackend(bundle, engines_dir=engines_dir, routing=routing, precision=None)
    else:
        from flashfas_edge.inference.ort_backend import OrtBackend

        backend = OrtBackend(bundle, routing=routing, intra_op_threads=intra_op_threads)
    if warm_up:
        try:
            backend.warm_up()
        except BundleError:
            raise
        except Exception as exc:
            raise BackendError(f"{choice.kind} warm-up failed for {bundle.name}: {exc}") from exc
    return backend
