"""Step 5/6 quality gates on synthetic frames: each failing gate is a retry with its reason."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from flashfas_edge.capture.base import Frame
from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.flash.base import FlashSchedule, FlashState
from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.pipeline.face_region import face_crop, pixel_noise_sigma
from flashfas_edge.pipeline.face_track import track_face
from flashfas_edge.pipeline.flash_gates import gate_flash, measure_flash
from flashfas_edge.pipeline.rejection import CheckRejected
from flashfas_edge.pipeline.result import Reason, Verdict

H, W = 240, 320
LEVELS = (1.0, 0.75, 0.5, 0.25, 0.0)
GATES = GateThresholds()


def _landmarks(cx=160.0, cy=120.0, iod=50.0):
    unit = np.array([[-0.5, -0.3], [0.5, -0.3], [0.0, 0.15], [-0.4, 0.6], [0.4, 0.6]])
    return (unit * iod + [cx, cy]).astype(np.float32)


def _schedule(play=(2, 0, 4, 1, 3)):
    states = tuple(FlashState((1.0, 1.0, 1.0), LEVELS[i]) for i in play)
    order = tuple(int(np.argsort(play)[r]) for r in range(5))
    return FlashSchedule(states=states, state_duration_us=100_000, nonce="n", order=order)


def _face_image(level, ambient=0.15, gain=0.5, noise_dl=1.5, seed=0, points=None):
    """A shaded elliptic 'face' lit by ambient + flash, gamma 2.2, with camera noise."""
    rng = np.random.default_rng(seed)
    pts = _landmarks() if points is None else points
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
    r2 = ((xx - cx) / 60) ** 2 + ((yy - cy) / 75) ** 2
    shading = np.clip(1 - r2, 0, 1) ** 0.5  # cos θ of a dome facing the camera
    linear = np.where(r2 < 1, ambient * 0.6 + gain * level * shading, ambient * 0.3)
    img = 255 * np.clip(linear, 0, 1) ** (1 / 2.2)
    img = img[..., None] * np.array([1.0, 0.85, 0.75]) + rng.normal(0, noise_dl, (H, W, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _evidence(schedule, **kwargs):
    images = [_face_image(s.intensity, seed=k, **kwargs) for k, s in enumerate(schedule.states)]
    marks = np.stack([_landmarks()] * len(images))
    return measure_flash(images, marks, schedule, GATES, gamma=2.2)


def _frames(images, landmarks):
    return [
        Frame(index=k, t_start_us=k, exposure_us=1, readout_us=0, image=img, meta={"landmarks": lm})
        for k, (img, lm) in enumerate(zip(images, landmarks, strict=True))
    ]


def _reason(fn):
    with pytest.raises(CheckRejected) as info:
        fn()
    return info.value


def test_noise_estimate_recovers_the_added_noise():
    img = _face_image(0.5, noise_dl=3.0)
    sigma = pixel_noise_sigma(face_crop(img, _landmarks()))
    # σ of the channel mean (the luma the response is measured on): 3 / sqrt(3) ≈ 1.73.
    assert 1.5 < sigma < 2.1
    quiet = pixel_noise_sigma(face_crop(_face_image(0.5, noise_dl=0.0), _landmarks()))
    assert quiet < 0.6


def test_a_good_capture_passes_every_flash_gate():
    evidence = _evidence(_schedule())
    gate_flash(evidence, GATES)
    assert evidence.fit.corr > 0.98
    assert evidence.detail["flash_snr"] > 10


def test_overexposed_face_gets_retry():
    rejected = _reason(lambda: gate_flash(_evidence(_schedule(), ambient=0.9, gain=1.0), GATES))
    assert (rejected.verdict, rejected.reason) == (Verdict.RETRY, Reason.OVEREXPOSED)


def test_underexposed_face_gets_retry():
    rejected = _reason(lambda: gate_flash(_evidence(_schedule(), ambient=0.0, gain=0.004), GATES))
    assert (rejected.verdict, rejected.reason) == (Verdict.RETRY, Reason.UNDEREXPOSED)


def test_flash_drowned_by_ambient_light_gets_low_snr_retry():
    rejected = _reason(
        lambda: gate_flash(_evidence(_schedule(), ambient=0.8, gain=0.01, noise_dl=3), GATES)
    )
    assert (rejected.verdict, rejected.reason) == (Verdict.RETRY, Reason.LOW_FLASH_SNR)


def test_flash_never_seen_gives_retry_not_spoof_or_live():
    rejected = _reason(lambda: gate_flash(_evidence(_schedule(), gain=0.0), GATES))
    assert (rejected.verdict, rejected.reason) == (Verdict.RETRY, Reason.LOW_FLASH_SNR)


def test_reflections_of_another_sequence_are_a_challenge_mismatch():
    recorded = _schedule(play=(4, 3, 0, 2, 1))
    images = [_face_image(s.intensity, seed=k) for k, s in enumerate(recorded.states)]
    marks = np.stack([_landmarks()] * 5)
    evidence = measure_flash(images, marks, _schedule(), GATES, gamma=2.2)
    rejected = _reason(lambda: gate_flash(evidence, GATES))
    assert (rejected.verdict, rejected.reason) == (Verdict.SPOOF, Reason.CHALLENGE_MISMATCH)
    assert rejected.detail["challenge_corr"] < GATES.min_challenge_corr


def test_a_challenge_fitted_best_but_not_by_the_margin_is_unclear_not_spoof():
    """A live face under noise: its own order fits best (residual ratio ≥ 1), just not by the
    margin. That is retry / challenge_unclear; another order fitting better stays a spoof."""
    import dataclasses

    good = _evidence(_schedule())
    marginal = dataclasses.replace(good.fit, corr=0.97, best_other_corr=0.965)
    assert 1.0 <= marginal.residual_ratio < GATES.min_challenge_residual_ratio
    rejected = _reason(lambda: gate_flash(dataclasses.replace(good, fit=marginal), GATES))
    assert (rejected.verdict, rejected.reason) == (Verdict.RETRY, Reason.CHALLENGE_UNCLEAR)
    assert rejected.detail["challenge_verified"] is False
    other = dataclasses.replace(good.fit, corr=0.96, best_other_corr=0.97)  # ratio < 1
    rejected = _reason(lambda: gate_flash(dataclasses.replace(good, fit=other), GATES))
    assert (rejected.verdict, rejected.reason) == (Verdict.SPOOF, Reason.CHALLENGE_MISMATCH)


def test_one_face_still_and_well_sized_passes_the_face_gates():
    marks = [_landmarks()] * 5
    track = track_face(_frames([_face_image(0.5)] * 5, marks), GroundTruthLandmarks(), GATES)
    assert track.landmarks.shape == (5, 5, 2)
    assert track.interocular_px == pytest.approx(50.0)
    assert track.motion_iod == 0.0


def test_no_face_gets_retry():
    # the face is seen in 2 of 5 frames: too few to carry it into the others
    frames = _frames([_face_image(0.5)] * 5, [_landmarks()] * 2 + [None] * 3)
    rejected = _reason(lambda: track_face(frames, GroundTruthLandmarks(), GATES))
    assert rejected.reason is Reason.NO_FACE
    assert rejected.detail["frames_with_face"] == 2
    frames = _frames([_face_image(0.5)] * 5, [None] * 5)
    assert _reason(lambda: track_face(frames, GroundTruthLandmarks(), GATES)).reason is (
        Reason.NO_FACE
    )


def test_a_frame_the_detector_misses_takes_its_landmarks_from_registration():
    # The ambient-only frame of a dark room: the face is there, the detector does not see it.
    truth = _landmarks()
    images = [_textured_face(level, truth, seed=k) for k, level in enumerate(LEVELS)]
    frames = _frames(images, [truth] * 4 + [None])
    track = track_face(frames, GroundTruthLandmarks(), GATES)
    assert track.detail["frames_with_face"] == 4 and track.detail["registered"] is True
    np.testing.assert_allclose(track.landmarks[4], truth, atol=0.5)
    # without registration a missing frame is a missing face
    rejected = _reason(lambda: track_face(frames, GroundTruthLandmarks(), GATES, register=False))
    assert rejected.reason is Reason.NO_FACE


def test_two_faces_get_retry_but_a_tiny_background_face_does_not():
    two = np.stack([_landmarks(100, 120, 50), _landmarks(230, 120, 45)])
    rejected = _reason(
        lambda: track_face(
            _frames([_face_image(0.5)] * 5, [two] * 5), GroundTruthLandmarks(), GATES
        )
    )
    assert rejected.reason is Reason.MULTIPLE_FACES
    small = np.stack([_landmarks(150, 120, 50), _landmarks(290, 40, 10)])
    track = track_face(_frames([_face_image(0.5)] * 5, [small] * 5), GroundTruthLandmarks(), GATES)
    assert track.interocular_px == pytest.approx(50.0)


def test_face_too_small_and_too_large_get_retry():
    small = _frames([_face_image(0.5)] * 5, [_landmarks(iod=12)] * 5)
    assert _reason(lambda: track_face(small, GroundTruthLandmarks(), GATES)).reason is (
        Reason.FACE_TOO_SMALL
    )
    large = _frames([_face_image(0.5)] * 5, [_landmarks(iod=120)] * 5)
    assert _reason(lambda: track_face(large, GroundTruthLandmarks(), GATES)).reason is (
        Reason.FACE_TOO_LARGE
    )


def test_motion_beyond_the_alignment_budget_gets_retry():
    moving = [_landmarks(cx=140 + 6 * k) for k in range(5)]  # 24 px = 0.48 IOD over the sequence
    images = [_face_image(0.5, seed=k, points=p) for k, p in enumerate(moving)]
    rejected = _reason(lambda: track_face(_frames(images, moving), GroundTruthLandmarks(), GATES))
    assert rejected.reason is Reason.MOTION
    assert rejected.detail["motion_iod"] > GATES.max_motion_iod
    assert rejected.detail["registered"] is True  # the face itself moved, not just the points
    steady = [_landmarks(cx=160 + 0.5 * k) for k in range(5)]
    images = [_face_image(0.5, seed=k, points=p) for k, p in enumerate(steady)]
    track_face(_frames(images, steady), GroundTruthLandmarks(), GATES)


def _textured_face(level, points, seed):
    """_face_image with skin texture that moves with the face (what registration locks on)."""
    base = _face_image(level, noise_dl=0.0, seed=seed, points=points).astype(np.float32)
    texture = np.random.default_rng(99).normal(0, 1, (H + 40, W + 40)).astype(np.float32)
    texture = cv2.GaussianBlur(texture, (0, 0), 2.0) * 60
    cx, cy = points.mean(axis=0)
    dx, dy = int(round(cx - 160)), int(round(cy - 120))
    patch = texture[20 - dy : 20 - dy + H, 20 - dx : 20 - dx + W]
    noise = np.random.default_rng(seed).normal(0, 1.5, base.shape)
    return np.clip(base + patch[..., None] + noise, 0, 255).astype(np.uint8)


def test_detector_jitter_on_a_still_face_does_not_read_as_motion():
    # A still face; the detector's points jump by up to 4 px (0.08 IOD) from frame to frame.
    rng = np.random.default_rng(1)
    truth = _landmarks()
    images = [_textured_face(level, truth, seed=k) for k, level in enumerate(LEVELS)]
    jittery = [truth + rng.uniform(-4, 4, truth.shape).astype(np.float32) for _ in LEVELS]
    track = track_face(_frames(images, jittery), GroundTruthLandmarks(), GATES)
    assert track.detail["registered"] is True
    assert track.motion_iod < 0.01  # one landmark set, moved by the (zero) registered shifts
    assert track.detail["detector_jitter_iod"] > 0.05
    # without registration the same points read as motion close to the gate
    raw = track_face(_frames(images, jittery), GroundTruthLandmarks(), GATES, register=False)
    assert raw.motion_iod > 0.05


def test_a_mismatch_on_a_barely_visible_flash_is_retry_not_spoof():
    recorded = _schedule(play=(4, 3, 0, 2, 1))
    images = [
        _face_image(s.intensity, ambient=0.5, gain=0.02, noise_dl=1.5, seed=k)
        for k, s in enumerate(recorded.states)
    ]
    evidence = measure_flash(images, np.stack([_landmarks()] * 5), _schedule(), GATES, gamma=2.2)
    snr = evidence.detail["flash_snr"]
    assert GATES.min_flash_snr <= snr < GATES.min_flash_snr_for_mismatch
    rejected = _reason(lambda: gate_flash(evidence, GATES))
    assert (rejected.verdict, rejected.reason) == (Verdict.RETRY, Reason.LOW_FLASH_SNR)
    assert rejected.detail["challenge_verified"] is False


def _dark_frame(seed):
    """A dark room's ambient-only state: grey level ~20, noise swamps the face's texture."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(20, 6, (H, W, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("dark_slot", [0, 2])
