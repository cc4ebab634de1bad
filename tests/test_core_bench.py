"""benchmarks/bench_core.py: its two paths agree within the stated rounding bound, and it times
them interleaved."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from flashfas_edge import _core

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_core.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_core", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_core"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("height", "width", "size", "seed"), [(720, 1280, 256, 0),
                                                               (480, 640, 64, 3)])
def test_core_matches_the_opencv_path_within_one_grey_level_per_warped_pixel(
    bench, height, width, size, seed
) -> None:
    cv2.setNumThreads(1)
    frames, landmarks, template, order = bench.make_check(height, width, size, seed)
    d = _core.differential_matrix(bench.N0)
    fused = _core.preprocess(frames, landmarks, template, order, bench.N0, size)
    reference = bench.opencv_numpy_path(frames, landmarks, template, order, size, d)
    rms = bench.raw_rms(frames, landmarks, template, order, size, d)
    diff = np.abs(fused - reference)
    # 2 = sum|D row|: each differential value is one frame minus another
    assert bench.rounding_bound(d, rms) == pytest.approx(2 / 255 / rms, rel=2e-3)
    assert diff.max() <= bench.rounding_bound(d, rms)
    assert np.mean(diff > 1e-4) < 0.03  # a few % of values, not a systematic offset


def test_a_path_off_by_more_than_rounding_breaks_the_bound(bench) -> None:
    frames, landmarks, template, order = bench.make_check(480, 640, 64, 5)
    d = _core.differential_matrix(bench.N0)
    shifted = frames.copy()
    shifted[0] = np.clip(shifted[0].astype(int) + 3, 0, 255).astype(np.uint8)  # 3 grey levels
    fused = _core.preprocess(shifted, landmarks, template, order, bench.N0, 64)
    reference = bench.opencv_numpy_path(frames, landmarks, template, order, 64, d)
    rms = bench.raw_rms(frames, landmarks, template, order, 64, d)
    assert np.abs(fused - reference).max() > bench.rounding_bound(d, rms)


def test_paths_are_timed_alternately_with_the_first_one_swapped(bench) -> None:
    calls: list[str] = []
    times_a, times_b = bench.time_interleaved(lambda: calls.append("a"),
                                              lambda: calls.append("b"), 4)
    assert len(times_a) == len(times_b) == 4
    assert "".join(calls) == "ab" + "ab" + "ba" + "ab" + "ba"  # warm-up, then alternating order
