"""preprocess: the fused align + diffnorm must equal the two-step path and run off the GIL."""

from __future__ import annotations

import pickle
import threading

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashfas_edge import _core
from flashfas_edge.face.template import canonical_template

cv2.setNumThreads(1)


def _session(rng, n0: int, height: int, width: int, size: int):
    frames = rng.integers(0, 256, (n0, height, width, 3), dtype=np.uint8)
    template = canonical_template(max(size, 16)) * (size / max(size, 16))
    centre = np.array([width / 2, height / 2]) - template.mean(axis=0)
    landmarks = np.stack(
        [
            template * rng.uniform(0.6, 1.6) + centre + rng.normal(0, 2, template.shape)
            for _ in range(n0)
        ]
    ).astype(np.float32)
    return frames, landmarks, template.astype(np.float32), rng.permutation(n0)


@settings(max_examples=30, deadline=None)
@given(
    n0=st.integers(3, 8),
    height=st.integers(8, 90),
    width=st.integers(8, 90),
    size=st.integers(4, 40),
    seed=st.integers(0, 2**31 - 1),
)
def test_fused_equals_align_then_diffnorm_bit_for_bit(n0, height, width, size, seed) -> None:
    frames, landmarks, template, order = _session(
        np.random.default_rng(seed), n0, height, width, size
    )
    fused, outside = _core.preprocess(
        frames, landmarks, template, order, n0, size, with_outside_counts=True
    )
    aligned, aligned_outside = _core.align_faces(frames, landmarks, template, size)
    np.testing.assert_array_equal(fused, _core.diffnorm(aligned, order, n0))
    np.testing.assert_array_equal(outside, aligned_outside)


def test_hd_check_matches_opencv_numpy_path() -> None:
    rng = np.random.default_rng(11)
    frames, landmarks, template, order = _session(rng, 5, 720, 1280, 256)
    frames = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in frames])
    out = _core.preprocess(frames, landmarks, template, order, 5, 256)
    assert out.shape == (6, 3, 256, 256) and out.dtype == np.float32 and out.flags.c_contiguous
    warped = np.stack(
        [
            cv2.warpAffine(
                frames[t],
                _core.estimate_similarity(landmarks[t], template),
                (256, 256),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            for t in range(5)
        ]
    )
    f = warped[order].astype(np.float64) / 255.0
    x = np.einsum("nk,khwc->nchw", _core.differential_matrix(5).astype(np.float64), f)
    rms = max(np.sqrt(np.mean(x**2)), _core.GLOBAL_RMS_EPS)
    x /= rms
    # Warped pixels differ from OpenCV by at most one grey level on a few pixels (test_core_align),
    # so a differential value by at most 2/255 before the common scale 1/rms (which itself moves by
    # a relative ~1e-4 at most).
    assert np.abs(out - x).max() <= 2.0 / 255 / rms + 1e-3
    assert np.mean(np.abs(out - x) > 1e-4) < 0.04  # a few % of values one level apart


def test_face_leaving_the_frame_is_reported() -> None:
    rng = np.random.default_rng(4)
    frames, _, template, order = _session(rng, 5, 120, 160, 64)
    centre = np.array([80.0, 60.0]) - template.mean(axis=0)
    landmarks = np.stack([template + centre] * 5).astype(np.float32)  # 64 px face, mid-frame
    inside = _core.preprocess(frames, landmarks, template, order, 5, 64, with_outside_counts=True)
    assert inside[1].tolist() == [0] * 5
    shifted = landmarks.copy()
    shifted[3, :, 0] += 70.0  # frame 3: the face slid past the right edge
    x, outside = _core.preprocess(frames, shifted, template, order, 5, 64, with_outside_counts=True)
    assert outside[3] > 0 and outside[[0, 1, 2, 4]].tolist() == [0] * 4
    np.testing.assert_array_equal(x, _core.preprocess(frames, shifted, template, order, 5, 64))


def test_arrays_from_another_process_are_accepted() -> None:
    # multiprocessing hands over unpickled arrays whose dtype objects are equal but not identical
    rng = np.random.default_rng(6)
    session = _session(rng, 5, 60, 80, 16)
    copies = pickle.loads(pickle.dumps(session))
    assert copies[0].dtype is not session[0].dtype
    np.testing.assert_array_equal(
        _core.preprocess(*copies, 5, 16), _core.preprocess(*session, 5, 16)
    )
    aligned, _ = _core.align_faces(copies[0], copies[1], copies[2], 16)
    aligned = pickle.loads(pickle.dumps(aligned))
    _core.diffnorm(aligned, copies[3], 5)


def test_two_threads_run_preprocess_concurrently() -> None:
    rng = np.random.default_rng(2)
    frames, landmarks, template, order = _session(rng, 5, 360, 640, 128)
    expected = _core.preprocess(frames, landmarks, template, order, 5, 128)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(5):
                results.append(_core.preprocess(frames, landmarks, template, order, 5, 128))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 10
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_bad_inputs_give_clear_errors() -> None:
    frames, landmarks, template, order = _session(np.random.default_rng(0), 5, 40, 40, 16)
    with pytest.raises(ValueError, match="n0 = 5 frames"):
        _core.preprocess(frames[:4], landmarks[:4], template, order, 5, 16)
    with pytest.raises(ValueError, match=r"n0 must be in \[3, 8\]"):
        _core.preprocess(frames, landmarks, template, order, 2, 16)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.preprocess(frames[:, ::-1], landmarks, template, order, 5, 16)
    with pytest.raises(TypeError, match="uint8"):
        _core.preprocess(frames.astype(np.uint16), landmarks, template, order, 5, 16)
    bad = landmarks.copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        _core.preprocess(frames, bad, template, order, 5, 16)
    with pytest.raises(ValueError, match="permutation"):
        _core.preprocess(frames, landmarks, template, np.zeros(5, np.int64), 5, 16)
    with pytest.raises(ValueError, match="size"):
        _core.preprocess(frames, landmarks, template, order, 5, 1)
