"""One liveness check's preprocessing: _core.preprocess vs the same work in OpenCV-Python + numpy.

5 frames 1280x720 -> 6 x 3 x 256 x 256 (docs/ARCHITECTURE.md §1 steps 7-8), single-threaded. The
two paths are timed interleaved (A B, then B A, per repeat) so that load changes on a shared
machine hit both alike; the ratio is taken per pair and reported as median and quartiles. Target:
_core is faster (the lower quartile of the per-pair ratio OpenCV/_core is above 1) and its output
is within the interpolation-rounding bound of the OpenCV path (see ``rounding_bound``).

    python benchmarks/bench_core.py [--repeats 60] [--size 256] [--height 720 --width 1280]
"""

from __future__ import annotations

import argparse
import os
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


def rounding_bound(d: np.ndarray, raw_rms: float) -> float:
    """Largest |_core - OpenCV| the two outputs may differ by, in normalised units.

    Both warps are bilinear, but _core rounds source coordinates to 1/256 px and interpolates in
    integers, OpenCV uses its own fixed-point taps (docs/CORE.md): a warped pixel may differ by one
    grey level. A differential value is a signed sum of warped frames (a row of D), so it may
    differ by sum|D_row| levels; both paths then divide by nearly the same global RMS.
    """
    levels = float(np.abs(d).sum(axis=1).max())
    return levels / 255 / raw_rms * (1 + 1e-3) + 1e-6


def raw_rms(frames, landmarks, template, order, size, d) -> float:
    """RMS of the differential frames before normalisation (OpenCV path): the scale 1/rms."""
    warped = np.stack(
        [
            cv2.warpAffine(frames[t], umeyama_numpy(landmarks[t], template), (size, size),
                           flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            for t in range(N0)
        ]
    )
    x = np.tensordot(d, warped[order].astype(np.float32) / 255, axes=1)
    return max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), _core.GLOBAL_RMS_EPS)


def time_interleaved(fn_a, fn_b, repeats: int) -> tuple[list[float], list[float]]:
    """Wall times (s) of fn_a and fn_b, alternating per repeat and swapping which goes first, so
    that a load change between repeats affects both paths alike."""
    fn_a(), fn_b()  # warm-up
    times_a, times_b = [], []
    for i in range(repeats):
        order = ((fn_a, times_a), (fn_b, times_b))
        for fn, out in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return times_a, times_b


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return float(q1), float(q2), float(q3)


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
    rms = raw_rms(frames, landmarks, template, order, args.size, d)
    bound = rounding_bound(d, rms)

    core_s, opencv_s = time_interleaved(
        lambda: _core.preprocess(frames, landmarks, template, order, N0, args.size),
        lambda: opencv_numpy_path(frames, landmarks, template, order, args.size, d),
        args.repeats,
    )
    ratios = [b / a for a, b in zip(core_s, opencv_s, strict=True)]
    c1, c2, c3 = (1e3 * v for v in quartiles(core_s))
    o1, o2, o3 = (1e3 * v for v in quartiles(opencv_s))
    r1, r2, r3 = quartiles(ratios)
    print(
        f"check: {N0} frames {args.width}x{args.height} -> {fused.shape[0]}x3x{args.size}x"
        f"{args.size} float32, single-threaded, {args.repeats} interleaved pairs "
        f"(cv2 {cv2.__version__})"
    )
    print(f"{'':30}{'p25':>9}{'median':>9}{'p75':>9}")
    print(f"{'_core.preprocess (ms)':30}{c1:9.3f}{c2:9.3f}{c3:9.3f}")
    print(f"{'baseline OpenCV + numpy (ms)':30}{o1:9.3f}{o2:9.3f}{o3:9.3f}")
    print(f"{'ratio OpenCV / _core per pair':30}{r1:8.2f}x{r2:8.2f}x{r3:8.2f}x")
    print(
        f"max |difference| {max_diff:.2e} (normalised units) = {max_diff * rms * 255:.2f} grey "
        f"levels before the 1/rms scale (rms {rms:.4f}); bound {bound:.2e}: one grey level per "
        f"warped pixel (bilinear rounding, docs/CORE.md) x sum|D row| = "
        f"{np.abs(d).sum(axis=1).max():.0f}"
    )
    faster = r1 > 1.0
    within = max_diff <= bound
    print(f"target _core faster (ratio p25 > 1): {'holds' if faster else 'MISSED'}; "
          f"outputs within the rounding bound: {'holds' if within else 'MISSED'}")
    load_1min = os.getloadavg()[0]
    print(f"load average (1 min) {load_1min:.2f} on {os.cpu_count()} CPUs")
    return 0 if faster and within else 1


if __name__ == "__main__":
    raise SystemExit(main())
