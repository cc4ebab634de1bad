"""The per-primary response of a face, measured through the camera as the daemon sees it: the room
light drifting and rippling between the states and the head moving a little must not change it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from flashfas_edge.flash_levels import DEFAULT_LEVELS, HUE_LADDER
from flashfas_edge.pipeline.colour_response import (
    ColourResponseError,
    estimate_colour_response,
    face_region_mask,
)
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.sim.frame_composer import FrameComposer, warp_frame, warp_points
from flashfas_edge.sim.scene import SceneRequest, build_scene
from flashfas_edge.sim.sensor import develop

PERIOD_US = 33_333
STATE_US = 4 * PERIOD_US  # frame-locked: the ripple is at another phase in each state
# play order of the five hue-ladder states (brightest first in HUE_LADDER): not sorted
PLAY = (2, 0, 4, 1, 3)


@pytest.fixture(scope="module")
def scene():
    # a noise-free camera, so that what is left is the estimator's own error
    profile = replace(PROFILE_BY_NAME["ledring_mipi"], full_well_e=1e12, read_noise_e=0.0,
                      jpeg_quality=None)
    return build_scene(SceneRequest("live", "bedroom", profile, 31, 7, physics="spectral",
                                    distance_range_m=(0.35, 0.4)))


def _drives() -> np.ndarray:
    return np.array([DEFAULT_LEVELS[i] * np.array(HUE_LADDER[i]) for i in PLAY])


def _frames(sc, drift_per_s: float, flicker: float, shift_px: float = 0.0,
            mains_hz: float = 50.0, state_us: int = STATE_US):
    """Clean frames of the play order, one per state, with the room light changing as asked;
    (uint8 frames, start times, exposure, readout, per-frame landmarks)."""
    sc.ambient_light.drift_per_s = drift_per_s
    sc.ambient_light.flicker = flicker
    sc.ambient_light.flicker_phase = 0.7
    sc.ambient_light.mains_hz = mains_hz
    profile = sc.request.profile
    comp = FrameComposer(sc, profile.readout_us)
    drives = _drives()
    colours = sc.state_light(np.vstack([drives, [[0.3, 0.3, 0.3]]]), np.ones(len(drives) + 1))
    onsets = 1e6 + state_us * np.arange(len(drives), dtype=np.float64)
    starts = onsets + 2_000.0 + PERIOD_US  # wholly inside each state
    t_ref = float(onsets[0] + len(drives) * state_us / 2)
    rng = np.random.default_rng(3)
    frames, marks = [], []
    for k, s in enumerate(starts):
        lin = comp.linear_frame(float(s), t_ref, colours, onsets, state_us)
        m = np.array([[1.0, 0.0, shift_px * k], [0.0, 1.0, -0.5 * shift_px * k]])
        frames.append(develop(warp_frame(lin, m), profile, comp.sensor, rng))
        marks.append(warp_points(sc.landmarks, m))
    return frames, starts, comp.exposure_us, profile.readout_us, np.array(marks)


def _truth(sc) -> np.ndarray:
    region = face_region_mask(sc.flash.shape[:2], sc.landmarks)
    m = sc.flash_primaries[region].sum(axis=0)
    return m.ravel() / m.sum()


def _measure(sc, frames, starts, exposure, readout, marks, **kw) -> np.ndarray:
    r = estimate_colour_response(frames, _drives(), starts, exposure, readout, marks,
                                 sc.request.profile.gamma, **kw)
    return r.normalised()


def test_a_still_room_gives_the_faces_own_response(scene):
    frames, starts, exposure, readout, marks = _frames(scene, 0.0, 0.0)
    got = _measure(scene, frames, starts, exposure, readout, marks)
    np.testing.assert_allclose(got, _truth(scene), atol=0.004)


# States whose length is not a whole number of ripple periods: each sees the lamp at another
# phase (at 60 Hz mains, 30 fps frame-locked states are whole periods of the 120 Hz ripple).
@pytest.mark.parametrize(("mains_hz", "state_us"), [(50.0, STATE_US), (60.0, 104_000)])
def test_a_drifting_rippling_room_light_is_modelled_not_mistaken_for_the_face(scene, mains_hz,
                                                                              state_us):
    frames, starts, exposure, readout, marks = _frames(scene, 0.08, 0.04, mains_hz=mains_hz,
                                                       state_us=state_us)
    truth = _truth(scene)
    plain = _measure(scene, frames, starts, exposure, readout, marks, ripple_hz=())
    modelled = estimate_colour_response(frames, _drives(), starts, exposure, readout, marks,
                                        scene.request.profile.gamma)
    # without the model the room light's change lands in the response, in the room's colour:
    # several times the spread of skin among people (about 0.01 per entry)
    assert np.abs(plain - truth).max() > 0.05
    np.testing.assert_allclose(modelled.normalised(), truth, atol=0.002)
    assert modelled.ambient_terms[0] == pytest.approx(0.08, abs=0.01)
    # the ripple's amplitude, a little less than the lamp's over each row's exposure
    assert np.hypot(*modelled.ambient_terms[1:]) == pytest.approx(0.04, rel=0.15)
    assert modelled.ripple_hz == 2 * mains_hz


def test_a_head_that_moves_between_states_is_warped_back(scene):
    frames, starts, exposure, readout, marks = _frames(scene, 0.0, 0.0, shift_px=0.8)
    truth = _truth(scene)
    followed = _measure(scene, frames, starts, exposure, readout, marks)
    np.testing.assert_allclose(followed, truth, atol=0.002)
    fixed = _measure(scene, frames, starts, exposure, readout, marks[0])
    assert np.abs(fixed - truth).max() > 2 * np.abs(followed - truth).max()


def test_frames_that_cannot_give_a_response_are_refused_with_the_reason(scene):
    frames, starts, exposure, readout, marks = _frames(scene, 0.0, 0.0)
    white = np.repeat(np.array(DEFAULT_LEVELS)[list(PLAY), None], 3, axis=1)
    with pytest.raises(ColourResponseError, match="span the three primaries"):
        estimate_colour_response(frames, white, starts, exposure, readout, marks, 2.2)
    lit_only = _drives() + 0.1
    with pytest.raises(ColourResponseError, match="ambient-only"):
        estimate_colour_response(frames, lit_only, starts, exposure, readout, marks, 2.2)
    away = marks + np.array([5000.0, 0.0])
    with pytest.raises(ColourResponseError, match="outside the frame"):
        estimate_colour_response(frames, _drives(), starts, exposure, readout, away, 2.2)
    with pytest.raises(ColourResponseError, match="one drive"):
        estimate_colour_response(frames[:4], _drives(), starts, exposure, readout, marks, 2.2)
    as_float = [f.astype(np.float32) for f in frames]
    with pytest.raises(ColourResponseError, match="uint8"):
        estimate_colour_response(as_float, _drives(), starts, exposure, readout, marks, 2.2)
