"""ONNX Runtime backend (CPU): the default on every kiosk without an NVIDIA GPU
(docs/ARCHITECTURE.md §4).

One InferenceSession per module, created once at start-up with the graph optimiser at its highest
level. Thread counts are tuned for the small kiosk CPUs (2 cores here): by default ONE intra-op
thread and no inter-op parallelism. The edge networks work on 16×16 maps, too small for a second
thread to pay for its synchronisation, and the second core is left to capture and preprocessing.
Measured on this 2-core machine (benchmarks/bench_inference.py, edge bundle, 300 checks):
1 thread 15.2 ms median, 2 threads 17.1 ms; 2 *spinning* threads 61 ms (they starve each other
on shared cores), so pool threads never spin. Softmax over a non-last axis is rewritten in memory
for ONNX Runtime (ort_softmax_rewrite.py): 5.6 → 1.9 ms per expert on the edge bundle. IO binding
with pre-allocated outputs was tried on an expert module and gave no measurable gain (4.0 vs
4.3 ms, within the noise of the shared machine), so plain ``session.run`` is used.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from flashfas_edge.inference.backend import BackendError, BackendInfo
from flashfas_edge.inference.bundle import (
    Bundle,
    BundleError,
    ModuleSpec,
    RoutingConfig,
    load_bundle,
)
from flashfas_edge.inference.forward import BundleBackendBase, BundleForward
from flashfas_edge.inference.ort_softmax_rewrite import decompose_non_last_axis_softmax

DEFAULT_INTRA_OP_THREADS = 1  # measured best on 2 cores (module docstring)


def default_intra_op_threads() -> int:
    return max(1, min(DEFAULT_INTRA_OP_THREADS, os.cpu_count() or 1))


class OrtModuleRunner:
    """Runs the bundle's ONNX modules with ONNX Runtime sessions (CPU execution provider)."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        intra_op_threads: int | None = None,
        allow_spinning: bool = False,
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
        rewrite_softmax: bool = True,
    ) -> None:
        import onnxruntime as ort

        self.intra_op_threads = intra_op_threads or default_intra_op_threads()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        # Spinning would keep pool threads hot between the 7 module calls, but on 2 shared cores
        # spinning threads starve the worker (see the module docstring): off by default.
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
        self.sessions: dict[str, Any] = {}
        self.softmax_rewrites = 0
        for name, spec in bundle.modules.items():
            model_bytes = _verified_bytes(spec)
            if rewrite_softmax:
                model_bytes, count = _with_fast_softmax(model_bytes, spec)
                self.softmax_rewrites += count
            try:
                self.sessions[name] = ort.InferenceSession(
                    model_bytes, sess_options=options, providers=list(providers)
                )
            except Exception as exc:  # ORT raises its own Fail/InvalidGraph types
                raise BundleError(
                    f"{spec.path}: ONNX Runtime cannot load module {name!r}: {exc}"
                ) from exc
        self.providers = tuple(self.sessions["stem"].get_providers())

    def run_module(self, module: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self.sessions[module]
        try:
            results = session.run(None, inputs)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime failed in module {module!r}: {exc}") from exc
        return {out.name: value for out, value in zip(session.get_outputs(), results, strict=True)}


def _verified_bytes(spec: ModuleSpec) -> bytes:
    """Read the module once and check it is still the file load_bundle vouched for."""
    data = spec.path.read_bytes()
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise BundleError(f"{spec.path}: sha256 changed after the bundle was validated")
    return data


def _with_fast_softmax(model_bytes: bytes, spec: ModuleSpec) -> tuple[bytes, int]:
    import onnx

    model = onnx.load_from_string(model_bytes)
    count = decompose_non_last_axis_softmax(model)
    if count == 0:
        return model_bytes, 0
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:  # never run a rewrite we cannot vouch for
        raise BundleError(f"{spec.path}: softmax rewrite produced an invalid graph: {exc}") from exc
    return model.SerializeToString(), count


class OrtBackend(BundleBackendBase):
    """:class:`~flashfas_edge.inference.backend.Backend` on ONNX Runtime."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        *,
        routing: RoutingConfig | None = None,
        intra_op_threads: int | None = None,
        allow_spinning: bool = False,
        rewrite_softmax: bool = True,
    ) -> None:
        self._bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.runner = OrtModuleRunner(
            self._bundle,
            intra_op_threads=intra_op_threads,
            allow_spinning=allow_spinning,
            rewrite_softmax=rewrite_softmax,
        )
        self.forward = BundleForward(self._bundle, self.runner, routing or self._bundle.routing)

    def info(self) -> BackendInfo:
        import onnxruntime as ort

        return BackendInfo(
            name="onnxruntime",
            device="cpu",
            precision="fp32",
            versions={
                "onnxruntime": ort.__version__,
                "providers": ",".join(self.runner.providers),
                "intra_op_threads": str(self.runner.intra_op_threads),
                "softmax_rewrites": str(self.runner.softmax_rewrites),
                "bundle": self._bundle.name,
                "bundle_manifest_sha256": self._bundle.manifest_sha256,
                "sparse_routing": str(self.routing.sparse).lower(),
            },
        )
