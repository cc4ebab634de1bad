"""estimate_similarity (docs/ARCHITECTURE.md §1 step 7) vs OpenCV and an exact linear least-squares
fit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashfas_edge import _core


def _similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = scale * np.cos(angle), scale * np.sin(angle)
    return np.array([[c, -s, tx], [s, c, ty]])


def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ m[:, :2].T + m[:, 2]


def _least_squares_reference(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    # A similarity without reflection is linear in (a, b, tx, ty):
    # u = a x - b y + tx, v = b x + a y + ty.
    rows = []
    for x, y in src:
        rows.append([x, -y, 1.0, 0.0])
        rows.append([y, x, 0.0, 1.0])
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), dst.reshape(-1), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def test_recovers_exact_transform_like_opencv() -> None:
    rng = np.random.default_rng(3)
    src = rng.uniform(0, 1280, (5, 2))
    truth = _similarity(0.3, 0.42, -120.0, 33.0)
    dst = _apply(truth, src)
    m = _core.estimate_similarity(src, dst)
    ref, _ = cv2.estimateAffinePartial2D(src, dst)
    assert m.shape == (2, 3) and m.dtype == np.float64
    np.testing.assert_allclose(m, truth, rtol=0, atol=1e-9)
    np.testing.assert_allclose(m, ref, rtol=0, atol=1e-4)


@settings(max_examples=60, deadline=None)
@given(
    angle=st.floats(-np.pi, np.pi),
    scale=st.floats(0.05, 20.0),
    tx=st.floats(-2000, 2000),
    ty=st.floats(-2000, 2000),
    k=st.integers(2, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_exact_data_round_trips(angle, scale, tx, ty, k, seed) -> None:
    rng = np.random.default_rng(seed)
    src = rng.uniform(-500, 1500, (k, 2))
    truth = _similarity(angle, scale, tx, ty)
    m = _core.estimate_similarity(src.astype(np.float32), _apply(truth, src).astype(np.float32))
    # float32 inputs: ~1e-7 relative error per coordinate, amplified by the lever arm of the points.
    np.testing.assert_allclose(
        _apply(m, src), _apply(truth, src), rtol=0, atol=2e-3 * max(1, scale)
    )


@settings(max_examples=40, deadline=None)
@given(k=st.integers(2, 10), noise=st.floats(0.0, 5.0), seed=st.integers(0, 2**31 - 1))
def test_noisy_data_is_the_least_squares_fit(k, noise, seed) -> None:
    rng = np.random.default_rng(seed)
    src = rng.uniform(0, 720, (k, 2))
    dst = _apply(_similarity(rng.uniform(-1, 1), rng.uniform(0.2, 3), 10.0, -5.0), src)
    dst = dst + rng.normal(0, noise, dst.shape)
    np.testing.assert_allclose(
        _core.estimate_similarity(src, dst),
        _least_squares_reference(src, dst),
        atol=1e-6,
        rtol=1e-7,
    )


def test_accepts_strided_point_views() -> None:
    pts = np.random.default_rng(0).uniform(0, 100, (5, 4))
    src = pts[:, ::2]  # non-contiguous view: small point arrays are copied, never rejected
    assert not src.flags.c_contiguous
    m = _core.estimate_similarity(src, src + 7.0)
    np.testing.assert_allclose(m, [[1, 0, 7], [0, 1, 7]], atol=1e-9)


@pytest.mark.parametrize(
    "src, dst",
    [
        (np.ones((5, 2)), np.random.default_rng(1).uniform(0, 9, (5, 2))),  # source points coincide
        (np.random.default_rng(1).uniform(0, 9, (5, 2)), np.full((5, 2), 3.0)),  # target coincide
        (np.zeros((1, 2)), np.zeros((1, 2))),  # one pair
    ],
)
def test_degenerate_points_raise_value_error_not_nan(src, dst) -> None:
    with pytest.raises(ValueError):
        _core.estimate_similarity(src, dst)


def test_bad_inputs_give_clear_errors() -> None:
    good = np.random.default_rng(0).uniform(0, 9, (5, 2))
    with pytest.raises(TypeError, match="numpy"):
        _core.estimate_similarity(good.tolist(), good)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.estimate_similarity(good.astype(np.int32), good)
    with pytest.raises(ValueError, match="shape"):
        _core.estimate_similarity(good.reshape(-1), good)
    with pytest.raises(ValueError, match="same number"):
        _core.estimate_similarity(good, good[:4])
    bad = good.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _core.estimate_similarity(good, bad)
