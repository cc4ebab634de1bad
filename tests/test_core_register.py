"""register_translation (docs/CORE.md; pipeline/registration.py) against the true shift and
against OpenCV's ECC (cv2.findTransformECC, MOTION_TRANSLATION), the numpy/OpenCV reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flashfas_edge import _core


def _texture(size: int, seed: int) -> np.ndarray:
    """A face-like grey crop: smooth blobs plus fine detail, 8-bit levels."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.normal(0, 1, (8, 8)).astype(np.float32), (size, size),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 1.5)
    return (128 + 40 * coarse + 25 * fine).astype(np.float32)


def _shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """image moved by (dx, dy): result(p + s) = image(p)."""
    m = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    return cv2.warpAffine(image, m, image.shape[::-1], flags=cv2.INTER_CUBIC,
                          borderMode=cv2.BORDER_REFLECT)


def _ecc(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
    _, warp = cv2.findTransformECC(reference, moving, warp, cv2.MOTION_TRANSLATION, criteria,
                                   None, 1)
    return warp[:, 2]


SHIFTS = [(0.0, 0.0), (0.37, -0.81), (-2.4, 1.3), (3.6, 2.2), (-1.05, -3.5)]


def test_recovers_sub_pixel_shifts_under_a_change_of_flash_level_like_opencv_ecc() -> None:
    base = _texture(64, seed=3)
    crops, truth = [], []
    for k, (dx, dy) in enumerate(SHIFTS):
        gain, offset = 1.0 - 0.15 * k, 12.0 * k  # another flash level: gain and offset
        crops.append(gain * _shifted(base, dx, dy) + offset)
        truth.append((dx, dy))
    crops_arr = np.ascontiguousarray(np.stack(crops), np.float32)
    shifts, correlations = _core.register_translation(crops_arr)
    assert shifts.shape == (len(SHIFTS), 2) and shifts.dtype == np.float32
    assert correlations.shape == (len(SHIFTS),) and np.all(correlations > 0.95)
    # borders of the moved crops differ (reflected): the interior decides, to a tenth of a pixel
    np.testing.assert_allclose(shifts, np.array(truth), atol=0.1)
    for k in range(1, len(SHIFTS)):
        np.testing.assert_allclose(shifts[k], _ecc(crops_arr[0], crops_arr[k]), atol=0.1)


def test_noise_of_a_camera_moves_the_estimate_by_hundredths_of_a_pixel() -> None:
    rng = np.random.default_rng(5)
    base = _texture(64, seed=4)
    crops = np.stack([base + rng.normal(0, 2.0, base.shape) for _ in range(6)]).astype(np.float32)
    shifts, _ = _core.register_translation(np.ascontiguousarray(crops))
    assert np.abs(shifts).max() < 0.05


def test_a_crop_of_something_else_correlates_poorly() -> None:
    face, other = _texture(64, seed=6), _texture(64, seed=7)
    _, correlations = _core.register_translation(np.ascontiguousarray(np.stack([face, other])))
    assert correlations[0] == 1.0
    assert not correlations[1] > 0.5  # low, or NaN where the fit ran off


def test_a_flat_first_crop_cannot_be_registered() -> None:
    crops = np.full((3, 32, 32), 90.0, np.float32)
    with pytest.raises(ValueError, match="flat"):
        _core.register_translation(crops)


def test_wrong_dtype_shape_or_values_are_refused_at_the_binding() -> None:
    good = np.ascontiguousarray(np.stack([_texture(32, 1)] * 2))
    with pytest.raises(TypeError, match="float32"):
        _core.register_translation(good.astype(np.float64))
    with pytest.raises(ValueError, match=r"\[N, H, W\]"):
        _core.register_translation(good[0])
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.register_translation(good[:, :, ::2])
    bad = good.copy()
    bad[1, 3, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        _core.register_translation(bad)
    with pytest.raises(ValueError, match="levels"):
        _core.register_translation(good, levels=0)
