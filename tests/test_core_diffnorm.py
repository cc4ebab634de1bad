"""differential_matrix and diffnorm (ATR-FAS §3.2 + the global-RMS normalisation) vs numpy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashfas_edge import _core

PAPER_D_N0_5 = np.array(
    [
        [1, -1, 0, 0, 0],
        [1, 0, -1, 0, 0],
        [1, 0, 0, -1, 0],
        [0, 1, 0, 0, -1],
        [0, 0, 1, 0, -1],
        [0, 0, 0, 1, -1],
    ],
    dtype=np.float32,
)


def _reference(aligned: np.ndarray, order: np.ndarray, n0: int) -> np.ndarray:
    frames = aligned[order].astype(np.float64) / 255.0  # brightest first
    d = _reference_matrix(n0)
    x = np.einsum("nk,khwc->nchw", d, frames)
    return x / max(np.sqrt(np.mean(x**2)), _core.GLOBAL_RMS_EPS)


def _reference_matrix(n0: int) -> np.ndarray:
    middle = n0 - 2
    d = np.zeros((2 * middle, n0))
    for k in range(middle):
        d[k, 0], d[k, 1 + k] = 1, -1
        d[middle + k, 1 + k], d[middle + k, n0 - 1] = 1, -1
    return d


def test_differential_matrix_is_the_papers_for_n0_5() -> None:
    d = _core.differential_matrix(5)
    assert d.dtype == np.float32
    np.testing.assert_array_equal(d, PAPER_D_N0_5)


@pytest.mark.parametrize("n0", range(3, 9))
def test_differential_matrix_for_every_n0(n0: int) -> None:
    d = _core.differential_matrix(n0)
    assert d.shape == (2 * (n0 - 2), n0)
    np.testing.assert_array_equal(d, _reference_matrix(n0))
    np.testing.assert_array_equal(d.sum(axis=1), 0)  # every row cancels a constant ambient term


@pytest.mark.parametrize("n0", [0, 2, 9, -1])
def test_n0_out_of_range_is_rejected(n0: int) -> None:
    with pytest.raises(ValueError, match=r"n0 must be in \[3, 8\]"):
        _core.differential_matrix(n0)


@settings(max_examples=40, deadline=None)
@given(n0=st.integers(3, 8), size=st.integers(2, 40), seed=st.integers(0, 2**31 - 1))
def test_matches_numpy_reference(n0: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    aligned = rng.integers(0, 256, (n0, size, size, 3), dtype=np.uint8)
    order = rng.permutation(n0)
    out = _core.diffnorm(aligned, order, n0)
    assert out.shape == (2 * (n0 - 2), 3, size, size) and out.dtype == np.float32
    assert out.flags.c_contiguous
    np.testing.assert_allclose(out, _reference(aligned, order, n0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.sqrt(np.mean(out.astype(np.float64) ** 2)), 1.0, rtol=1e-5)


def test_uniform_ambient_offset_and_gain_cancel() -> None:
    # I = ka*Ia + kd*Id*cos(theta): a constant ambient term cancels in D, a global gain in the RMS.
    rng = np.random.default_rng(5)
    flash = rng.integers(0, 60, (5, 24, 24, 3)).astype(np.int64)
    order = np.array([3, 1, 0, 4, 2])
    base = _core.diffnorm(flash.astype(np.uint8), order, 5)
    brighter_room = _core.diffnorm((flash + 90).astype(np.uint8), order, 5)
    doubled_gain = _core.diffnorm((2 * flash + 17).astype(np.uint8), order, 5)
    np.testing.assert_allclose(brighter_room, base, atol=1e-6)
    np.testing.assert_allclose(doubled_gain, base, atol=1e-6)


def test_no_flash_signal_gives_zeros_not_nan() -> None:
    aligned = np.full((5, 8, 8, 3), 77, dtype=np.uint8)
    out = _core.diffnorm(aligned, np.arange(5), 5)
    assert np.all(out == 0)


def test_tiny_signal_is_not_amplified_beyond_eps() -> None:
    aligned = np.full((3, 16, 16, 3), 100, dtype=np.uint8)
    aligned[0, 0, 0, 0] = 101  # rms far below eps: scale is fixed by eps, not by the noise
    out = _core.diffnorm(aligned, np.arange(3), 3)
    assert np.isclose(out.max(), (1 / 255) / _core.GLOBAL_RMS_EPS, rtol=1e-6)


def test_channel_order_and_layout_are_kept() -> None:
    aligned = np.zeros((3, 4, 4, 3), dtype=np.uint8)
    aligned[0, :, :, 2] = 50  # only the third channel of the brightest frame carries signal
    out = _core.diffnorm(aligned, np.arange(3), 3)
    assert np.all(out[:, :2] == 0) and np.all(out[0, 2] > 0) and np.all(out[1, 2] == 0)


def test_bad_inputs_give_clear_errors() -> None:
    aligned = np.zeros((5, 8, 8, 3), dtype=np.uint8)
    order = np.arange(5)
    with pytest.raises(ValueError, match="n0 = 5 frames"):
        _core.diffnorm(aligned[:4], order, 5)
    with pytest.raises(ValueError, match="square"):
        _core.diffnorm(np.zeros((5, 8, 9, 3), np.uint8), order, 5)
    with pytest.raises(TypeError, match="uint8"):
        _core.diffnorm(aligned.astype(np.float32), order, 5)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.diffnorm(np.zeros((5, 8, 16, 3), np.uint8)[:, :, ::2], order, 5)
    with pytest.raises(ValueError, match="permutation"):
        _core.diffnorm(aligned, np.array([0, 1, 2, 3, 3]), 5)
    with pytest.raises(ValueError, match="permutation"):
        _core.diffnorm(aligned, np.array([0, 1, 2, 3, 5]), 5)
    with pytest.raises(ValueError, match="entries"):
        _core.diffnorm(aligned, np.arange(4), 5)
    with pytest.raises(TypeError, match="integer"):
        _core.diffnorm(aligned, order.astype(np.float64), 5)
    with pytest.raises(ValueError, match=r"n0 must be in \[3, 8\]"):
        _core.diffnorm(np.zeros((9, 8, 8, 3), np.uint8), np.arange(9), 9)
