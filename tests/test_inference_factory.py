"""create_backend: auto = ONNX Runtime when no GPU/engines; explicit TensorRT never degrades."""

from __future__ import annotations

import numpy as np
import pytest

from flashfas_edge.inference.backend import Backend, BackendError
from flashfas_edge.inference.bundle import BundleError, RoutingConfig, load_bundle
from flashfas_edge.inference.factory import choose_backend, create_backend
from flashfas_edge.inference.gpu_environment import GpuUnavailable, probe_gpu
from flashfas_edge.inference.ort_backend import OrtBackend
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle


def _gpu_reason() -> str | None:
    try:
        probe_gpu()
    except GpuUnavailable as exc:
        return str(exc)
    return None


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return write_synthetic_bundle(tmp_path_factory.mktemp("b"), input_size=32, routing_sparse=True)


def test_auto_falls_back_to_onnxruntime_and_says_why(bundle_dir):
    reason = _gpu_reason()
    if reason is None:
        pytest.skip("this host has a GPU and TensorRT; the fallback is for hosts without")
    choice = choose_backend(load_bundle(bundle_dir), "auto")
    assert choice.kind == "onnxruntime"
    assert "TensorRT not used" in choice.reason and reason in choice.reason
    backend = create_backend(bundle_dir, "auto", expect_n0=5, expect_input_size=32)
    assert isinstance(backend, OrtBackend) and isinstance(backend, Backend)
    out = backend.run(np.zeros((6, 3, 32, 32), np.float32))
    assert 0.0 <= out.p_live <= 1.0


def test_explicit_tensorrt_without_gpu_or_engines_is_a_startup_error(bundle_dir):
    # Without a GPU: GpuUnavailable; with one but no engines built: EngineRebuildError.
    with pytest.raises((BackendError, BundleError)) as caught:
        create_backend(bundle_dir, "tensorrt")
    assert "tensorrt" in str(caught.value).lower() or "engine" in str(caught.value).lower()


def test_unknown_backend_kind_is_refused(bundle_dir):
    with pytest.raises(BackendError, match="unknown backend 'cuda'"):
        create_backend(bundle_dir, "cuda")


def test_pipeline_expectations_are_checked_at_startup(bundle_dir):
    with pytest.raises(BundleError, match="n0 = 6"):
        create_backend(bundle_dir, "onnxruntime", expect_n0=6)
    with pytest.raises(BundleError, match="input_size"):
        create_backend(bundle_dir, "onnxruntime", expect_input_size=256)


def test_routing_follows_the_manifest_unless_configured(bundle_dir):
    shipped = create_backend(bundle_dir, "onnxruntime", warm_up=False)
    assert shipped.routing == RoutingConfig(sparse=True, min_top_weight=0.95)
    dense = create_backend(bundle_dir, "onnxruntime", routing=RoutingConfig(sparse=False))
    assert dense.routing.sparse is False
    assert dense.info().versions["sparse_routing"] == "false"


def test_gpu_probe_without_a_driver_says_what_is_missing():
    # cuda-python installs on CPU-only hosts and reports the missing driver; without it, the
    # probe says cuda-python is missing. Either way: a typed error, never a crash.
    if _gpu_reason() is None:
        pytest.skip("this host has a usable GPU")
    with pytest.raises(GpuUnavailable) as caught:
        probe_gpu(require_tensorrt=False)
    message = str(caught.value)
    assert (
        "cuda-python is not installed" in message
        or "CUDA device query" in message
        or ("nvidia-smi" in message)
    )
