"""`flashfas-edge engines …` as a technician runs it: real subprocesses of the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from flashfas_edge.inference.bundle import MODULE_NAMES
from flashfas_edge.inference.engine_manifest import read_engine_manifest
from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flashfas_edge.cli", "engines", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    return write_synthetic_bundle(tmp_path_factory.mktemp("b"), input_size=32)


def test_info_reports_bundle_facts_and_the_backend_auto_picks(bundle_dir):
    result = _cli("info", "--bundle", str(bundle_dir), "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["bundle"]["n0"] == 5 and info["bundle"]["input_size"] == 32
    assert info["bundle"]["flash_levels"] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert info["bundle"]["challenge_family"] == "white_levels"
    assert len(info["bundle"]["manifest_sha256"]) == 64
    assert info["auto_backend"]["kind"] in ("onnxruntime", "tensorrt")
    assert "never built" in info["engines"]["absent_or_invalid"]


def test_build_dry_run_prints_trtexec_commands(bundle_dir):
    result = _cli("build", "--bundle", str(bundle_dir), "--dry-run", "--tensorrt-version", "10.3.0")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(MODULE_NAMES)
    assert all(line.startswith("trtexec --onnx=") and "--fp16" in line for line in lines)


def test_verify_without_engines_fails_with_a_clear_error(bundle_dir):
    result = _cli("verify", "--bundle", str(bundle_dir))
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_record_writes_the_engine_manifest_for_script_built_engines(bundle_dir, tmp_path):
    engines_dir = tmp_path / "engines"
    engines_dir.mkdir()
    for name in MODULE_NAMES:
        (engines_dir / f"{name}.engine").write_bytes(name.encode())
    result = _cli(
        "record",
        "--bundle",
        str(bundle_dir),
        "--engines-dir",
        str(engines_dir),
        "--tensorrt-version",
        "10.3.0",
        "--compute-capability",
        "8.7",
        "--batch-max",
        "4",
    )
    assert result.returncode == 0, result.stderr
    manifest = read_engine_manifest(engines_dir)
    assert manifest.tensorrt_version == "10.3.0" and manifest.compute_capability == "8.7"
    assert manifest.batch_max == 4 and set(manifest.modules) == set(MODULE_NAMES)


def test_record_refuses_when_an_engine_is_missing(bundle_dir, tmp_path):
    result = _cli(
        "record",
        "--bundle",
        str(bundle_dir),
        "--engines-dir",
        str(tmp_path),
        "--tensorrt-version",
        "10.3.0",
        "--compute-capability",
        "8.7",
    )
    assert result.returncode == 1
    assert "stem.engine: engine was not built" in result.stderr


def test_help_shows_examples():
    result = _cli("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout and "engines build" in result.stdout
