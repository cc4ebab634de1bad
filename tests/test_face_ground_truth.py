"""The simulator's ground-truth landmark provider, with configurable noise."""

from __future__ import annotations

import numpy as np
import pytest

from flashfas_edge.capture.base import Frame
from flashfas_edge.face.ground_truth import GroundTruthLandmarks

POINTS = np.array([[100, 100], [150, 100], [125, 130], [105, 150], [145, 150]], np.float32)


def _frame(meta):
    return Frame(0, 0, 1, 0, np.zeros((240, 320, 3), np.uint8), meta=meta)


def test_returns_the_true_points_and_a_box_around_them():
    (face,) = GroundTruthLandmarks().detect(_frame({"landmarks": POINTS}))
    np.testing.assert_array_equal(face.points, POINTS)
    x0, y0, x1, y1 = face.box
    assert x0 < 100 and x1 > 150 and y0 < 100 and y1 > 150
    assert face.score == 1.0


def test_noise_has_the_configured_spread_and_is_reproducible_with_a_seed():
    frame = _frame({"landmarks": POINTS})
    provider = GroundTruthLandmarks(noise_px=2.0, seed=7)
    errors = np.concatenate([provider.detect(frame)[0].points - POINTS for _ in range(400)])
    assert errors.std() == pytest.approx(2.0, rel=0.1)
    assert abs(errors.mean()) < 0.2
    a = GroundTruthLandmarks(noise_px=2.0, seed=3).detect(frame)[0].points
    b = GroundTruthLandmarks(noise_px=2.0, seed=3).detect(frame)[0].points
    np.testing.assert_array_equal(a, b)


def test_several_faces_come_largest_first_and_none_means_no_face():
    small = POINTS * 0.5
    faces = GroundTruthLandmarks().detect(_frame({"landmarks": np.stack([small, POINTS])}))
    assert len(faces) == 2
    np.testing.assert_array_equal(faces[0].points, POINTS)
    assert GroundTruthLandmarks().detect(_frame({"landmarks": None})) == []
    nan = np.full((5, 2), np.nan, np.float32)
    assert GroundTruthLandmarks().detect(_frame({"landmarks": nan})) == []


def test_a_frame_without_ground_truth_shows_no_face_and_bad_shapes_are_refused():
    assert GroundTruthLandmarks().detect(_frame({})) == []
    with pytest.raises(ValueError):
        GroundTruthLandmarks().detect(_frame({"landmarks": np.zeros((4, 2))}))
    with pytest.raises(ValueError):
        GroundTruthLandmarks(noise_px=-1)


def test_the_simulated_cameras_list_of_every_face_in_view_is_read():
    # SimCamera: "landmarks" holds the main face, "faces" every face in view, main first.
    behind = POINTS * 0.6 + 10
    frame = _frame({"landmarks": POINTS, "faces": [POINTS, behind]})
    faces = GroundTruthLandmarks().detect(frame)
    assert len(faces) == 2
    np.testing.assert_array_equal(faces[0].points, POINTS)
