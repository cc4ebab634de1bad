"""The real-camera landmark detector (MTCNN on ONNX Runtime) on a real photograph.

The photo is scikit-image's ``astronaut.png`` (Eileen Collins, NASA, public domain), read from the
installed package's data folder without importing scikit-image.
"""

from __future__ import annotations

from importlib import metadata

import cv2
import numpy as np
import pytest

from flashfas_edge.capture.base import Frame
from flashfas_edge.face.config import LandmarkConfig
from flashfas_edge.face.factory import create_landmark_provider
from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.face.mtcnn_landmarks import MtcnnLandmarks, nms
from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.pipeline.face_track import track_face
from flashfas_edge.pipeline.rejection import CheckRejected
from flashfas_edge.pipeline.result import Reason

# Hand-placed on the 512×512 photo (pupils, nose tip, mouth corners), image-left first.
ASTRONAUT_TRUTH = np.array(
    [[203, 100], [246, 102], [224, 126], [202, 138], [244, 140]], dtype=np.float32
)


def _astronaut() -> np.ndarray:
    try:
        path = metadata.distribution("scikit-image").locate_file("skimage/data/astronaut.png")
    except metadata.PackageNotFoundError:
        pytest.skip("scikit-image (dev extra) is not installed: no real test photo")
    image = cv2.imread(str(path))
    if image is None:
        pytest.skip(f"cannot read {path}")
    return np.ascontiguousarray(image[:, :, ::-1])  # RGB like every Frame


def _frame(image: np.ndarray, index: int = 0) -> Frame:
    return Frame(index=index, t_start_us=0, exposure_us=1, readout_us=0, image=image)


@pytest.fixture(scope="module")
def detector():
    return MtcnnLandmarks(min_face_px=40, threads=1)


def _error_iod(points: np.ndarray, truth: np.ndarray) -> float:
    iod = float(np.linalg.norm(truth[1] - truth[0]))
    return float(np.linalg.norm(points - truth, axis=1).max() / iod)


def test_finds_the_one_face_in_a_real_photo_with_accurate_landmarks(detector):
    faces = detector.detect(_frame(_astronaut()))
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.95
    assert _error_iod(face.points, ASTRONAUT_TRUTH) < 0.15
    x0, y0, x1, y1 = face.box
    assert x0 < ASTRONAUT_TRUTH[:, 0].min() and x1 > ASTRONAUT_TRUTH[:, 0].max()
    assert y0 < ASTRONAUT_TRUTH[:, 1].min() and y1 > ASTRONAUT_TRUTH[:, 1].max()


def test_landmarks_follow_the_face_when_the_photo_is_mirrored_and_scaled(detector):
    image = _astronaut()
    mirrored = np.ascontiguousarray(image[:, ::-1])
    truth = ASTRONAUT_TRUTH.copy()
    truth[:, 0] = image.shape[1] - 1 - truth[:, 0]
    truth = truth[[1, 0, 2, 4, 3]]  # image-left first again
    (face,) = detector.detect(_frame(mirrored))
    assert _error_iod(face.points, truth) < 0.15
    half = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    (face,) = detector.detect(_frame(half))
    assert _error_iod(face.points, ASTRONAUT_TRUTH / 2) < 0.2


def test_no_face_in_a_blank_or_noise_frame(detector):
    rng = np.random.default_rng(0)
    assert detector.detect(_frame(np.full((240, 320, 3), 128, np.uint8))) == []
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    assert detector.detect(_frame(noise)) == []


def test_two_people_side_by_side_are_a_multiple_faces_retry(detector):
    image = _astronaut()[0:300, 100:380]
    pair = np.ascontiguousarray(np.concatenate([image, image[:, ::-1]], axis=1))
    faces = detector.detect(_frame(pair))
    assert len(faces) == 2
    with pytest.raises(CheckRejected) as info:
        track_face([_frame(pair, k) for k in range(5)], detector, GateThresholds())
    assert info.value.reason is Reason.MULTIPLE_FACES


def test_face_track_on_the_real_photo_passes_the_face_gates(detector):
    frames = [_frame(_astronaut(), k) for k in range(5)]
    track = track_face(frames, detector, GateThresholds())
    assert track.motion_iod < 0.02  # same image: the detector is deterministic
    assert 35 < track.interocular_px < 55


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float64)
    keep = nms(boxes, np.array([0.5, 0.9, 0.8]), threshold=0.5)
    assert keep.tolist() == [1, 2]


def test_config_selects_the_provider():
    assert isinstance(
        create_landmark_provider(LandmarkConfig(provider="ground_truth", noise_px=1.0)),
        GroundTruthLandmarks,
    )
    assert isinstance(create_landmark_provider(LandmarkConfig(provider="mtcnn")), MtcnnLandmarks)


def test_search_near_a_known_face_finds_it_again(detector):
    image = np.full((480, 640, 3), 120, np.uint8)
    image[:, 64:576] = _astronaut()[:480]
    frame = _frame(np.ascontiguousarray(image))
    (full,) = detector.detect(frame)
    (near,) = detector.detect_near(frame, full.box)
    iod = float(np.linalg.norm(full.points[1] - full.points[0]))
    assert float(np.abs(near.points - full.points).max()) < 0.08 * iod
    assert near.score > 0.95
    # nothing is searched far from the given box
    assert detector.detect_near(frame, (0.0, 400.0, 40.0, 440.0)) == []


def test_the_prominent_search_skips_the_finest_levels_and_keeps_faces_that_count(detector):
    """detect_prominent (the whole-frame search of the face gates) finds the same near face as
    the full search with fewer pyramid levels, and still every face at least half its size."""
    face = _astronaut()[40:300, 120:340]  # the head and shoulders, ~200 px
    image = np.full((480, 640, 3), 120, np.uint8)
    image[100:360, 20:240] = face
    single = _frame(np.ascontiguousarray(image))
    levels = {"n": 0}
    run = detector._run

    def counting(net, x):
        levels["n"] += net == "pnet"
        return run(net, x)

    detector._run = counting
    try:
        (full,) = detector.detect(single)
        full_levels, levels["n"] = levels["n"], 0
        (near,) = detector.detect_prominent(single, 0.5, 0.6)
        prominent_levels = levels["n"]
    finally:
        del detector._run
    assert prominent_levels < full_levels
    iod = float(np.linalg.norm(full.points[1] - full.points[0]))
    assert float(np.abs(near.points - full.points).max()) < 0.02 * iod
    # a second face at 0.6 of the first one's size counts, and is found
    second = cv2.resize(face, (132, 156), interpolation=cv2.INTER_AREA)
    image[150:306, 420:552] = second
    pair = _frame(np.ascontiguousarray(image))
    faces = detector.detect_prominent(pair, 0.5, 0.6)
    assert len(faces) == 2
    with pytest.raises(CheckRejected) as info:
        track_face([_frame(pair.image, k) for k in range(3)], detector, GateThresholds())
    assert info.value.reason is Reason.MULTIPLE_FACES
