"""benchmarks/bench_inference.py still runs end to end (small, real subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from flashfas_edge.inference.synthetic_bundle import write_synthetic_bundle

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_inference.py"


def test_benchmark_reports_median_and_p95_per_backend_and_routing(tmp_path):
    bundle = write_synthetic_bundle(tmp_path / "b", input_size=32)
    out = tmp_path / "results.json"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--bundle",
            str(bundle),
            "--checks",
            "5",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--no-torch",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert [r["backend"] for r in rows] == ["onnxruntime cpu 1t dense", "onnxruntime cpu 1t sparse"]
    for row in rows:
        assert 0 < row["median_ms"] <= row["p95_ms"]
    assert "tensorrt" in result.stdout  # either its figures or why it was not used


def test_benchmark_refuses_a_missing_bundle(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), "--bundle", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "no bundle" in result.stderr


def test_expert_calls_are_counted_over_every_member_of_an_ensemble(tmp_path):
    from flashfas_edge.inference.synthetic_bundle import write_synthetic_ensemble

    bundle = write_synthetic_ensemble(tmp_path / "ens", members=2, input_size=32)
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--bundle", str(bundle), "--checks", "4", "--warmup", "1",
         "--threads", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = {r["backend"]: r for r in json.loads(out.read_text())}
    # dense: 3 experts in each of the 2 members, not the union of 3
    assert rows["onnxruntime cpu 1t dense"]["expert_calls_per_check"] == 6.0
    assert rows["onnxruntime cpu 1t sparse"]["expert_calls_per_check"] <= 6.0
    # synthetic bundles have no training config: the PyTorch baseline says why it is missing
    assert "pytorch eager: skipped" in result.stdout
