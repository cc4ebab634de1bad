"""engines/build_engines.sh: argument handling and the trtexec commands, run for real (dry run).

No TensorRT on this machine: building is exercised on the accelerator machine only; here the script
runs as a real subprocess up to the point where it would start trtexec.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flashfas_edge.inference.bundle import MODULE_NAMES, load_bundle
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle
from flashfas_edge.inference.trt_build.engine_plan import BuildOptions
from flashfas_edge.inference.trt_build.engines import build_commands

SCRIPT = Path(__file__).resolve().parents[1] / "engines" / "build_engines.sh"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return write_synthetic_bundle(tmp_path_factory.mktemp("b") / "edge-test", input_size=32)


def _script(*args: str, path_without_trtexec: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path_without_trtexec:
        # Only the venv's python and the basic tools: no trtexec, whatever the host has.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])
    return subprocess.run(
        ["bash", str(SCRIPT), "--python", sys.executable, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _trtexec_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("trtexec ")]


def test_tensorrt_10_dry_run_builds_every_module_with_fp16_and_batch_shapes(bundle_dir):
    result = _script(
        "--bundle",
        str(bundle_dir),
        "--dry-run",
        "--tensorrt-version",
        "10.3.0",
        "--batch-max",
        "4",
        "--mem-pool-mb",
        "512",
    )
    assert result.returncode == 0, result.stderr
    lines = _trtexec_lines(result.stdout)
    assert len(lines) == len(MODULE_NAMES)
    for module, line in zip(MODULE_NAMES, lines, strict=True):
        assert f"--onnx={bundle_dir}/{module}.onnx" in line
        assert f"--saveEngine={bundle_dir}/tensorrt.new/{module}.engine" in line
        assert "--fp16" in line and "--memPoolSize=workspace:512M" in line
        assert f"--timingCacheFile={bundle_dir}/tensorrt.timing.cache" in line
        assert "--useDLACore" not in line
    assert (
        "--minShapes=x:1x6x3x32x32 --optShapes=x:1x6x3x32x32 --maxShapes=x:4x6x3x32x32" in lines[0]
    )
    assert "--maxShapes=feat:4x6x8x8x8" in lines[1]
    assert "--maxShapes=depth:4x1x8x8" in lines[-1]
    assert "engines record" in result.stdout and "--tensorrt-version 10.3.0" in result.stdout
    assert "engines verify" in result.stdout
    assert not (bundle_dir / "tensorrt.new").exists(), "a dry run must write nothing"


def test_script_and_python_build_the_same_commands(bundle_dir):
    result = _script("--bundle", str(bundle_dir), "--dry-run", "--tensorrt-version", "10.3.0")
    options = BuildOptions(timing_cache=bundle_dir / "tensorrt.timing.cache")
    expected = build_commands(load_bundle(bundle_dir), bundle_dir / "tensorrt.new", options, 10)
    assert _trtexec_lines(result.stdout) == [" ".join(c) for c in expected]


def test_tensorrt_11_has_no_fp16_flag_and_converts_the_onnx_first(bundle_dir):
    result = _script("--bundle", str(bundle_dir), "--dry-run", "--tensorrt-version", "11.0.0")
    assert result.returncode == 0, result.stderr
    lines = _trtexec_lines(result.stdout)
    assert len(lines) == len(MODULE_NAMES)
    assert all("--fp16" not in line for line in lines)
    assert f"--onnx={bundle_dir}/tensorrt.new/fp16_onnx/stem.fp16.onnx" in lines[0]
    autocast = [line for line in result.stdout.splitlines() if "modelopt.onnx.autocast" in line]
    assert len(autocast) == len(MODULE_NAMES)
    assert all("--keep_io_types" in line for line in autocast)
    options = BuildOptions(timing_cache=bundle_dir / "tensorrt.timing.cache")
    expected = build_commands(
        load_bundle(bundle_dir), bundle_dir / "tensorrt.new", options, 11, python=sys.executable
    )
    commands = [
        line
        for line in result.stdout.splitlines()
        if not line.startswith(("#", "python", sys.executable + " -m flashfas_edge"))
    ]
    assert commands == [" ".join(c) for c in expected]


def test_fp32_on_tensorrt_11_needs_no_conversion(bundle_dir):
    result = _script(
        "--bundle",
        str(bundle_dir),
        "--dry-run",
        "--tensorrt-version",
        "11.2.0",
        "--precision",
        "fp32",
    )
    assert result.returncode == 0, result.stderr
    assert "modelopt" not in result.stdout
    assert f"--onnx={bundle_dir}/stem.onnx" in result.stdout


def test_dla_is_opt_in_with_gpu_fallback(bundle_dir):
    result = _script(
        "--bundle", str(bundle_dir), "--dry-run", "--tensorrt-version", "10.3.0", "--dla-core", "1"
    )
    assert result.returncode == 0, result.stderr
    lines = _trtexec_lines(result.stdout)
    assert all("--useDLACore=1 --allowGPUFallback" in line for line in lines)
    assert "--dla-core 1" in result.stdout  # recorded in the engine manifest


@pytest.mark.parametrize(
    "args, message",
    [
        (["--frobnicate"], "unknown option: --frobnicate"),
        (["--batch-max", "0"], "1 <= min <= opt <= max"),
        (["--batch-min", "4", "--batch-opt", "2"], "1 <= min <= opt <= max"),
        (["--batch-max", "eight"], "--batch-max must be a whole number"),
        (["--precision", "int8"], "--precision must be fp16 or fp32"),
        (["--dla-core", "-1"], "--dla-core must be a whole number"),
        (["--tensorrt-version", "8.6.1"], "too old"),
        (["--bundle"], "--bundle needs a value"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(bundle_dir, args, message):
    base = ["--dry-run", "--tensorrt-version", "10.3.0"]
    if args[0] != "--bundle":
        base = ["--bundle", str(bundle_dir), *base]
    result = _script(*base, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_missing_bundle_is_refused(tmp_path):
    result = _script(
        "--bundle", str(tmp_path / "nothing"), "--dry-run", "--tensorrt-version", "10.3.0"
    )
    assert result.returncode == 2
    assert "manifest.json not found" in result.stderr


def test_altered_bundle_is_refused_before_building(bundle_dir, tmp_path):
    altered = shutil.copytree(bundle_dir, tmp_path / "altered")
    (altered / "head.onnx").write_bytes((altered / "head.onnx").read_bytes() + b"\0")
    result = _script("--bundle", str(altered), "--dry-run", "--tensorrt-version", "10.3.0")
    assert result.returncode == 2
    assert "head.onnx: sha256 mismatch" in result.stderr


def test_without_trtexec_a_real_build_stops_with_a_clear_message(bundle_dir):
    if shutil.which("trtexec") or Path("/usr/src/tensorrt/bin/trtexec").exists():
        pytest.skip("this host has trtexec; the message is for hosts without it")
    result = _script("--bundle", str(bundle_dir), "--tensorrt-version", "10.3.0")
    assert result.returncode == 2
    assert "trtexec not found" in result.stderr
    assert not (bundle_dir / "tensorrt.new").exists()


def test_help_lists_the_options():
    result = _script("--help")
    assert result.returncode == 0
    for option in ("--dry-run", "--dla-core", "--timing-cache", "--mem-pool-mb", "--batch-max"):
        assert option in result.stdout


def test_script_is_shellcheck_clean():
    if shutil.which("shellcheck") is None:
        why = "shellcheck is not installed (apt-get install shellcheck)"
        if "shellcheck" in os.environ.get("FLASHFAS_CI_REQUIRE", "").split(","):
            pytest.fail(f"CI requires this test (.ci/run installs it): {why}")
        pytest.skip(why)
    result = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_dry_run_of_an_ensemble_bundle_builds_every_member_module(tmp_path):
    from flashfas_edge.inference.synthetic_bundle import write_synthetic_ensemble

    bundle = write_synthetic_ensemble(tmp_path / "ens", members=2, input_size=32)
    result = _script("--bundle", str(bundle), "--dry-run", "--tensorrt-version", "10.3.0")
    assert result.returncode == 0, result.stderr
    lines = _trtexec_lines(result.stdout)
    assert len(lines) == 2 * len(MODULE_NAMES)
    for module in MODULE_NAMES:
        assert any(f"--onnx={bundle}/m1/{module}.onnx" in line for line in lines)
        engine = f"--saveEngine={bundle}/tensorrt.new/m1.{module}.engine"
        assert any(engine in line for line in lines)
