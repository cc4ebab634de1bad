"""align_faces (docs/ARCHITECTURE.md §1 step 7) against cv2.warpAffine(INTER_LINEAR,
BORDER_CONSTANT, 0).

Stated tolerance: every pixel within 1 grey level of OpenCV. The core quantises the bilinear
weights to 1/256 pixel and interpolates in 16-bit integers (so x86-64 and aarch64 agree bit for
bit), OpenCV 5 interpolates in float; the two land on different sides of a rounding edge for at
most ~1 % of the values on camera-like (smooth) images and up to ~15 % on white noise, where the
gradient reaches 255 levels per pixel. Against `_exact_reference`, a numpy re-implementation of
the documented integer arithmetic, the result (pixels and outside counts) is equal bit for bit.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashfas_edge import _core
from flashfas_edge.face.template import canonical_template

cv2.setNumThreads(1)


def _opencv_reference(frame: np.ndarray, landmarks: np.ndarray, template: np.ndarray, size: int):
    m = _core.estimate_similarity(landmarks, template)
    return cv2.warpAffine(
        frame,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def _outside_reference(m: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """Per output pixel: does bilinear sampling use a source tap outside the frame (float64)?"""
    inv = cv2.invertAffineTransform(m)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    x0, y0 = np.floor(sx), np.floor(sy)
    need_x1, need_y1 = sx > x0, sy > y0
    inside_x = (x0 >= 0) & ((x0 + 1 <= width - 1) | ~need_x1)
    inside_y = (y0 >= 0) & ((y0 + 1 <= height - 1) | ~need_y1)
    return ~(inside_x & inside_y)


def _exact_reference(frame: np.ndarray, m: np.ndarray, size: int):
    """numpy re-implementation of the core's documented arithmetic: (aligned, outside count).

    Inverse map in float64 (cv::invertAffineTransform's formula), source coordinates in float32
    without fused multiply-add, rounded half-to-even to 1/256 pixel; horizontal pass exact, the
    vertical pass with truncated 16-bit high products, rounded; taps outside read 0.
    """
    height, width = frame.shape[:2]
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    r = 1.0 / det
    a11, a22, a12, a21 = m[1, 1] * r, m[0, 0] * r, -m[0, 1] * r, -m[1, 0] * r
    inv = [a11, a12, -a11 * m[0, 2] - a12 * m[1, 2], a21, a22, -a21 * m[0, 2] - a22 * m[1, 2]]
    f32 = np.float32
    col = np.arange(size, dtype=f32)[None, :]
    rows = np.arange(size, dtype=np.float64)[:, None]
    base_x = (rows * inv[1] + inv[2]).astype(f32)
    base_y = (rows * inv[4] + inv[5]).astype(f32)
    sx = np.minimum(np.maximum(f32(inv[0]) * col + base_x, f32(-2)), f32(width + 1))
    sy = np.minimum(np.maximum(f32(inv[3]) * col + base_y, f32(-2)), f32(height + 1))
    magic = f32(12582912.0)
    qx = ((sx * f32(256) + magic) - magic).astype(np.int64)
    qy = ((sy * f32(256) + magic) - magic).astype(np.int64)
    ix, iy, wx, wy = qx >> 8, qy >> 8, qx & 255, qy & 255

    def tap(dx: int, dy: int):
        x, y = ix + dx, iy + dy
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        values = np.zeros((size, size, 3), np.int64)
        values[inside] = frame[y[inside], x[inside]]
        return values, inside

    (p00, in00), (p01, in01), (p10, in10), (p11, in11) = tap(0, 0), tap(1, 0), tap(0, 1), tap(1, 1)
    ax, ay = wx[..., None], wy[..., None]
    upper = p00 * (256 - ax) + p01 * ax
    lower = p10 * (256 - ax) + p11 * ax
    a16 = ay << 8
    up, down = np.maximum(lower - upper, 0), np.maximum(upper - lower, 0)
    aligned = ((upper + ((up * a16) >> 16) - ((down * a16) >> 16) + 128) >> 8).astype(np.uint8)
    need_x1, need_y1 = wx != 0, wy != 0
    touched = ~in00 | (need_x1 & ~in01) | (need_y1 & ~in10) | (need_x1 & need_y1 & ~in11)
    return aligned, int(touched.sum())


def _assert_close_to_opencv(ours: np.ndarray, ref: np.ndarray, noise: bool = False) -> None:
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    assert diff.max() <= 1
    assert np.count_nonzero(diff) <= (0.2 if noise else 0.015) * diff.size + 4


def _face_landmarks(template: np.ndarray, rng, scale: float, angle: float, offset) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    rot = scale * np.array([[c, -s], [s, c]])
    return (template @ rot.T + offset + rng.normal(0, 1.0, template.shape)).astype(np.float32)


def test_hd_frames_match_opencv_and_stay_inside() -> None:
    rng = np.random.default_rng(7)
    size = 256
    template = canonical_template(size)
    frames = np.stack(
        [cv2.GaussianBlur(rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8), (0, 0), 1.5)] * 3
    )
    landmarks = np.stack(
        [_face_landmarks(template, rng, 1.4, a, (480, 150)) for a in (-0.2, 0.0, 0.25)]
    )
    aligned, outside = _core.align_faces(frames, landmarks, template, size)
    assert aligned.shape == (3, size, size, 3) and aligned.dtype == np.uint8
    assert outside.dtype == np.int64 and outside.tolist() == [0, 0, 0]
    for t in range(3):
        _assert_close_to_opencv(
            aligned[t], _opencv_reference(frames[t], landmarks[t], template, size)
        )


def test_hd_frames_match_the_exact_numpy_reference_bit_for_bit() -> None:
    rng = np.random.default_rng(8)
    size = 256
    template = canonical_template(size)
    frames = rng.integers(0, 256, (2, 720, 1280, 3), dtype=np.uint8)
    landmarks = np.stack(
        [
            _face_landmarks(template, rng, 1.3, 0.15, (500, 160)),
            _face_landmarks(template, rng, 2.0, -0.4, (1000, 500)),  # partly outside the frame
        ]
    )
    aligned, outside = _core.align_faces(frames, landmarks, template, size)
    assert outside[0] == 0 and outside[1] > 0
    for t in range(2):
        m = _core.estimate_similarity(landmarks[t], template)
        exact_aligned, exact_outside = _exact_reference(frames[t], m, size)
        np.testing.assert_array_equal(aligned[t], exact_aligned)
        assert outside[t] == exact_outside


def test_identity_alignment_copies_the_frame_exactly() -> None:
    frame = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    template = canonical_template(64)
    aligned, outside = _core.align_faces(frame, template[None], template, 64)
    np.testing.assert_array_equal(aligned, frame)
    assert outside.tolist() == [0]


def test_face_partly_out_of_frame_is_filled_with_zero_and_counted() -> None:
    rng = np.random.default_rng(1)
    size = 128
    template = canonical_template(size)
    frame = np.full((1, 200, 300, 3), 200, dtype=np.uint8)
    landmarks = (template + np.array([230.0, -40.0]))[None].astype(np.float32)  # right/top edge
    aligned, outside = _core.align_faces(frame, landmarks, template, size)
    m = _core.estimate_similarity(landmarks[0], template)
    expected = _outside_reference(m, 200, 300, size)
    assert 0 < outside[0] < size * size
    # float32 vs float64 coordinates may disagree on pixels sitting exactly on the frame edge.
    assert abs(int(outside[0]) - int(expected.sum())) <= 2 * size
    inv = cv2.invertAffineTransform(m)
    ys, xs = np.mgrid[0:size, 0:size]
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    far_outside = (sx < -1.5) | (sx > 300.5) | (sy < -1.5) | (sy > 200.5)
    assert far_outside.any() and np.all(aligned[0][far_outside] == 0)
    _assert_close_to_opencv(aligned[0], _opencv_reference(frame[0], landmarks[0], template, size))
    del rng


def test_face_entirely_outside_gives_zeros_and_full_count() -> None:
    template = canonical_template(32)
    frame = np.full((1, 50, 50, 3), 255, dtype=np.uint8)
    aligned, outside = _core.align_faces(frame, (template + 1000.0)[None], template, 32)
    assert not aligned.any()
    assert outside.tolist() == [32 * 32]


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(4, 80),
    width=st.integers(4, 80),
    size=st.integers(4, 48),
    scale=st.floats(0.3, 3.0),
    angle=st.floats(-np.pi, np.pi),
    shift_x=st.floats(-30, 60),
    shift_y=st.floats(-30, 60),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_shapes_and_transforms_match_opencv(
    height, width, size, scale, angle, shift_x, shift_y, seed
) -> None:
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
    template = canonical_template(16) * (size / 16)
    landmarks = np.stack(
        [_face_landmarks(template, rng, scale, angle, (shift_x, shift_y)) for _ in range(2)]
    )
    aligned, outside = _core.align_faces(frames, landmarks, template.astype(np.float32), size)
    for t in range(2):
        ref = _opencv_reference(frames[t], landmarks[t], template, size)
        _assert_close_to_opencv(aligned[t], ref, noise=True)
        m = _core.estimate_similarity(landmarks[t], template)
        expected = _outside_reference(m, height, width, size).sum()
        assert 0 <= outside[t] <= size * size
        assert abs(int(outside[t]) - int(expected)) <= 2 * size
        exact_aligned, exact_outside = _exact_reference(frames[t], m, size)
        np.testing.assert_array_equal(aligned[t], exact_aligned)
        assert outside[t] == exact_outside


def _good_inputs():
    template = canonical_template(32)
    frames = np.zeros((2, 40, 50, 3), dtype=np.uint8)
    landmarks = np.stack([template, template]).astype(np.float32)
    return frames, landmarks, template


def test_bad_frames_give_clear_errors() -> None:
    frames, landmarks, template = _good_inputs()
    with pytest.raises(TypeError, match="uint8"):
        _core.align_faces(frames.astype(np.float32), landmarks, template, 32)
    with pytest.raises(ValueError, match="shape"):
        _core.align_faces(frames[..., 0], landmarks, template, 32)
    with pytest.raises(ValueError, match="channels"):
        _core.align_faces(np.zeros((2, 40, 50, 4), np.uint8), landmarks, template, 32)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.align_faces(frames[:, :, ::2], landmarks, template, 32)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.align_faces(frames[..., ::-1], landmarks, template, 32)  # BGR<->RGB view
    with pytest.raises(TypeError, match="numpy"):
        _core.align_faces(frames.tolist(), landmarks, template, 32)


def test_bad_landmarks_template_and_size_give_clear_errors() -> None:
    frames, landmarks, template = _good_inputs()
    with pytest.raises(ValueError, match="one row per frame"):
        _core.align_faces(frames, landmarks[:1], template, 32)
    with pytest.raises(ValueError, match="same number of points"):
        _core.align_faces(frames, landmarks[:, :4], template, 32)
    with pytest.raises(TypeError, match="float32 or float64"):
        _core.align_faces(frames, landmarks.astype(np.int64), template, 32)
    nan = landmarks.copy()
    nan[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _core.align_faces(frames, nan, template, 32)
    collapsed = np.zeros_like(landmarks)
    with pytest.raises(ValueError, match="coincide"):
        _core.align_faces(frames, collapsed, template, 32)
    for size in (0, 1, 5000):
        with pytest.raises(ValueError, match="size"):
            _core.align_faces(frames, landmarks, template, size)
