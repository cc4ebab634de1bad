"""Engine manifest: engines built for another TensorRT, GPU or ONNX mean "rebuild", never a run.

The files standing in for engines here are plain bytes: what is tested is the record and the check
that guards deserialisation, which needs no GPU. Real engines are built on the accelerator machine.
"""

from __future__ import annotations

import json
import shutil

import pytest

from flashfas_edge.inference.bundle import MODULE_NAMES, load_bundle
from flashfas_edge.inference.engine_manifest import (
    ENGINE_MANIFEST_NAME,
    EngineRebuildError,
    check_engines,
    read_engine_manifest,
)
from flashfas_edge.inference.gpu_environment import GpuEnvironment
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle
from flashfas_edge.inference.trt_build.engine_plan import BuildOptions
from flashfas_edge.inference.trt_build.engines import record_engines

ORIN = GpuEnvironment(tensorrt_version="10.3.0", compute_capability="8.7", device_name="Orin")


@pytest.fixture
def built(tmp_path):
    bundle_dir = write_synthetic_bundle(tmp_path / "bundle", input_size=32)
    bundle = load_bundle(bundle_dir)
    engines_dir = bundle_dir / "tensorrt"
    engines_dir.mkdir()
    for name in MODULE_NAMES:
        (engines_dir / f"{name}.engine").write_bytes(f"serialised {name}".encode())
    record_engines(bundle, engines_dir, BuildOptions(dla_core=None), ORIN, "trtexec")
    return bundle, engines_dir


def test_recorded_manifest_holds_what_the_engines_are_tied_to(built):
    bundle, engines_dir = built
    manifest = read_engine_manifest(engines_dir)
    assert (manifest.tensorrt_version, manifest.compute_capability) == ("10.3.0", "8.7")
    assert manifest.precision == "fp16" and manifest.builder == "trtexec"
    assert (manifest.batch_min, manifest.batch_opt, manifest.batch_max) == (1, 1, 8)
    assert manifest.bundle_manifest_sha256 == bundle.manifest_sha256
    for name, spec in bundle.modules.items():
        assert manifest.modules[name].onnx_sha256 == spec.sha256
    assert check_engines(engines_dir, bundle, ORIN, precision="fp16") == manifest


@pytest.mark.parametrize(
    "environment, message",
    [
        (GpuEnvironment("10.3.1", "8.7", "Orin"), "built by TensorRT 10.3.0.*runs TensorRT 10.3.1"),
        (GpuEnvironment("10.3.0", "9.0", "H100"), "compute capability 8.7.*this GPU is 9.0"),
    ],
)
def test_other_tensorrt_or_gpu_means_rebuild(built, environment, message):
    bundle, engines_dir = built
    with pytest.raises(EngineRebuildError, match=message) as caught:
        check_engines(engines_dir, bundle, environment)
    assert "rebuild: engines/build_engines.sh" in str(caught.value)
    assert ENGINE_MANIFEST_NAME in str(caught.value)


def test_other_precision_means_rebuild(built):
    bundle, engines_dir = built
    with pytest.raises(EngineRebuildError, match="engines are fp16, fp32 was asked for"):
        check_engines(engines_dir, bundle, ORIN, precision="fp32")


def test_engines_from_an_older_onnx_are_refused(built, tmp_path):
    # The bundle is retrained (new ONNX files) but the old engines stay on the device.
    bundle, engines_dir = built
    newer_dir = write_synthetic_bundle(tmp_path / "newer", input_size=32, seed=9)
    shutil.copytree(engines_dir, newer_dir / "tensorrt")
    newer = load_bundle(newer_dir)
    with pytest.raises(EngineRebuildError, match=r"stem\.engine: built from another stem\.onnx"):
        check_engines(newer_dir / "tensorrt", newer, ORIN)


def test_altered_engine_file_is_refused(built):
    bundle, engines_dir = built
    (engines_dir / "head.engine").write_bytes(b"tampered")
    with pytest.raises(EngineRebuildError, match=r"head\.engine: sha256 mismatch"):
        check_engines(engines_dir, bundle, ORIN)


def test_missing_engine_file_is_refused(built):
    bundle, engines_dir = built
    (engines_dir / "expert_mask.engine").unlink()
    with pytest.raises(EngineRebuildError, match=r"expert_mask\.engine: engine file is missing"):
        check_engines(engines_dir, bundle, ORIN)


def test_no_manifest_means_never_built(built):
    bundle, engines_dir = built
    (engines_dir / ENGINE_MANIFEST_NAME).unlink()
    with pytest.raises(EngineRebuildError, match="engines were never built here"):
        check_engines(engines_dir, bundle, ORIN)


def test_manifest_of_another_format_is_refused(built):
    bundle, engines_dir = built
    path = engines_dir / ENGINE_MANIFEST_NAME
    data = json.loads(path.read_text())
    data["format_version"] = 7
    path.write_text(json.dumps(data))
    with pytest.raises(EngineRebuildError, match="format_version 7"):
        check_engines(engines_dir, bundle, ORIN)
