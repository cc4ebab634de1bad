"""One liveness check's preprocessing: _core.preprocess vs the same work in OpenCV-Python + numpy.

5 frames 1280x720 -> 6 x 3 x 256 x 256 (docs/ARCHITECTURE.md §1 steps 7-8), single-threaded, both
paths in
the same run. Prints the median per-check time of each path and the ratio.

    python benchmarks/bench_core.py [--repeats 60] [--size 256] [--height 720 --width 1280]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

# Single-threaded comparison: numpy's BLAS (tensordot) must not spread over cores either.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from flashfas_edge import _core  # noqa: E402
from flashfas_edge.face.template import canonical_template  # noqa: E402

N0 = 5


def make_check(height: int, width: int, size: int, seed: int = 0):
    """Smooth random frames (camera-like spatial spectrum) and a ~300 px face in each."""
    rng = np.random.default_rng(seed)
    frames = np.stack(
        [
            cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 2.0)
            for _ in range(N0)
        ]
    )
    template = canonical_template(size)
    centre = np.array([width / 2, height / 2]) - template.mean(axis=0)
    scale = 1.2 * height / 720
    landmarks = np.stack(
        [
            (template - template.mean(axis=0)) * scale
            + template.mean(axis=0)
            + centre
            + rng.normal(0, 1.5, template.shape)
            for _ in range(N0)
        ]
    ).astype(np.float32)
    order = rng.permutation(N0)
    return frames, landmarks, template, order


def umeyama_numpy(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    src = src.astype(np.float64)
    dst = dst.astype(np.float64)
    ms, md = src.mean(axis=0), dst.mean(axis=0)
    p, q = src - ms, dst - md
    var = (p**2).sum()
    a = (p * q).sum() / var
    b = (p[:, 0] * q[:, 1] - p[:, 1] * q[:, 0]).sum() / var
    rot = np.array([[a, -b], [b, a]])
    return np.hstack([rot, (md - rot @ ms)[:, None]])


def opencv_numpy_path(frames, landmarks, template, order, size, d):
    warped = np.empty((N0, size, size, 3), np.uint8)
    for t in range(N0):
        m = umeyama_numpy(landmarks[t], template)
        cv2.warpAffine(
            frames[t],
            m,
            (size, size),
            dst=warped[t],
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
    f = warped[order].astype(np.float32)
    f *= np.float32(1 / 255)
    x = np.tensordot(d, f, axes=1)  # [N, S, S, 3]
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # NCHW
    rms = max(float(np.sqrt(np.mean(np.square(x, dtype=np.float32)))), _core.GLOBAL_RMS_EPS)
    x *= np.float32(1 / rms)
    return x


def time_ms(fn, repeats: int) -> tuple[float, float]:
    """(median, min) wall time of fn in ms; the min shows what the code costs on a busy machine."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--width", type=int, default=1280)
    args = parser.parse_args()
    cv2.setNumThreads(1)

    frames, landmarks, template, order = make_check(args.height, args.width, args.size)
    d = _core.differential_matrix(N0)

    fused = _core.preprocess(frames, landmarks, template, order, N0, args.size)
    reference = opencv_numpy_path(frames, landmarks, template, order, args.size, d)
    max_diff = float(np.abs(fused - reference).max())

    core_ms, core_min_ms = time_ms(
        lambda: _core.preprocess(frames, landmarks, template, order, N0, args.size), args.repeats
    )
    opencv_ms, opencv_min_ms = time_ms(
        lambda: opencv_numpy_path(frames, landmarks, template, order, args.size, d), args.repeats
    )
    print(
        f"check: {N0} frames {args.width}x{args.height} -> {fused.shape[0]}x3x{args.size}x"
        f"{args.size} float32, single-threaded, {args.repeats} repeats (cv2 {cv2.__version__})"
    )
    print(f"_core.preprocess      median {core_ms:7.3f} ms per check (min {core_min_ms:.3f})")
    print(f"OpenCV-Python + numpy median {opencv_ms:7.3f} ms per check (min {opencv_min_ms:.3f})")
    print(f"ratio of medians (OpenCV+numpy / _core) {opencv_ms / core_ms:5.2f}x")
    print(f"max |difference| between the two outputs: {max_diff:.2e} (normalised units)")
    load_1min = os.getloadavg()[0]
    print(f"load average (1 min) {load_1min:.2f} on {os.cpu_count()} CPUs: other work skews both")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
