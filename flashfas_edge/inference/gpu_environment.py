"""What TensorRT and which NVIDIA GPU this machine has — the facts an engine is tied to.

CUDA is reached through NVIDIA's ``cuda-python`` (``cuda.bindings.runtime``), not pycuda: it ships
as prebuilt wheels (no CUDA toolkit or compiler needed to install, so it installs on CPU-only
build machines and reports "no driver" cleanly there), it is the binding TensorRT 10's own Python
samples use, and it does not create its own CUDA context behind TensorRT's back. pycuda has to be
compiled against a local CUDA toolkit and does not build on these machines.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

from flashfas_edge.inference.backend import BackendError


class GpuUnavailable(BackendError):
    """No usable NVIDIA GPU or TensorRT here; the message says which part is missing."""


@dataclass(frozen=True)
class GpuEnvironment:
    tensorrt_version: str | None  # None when the tensorrt module is absent (trtexec-only hosts)
    compute_capability: str  # "8.7"
    device_name: str  # "Orin"
    device_index: int = 0

    @property
    def tensorrt_major(self) -> int | None:
        return int(self.tensorrt_version.split(".")[0]) if self.tensorrt_version else None


def import_cudart() -> Any:
    """The CUDA runtime binding of cuda-python (module layout moved in cuda-python 12.6)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python < 12.6
        except ImportError as exc:
            raise GpuUnavailable(
                "cuda-python is not installed (pip install 'flashfas-edge[trt]')"
            ) from exc
    return cudart


def cuda_check(result: Any, what: str) -> Any:
    """cuda-python calls return (error, value…); raise on error, return the value(s)."""
    cudart = import_cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        raise GpuUnavailable(f"CUDA {what} failed: {name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def tensorrt_version() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return str(tensorrt.__version__)


def probe_gpu(device_index: int = 0, *, require_tensorrt: bool = True) -> GpuEnvironment:
    """The GPU's compute capability and the TensorRT version; :class:`GpuUnavailable` if none."""
    trt_version = tensorrt_version()
    if require_tensorrt and trt_version is None:
        raise GpuUnavailable("the tensorrt Python module is not installed")
    try:
        cudart = import_cudart()
    except GpuUnavailable:
        if require_tensorrt:
            raise
        return _probe_with_nvidia_smi(device_index, trt_version)
    count = cuda_check(cudart.cudaGetDeviceCount(), "device query (is the NVIDIA driver loaded?)")
    if count <= device_index:
        raise GpuUnavailable(f"no CUDA device {device_index} (found {count})")
    props = cuda_check(cudart.cudaGetDeviceProperties(device_index), "device properties")
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else props.name
    return GpuEnvironment(
        tensorrt_version=trt_version,
        compute_capability=f"{props.major}.{props.minor}",
        device_name=str(name).rstrip("\x00"),
        device_index=device_index,
    )


def _probe_with_nvidia_smi(device_index: int, trt_version: str | None) -> GpuEnvironment:
    # trtexec-only hosts (no Python CUDA binding): nvidia-smi knows the compute capability.
    # Jetson boards have no nvidia-smi compute_cap query; there cuda-python is required.
    if shutil.which("nvidia-smi") is None:
        raise GpuUnavailable("neither cuda-python nor nvidia-smi is available")
    query = [
        "nvidia-smi",
        f"--id={device_index}",
        "--query-gpu=compute_cap,name",
        "--format=csv,noheader",
    ]
    try:
        line = subprocess.run(query, capture_output=True, text=True, check=True, timeout=20).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        raise GpuUnavailable(f"nvidia-smi failed: {exc}") from exc
    capability, _, name = line.strip().partition(",")
    return GpuEnvironment(trt_version, capability.strip(), name.strip(), device_index)