def test_one_frame_too_dark_to_register_takes_its_neighbours_shift(dark_slot):
    """The detector's jitter on a still face, one state frame mostly noise (the first one too:
    the frame with the most contrast is the reference): registration still carries the face,
    and the dark frame's landmarks come from the frames around it, not from its detector."""
    rng = np.random.default_rng(2)
    truth = _landmarks()
    images = [_textured_face(level, truth, seed=k) for k, level in enumerate(LEVELS)]
    images[dark_slot] = _dark_frame(dark_slot)
    jittery = [truth + rng.uniform(-4, 4, truth.shape).astype(np.float32) for _ in LEVELS]
    jittery[dark_slot] = truth + np.float32(9.0)  # the detector's guess on the noise: far off
    track = track_face(_frames(images, jittery), GroundTruthLandmarks(), GATES)
    assert track.detail["registered"] is True
    assert track.motion_iod < 0.02
    np.testing.assert_allclose(track.landmarks[dark_slot], track.landmarks[4 - dark_slot // 2],
                               atol=0.5)
    # two such frames are too many: nothing to interpolate from with confidence
    images[3] = _dark_frame(7)
    raw = track_face(_frames(images, jittery), GroundTruthLandmarks(),
                     GATES.model_copy(update={"max_motion_iod": 1.0}))
    assert raw.detail["registered"] is False
