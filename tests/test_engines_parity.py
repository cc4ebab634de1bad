"""Engine verification: module-by-module and end-to-end parity, and the TensorRT backend itself.

The comparison code runs here with two real ONNX Runtime runners; the TensorRT half needs an NVIDIA
GPU with TensorRT and is skipped (with the reason) everywhere else.
"""

from __future__ import annotations

import pytest

from flashfas_edge.inference.bundle import load_bundle
from flashfas_edge.inference.gpu_environment import GpuUnavailable, probe_gpu
from flashfas_edge.inference.ort_backend import OrtBackend, OrtModuleRunner
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle
from flashfas_edge.inference.trt_build.engine_plan import BuildOptions
from flashfas_edge.inference.trt_build.engines import (
    FP16_TOLERANCE,
    build_engines,
    compare_runners,
    verification_inputs,
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(write_synthetic_bundle(tmp_path_factory.mktemp("b"), input_size=32))


def test_identical_runtimes_pass_verification(bundle):
    report = compare_runners(
        bundle,
        OrtModuleRunner(bundle, intra_op_threads=1),
        OrtModuleRunner(bundle, intra_op_threads=2),
        verification_inputs(bundle, 4),
        FP16_TOLERANCE,
    )
    assert report.ok, report.lines()
    assert set(report.module_max_abs) == set(bundle.modules)
    assert report.p_live_max_abs < 1e-5 and report.decision_flips == 0


def test_engines_from_other_weights_fail_verification(bundle, tmp_path):
    other = load_bundle(write_synthetic_bundle(tmp_path / "other", input_size=32, seed=5))
    report = compare_runners(
        bundle,
        OrtModuleRunner(bundle),
        OrtModuleRunner(other),
        verification_inputs(bundle, 4),
        FP16_TOLERANCE,
    )
    assert not report.ok
    assert any("module stem" in failure for failure in report.failures)
    assert report.lines()[-1] == "FAIL"


def _gpu_or_skip():
    try:
        return probe_gpu()
    except GpuUnavailable as exc:
        pytest.skip(f"needs an NVIDIA GPU with TensorRT 10+: {exc}")


@pytest.mark.gpu
def test_tensorrt_fp16_engines_match_onnxruntime(tmp_path):
    environment = _gpu_or_skip()
    from flashfas_edge.inference.tensorrt_backend import TensorRTBackend

    bundle = load_bundle(write_synthetic_bundle(tmp_path / "b", input_size=64))
    engines_dir = tmp_path / "b" / "tensorrt"
    build_engines(
        bundle, engines_dir, BuildOptions(batch_max=4), environment, builder="tensorrt-python"
    )
    trt_backend = TensorRTBackend(bundle, engines_dir=engines_dir)
    try:
        report = compare_runners(
            bundle,
            OrtModuleRunner(bundle),
            trt_backend.runner,
            verification_inputs(bundle, 8),
            FP16_TOLERANCE,
        )
        assert report.ok, report.lines()
        xs = verification_inputs(bundle, 6, seed=1)
        ort_out = OrtBackend(bundle).run_batch(xs)
        trt_out = trt_backend.run_batch(xs)  # 6 > batch_max 4: split into two engine calls
        assert [o.experts_run for o in trt_out] == [o.experts_run for o in ort_out]
        diffs = [abs(a.p_live - b.p_live) for a, b in zip(ort_out, trt_out, strict=True)]
        assert max(diffs) <= FP16_TOLERANCE["p_live"]
        assert trt_backend.info().precision == "fp16"
    finally:
        trt_backend.close()
