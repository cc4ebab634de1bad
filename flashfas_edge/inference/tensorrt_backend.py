"""TensorRT backend (TensorRT 10 Python API): FP16 engines built on the device
(docs/ARCHITECTURE.md §4, §10).

Per module: one deserialised engine and execution context; every I/O tensor is bound by name to
one device buffer sized for the engine's largest batch, allocated once and reused for every check;
inputs and outputs go through page-locked host buffers with async copies, and the engine runs with
``execute_async_v3`` on one CUDA stream. CUDA memory is managed with cuda-python (see
gpu_environment.py for why not pycuda). The ATR-FAS §3.4 mixing is the same numpy code the ONNX
Runtime backend uses (forward.py), so both backends differ only in the module numerics.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flashfas_edge.inference.backend import BackendError, BackendInfo, ModelOutput
from flashfas_edge.inference.bundle import Bundle, RoutingConfig, load_bundle
from flashfas_edge.inference.engine_manifest import (
    EngineManifest,
    EngineRebuildError,
    check_engines,
    default_engines_dir,
)
from flashfas_edge.inference.forward import BundleBackendBase, BundleForward
from flashfas_edge.inference.gpu_environment import (
    GpuEnvironment,
    cuda_check,
    import_cudart,
    probe_gpu,
)


@dataclass
class _BoundTensor:
    name: str
    is_input: bool
    dtype: np.dtype
    max_shape: tuple[int, ...]
    device_ptr: int
    host: np.ndarray  # flat page-locked buffer of max_shape's size
    host_ptr: int


class _EngineModule:
    """One engine, its context and its reusable buffers."""

    def __init__(self, name: str, path: Path, runtime: Any, trt: Any, cudart: Any) -> None:
        self.name = name
        self._cudart = cudart
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise EngineRebuildError(f"{path}: TensorRT could not deserialise this engine")
        self.engine = engine
        self.context = engine.create_execution_context()
        self.tensors: dict[str, _BoundTensor] = {}
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        # Size every buffer for the largest batch the optimisation profile allows.
        for n in inputs:
            _, _, max_shape = engine.get_tensor_profile_shape(n, 0)
            self.context.set_input_shape(n, tuple(max_shape))
        for n in names:
            is_input = n in inputs
            shape = tuple(self.context.get_tensor_shape(n))
            if any(d < 0 for d in shape):
                raise EngineRebuildError(f"{path}: tensor {n!r} has no static max shape {shape}")
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(n)))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            device_ptr = int(cuda_check(cudart.cudaMalloc(nbytes), f"cudaMalloc({n})"))
            host_ptr = int(cuda_check(cudart.cudaMallocHost(nbytes), f"cudaMallocHost({n})"))
            c_type = ctypes.POINTER(np.ctypeslib.as_ctypes_type(dtype))
            host = np.ctypeslib.as_array(ctypes.cast(host_ptr, c_type), (int(np.prod(shape)),))
            self.tensors[n] = _BoundTensor(n, is_input, dtype, shape, device_ptr, host, host_ptr)
            # Addresses never change: bind once, by name (TensorRT 10 I/O API).
            if not self.context.set_tensor_address(n, device_ptr):
                raise BackendError(f"TensorRT refused the address of tensor {n!r} in {name}")

    def run(self, inputs: dict[str, np.ndarray], stream: Any) -> dict[str, np.ndarray]:
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for n, value in inputs.items():
            tensor = self.tensors[n]
            if value.shape[0] > tensor.max_shape[0] or value.shape[1:] != tensor.max_shape[1:]:
                raise BackendError(
                    f"{self.name}: input {n!r} shape {list(value.shape)} exceeds the engine "
                    f"profile {list(tensor.max_shape)}"
                )
            staged = tensor.host[: value.size].reshape(value.shape)
            np.copyto(staged, value, casting="same_kind")
            self.context.set_input_shape(n, value.shape)
            cuda_check(
                cudart.cudaMemcpyAsync(
                    tensor.device_ptr, tensor.host_ptr, staged.nbytes, h2d, stream
                ),
                f"copy {n} to device",
            )
        if not self.context.execute_async_v3(int(stream)):
            raise BackendError(f"TensorRT execute_async_v3 failed in module {self.name!r}")
        outputs: dict[str, np.ndarray] = {}
        for tensor in self.tensors.values():
            if tensor.is_input:
                continue
            shape = tuple(self.context.get_tensor_shape(tensor.name))
            view = tensor.host[: int(np.prod(shape))].reshape(shape)
            cuda_check(
                cudart.cudaMemcpyAsync(
                    tensor.host_ptr, tensor.device_ptr, view.nbytes, d2h, stream
                ),
                f"copy {tensor.name} to host",
            )
            outputs[tensor.name] = view
        cuda_check(cudart.cudaStreamSynchronize(stream), "stream synchronise")
        # Copy out of the reused page-locked buffers (the next call overwrites them).
        return {n: v.astype(np.float32, copy=True) for n, v in outputs.items()}

    def release(self) -> None:
        for tensor in self.tensors.values():
            self._cudart.cudaFree(tensor.device_ptr)
            self._cudart.cudaFreeHost(tensor.host_ptr)
        self.tensors.clear()


class TensorRTModuleRunner:
    def __init__(self, bundle: Bundle, engines_dir: Path, manifest: EngineManifest) -> None:
        import tensorrt as trt

        cudart = import_cudart()
        self._cudart = cudart
        self.stream = cuda_check(cudart.cudaStreamCreate(), "stream create")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.modules: dict[str, _EngineModule] = {}
        # The buffers and the stream are shared by every call: one check at a time.
        self._lock = threading.Lock()
        try:
            for name in bundle.modules:
                path = engines_dir / manifest.modules[name].file
                self.modules[name] = _EngineModule(name, path, self._runtime, trt, cudart)
        except Exception:
            self.close()
            raise

    def run_module(self, module: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            return self.modules[module].run(inputs, self.stream)

    def close(self) -> None:
        for module in self.modules.values():
            module.release()
        self.modules.clear()
        if self.stream is not None:
            self._cudart.cudaStreamDestroy(self.stream)
            self.stream = None


class TensorRTBackend(BundleBackendBase):
    """:class:`~flashfas_edge.inference.backend.Backend` on TensorRT engines (FP16 by default)."""

    def __init__(
        self,
        bundle: Bundle | str | Path,
        *,
        engines_dir: str | Path | None = None,
        routing: RoutingConfig | None = None,
        precision: str | None = "fp16",
        environment: GpuEnvironment | None = None,
    ) -> None:
        self._bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.engines_dir = Path(engines_dir or default_engines_dir(self._bundle.directory))
        self.environment = environment or probe_gpu()
        self.engine_manifest = check_engines(
            self.engines_dir, self._bundle, self.environment, precision=precision
        )
        self.runner = TensorRTModuleRunner(self._bundle, self.engines_dir, self.engine_manifest)
        self.forward = BundleForward(self._bundle, self.runner, routing or self._bundle.routing)

    def run_batch(self, x: np.ndarray) -> list[ModelOutput]:
        # Engines accept at most batch_max samples at once: split larger batches.
        limit = self.engine_manifest.batch_max
        x = self.forward.check_input(x, batched=True)
        outputs: list[ModelOutput] = []
        for start in range(0, x.shape[0], limit):
            outputs.extend(self.forward.run_batch(x[start : start + limit]))
        return outputs

    def info(self) -> BackendInfo:
        env, manifest = self.environment, self.engine_manifest
        return BackendInfo(
            name="tensorrt",
            device=f"cuda:{env.device_index} ({env.device_name}, sm_{env.compute_capability})",
            precision=manifest.precision,
            versions={
                "tensorrt": env.tensorrt_version or "",
                "engines_built_by": manifest.builder,
                "bundle": self._bundle.name,
                "bundle_manifest_sha256": self._bundle.manifest_sha256,
                "sparse_routing": str(self.routing.sparse).lower(),
                "dla_core": "" if manifest.dla_core is None else str(manifest.dla_core),
            },
        )

    def close(self) -> None:
        self.runner.close()
