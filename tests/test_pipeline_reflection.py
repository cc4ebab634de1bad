"""Step 5: the face must reflect this check's flash sequence, in order and in time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.pipeline.reflection_check import ReflectionFit, fit_reflection

LEVELS = np.array([1.0, 0.75, 0.5, 0.25, 0.0])


def _observed(excitation, ambient=0.1, gain=(0.5, 0.35, 0.3), noise=0.0, gamma=2.2, seed=0):
    """Face means (camera levels) of a Lambertian face under the given excitation."""
    rng = np.random.default_rng(seed)
    linear = ambient + excitation * np.asarray(gain)
    linear = linear + rng.normal(0, noise, size=linear.shape)
    return 255.0 * np.clip(linear, 0, 1) ** (1 / gamma)


def _accepted(fit: ReflectionFit) -> bool:
    gates = GateThresholds()
    return (
        fit.corr >= gates.min_challenge_corr
        and fit.residual_ratio >= gates.min_challenge_residual_ratio
    )


def _white(levels):
    return np.repeat(np.asarray(levels)[:, None], 3, axis=1)


def test_true_reflection_matches_its_challenge():
    play = LEVELS[[2, 0, 4, 1, 3]]
    fit = fit_reflection(_observed(_white(play), noise=0.002), _white(play))
    assert fit.corr > 0.99
    assert fit.margin > 0.05
    assert _accepted(fit)
    assert all(g > 0 for g in fit.gain)


def test_every_other_order_of_the_levels_is_refused():
    """A replay follows an earlier random order: only the drawn order itself is accepted."""
    import itertools

    challenge = _white(LEVELS[[2, 0, 4, 1, 3]])
    passing = []
    for perm in itertools.permutations(range(5)):
        seen = _observed(_white(LEVELS[list(perm)]), noise=0.001)
        if _accepted(fit_reflection(seen, challenge)):
            passing.append(perm)
    assert passing == [(2, 0, 4, 1, 3)]


def test_stream_delayed_by_one_state_matches_a_shifted_challenge_better():
    play = _white(LEVELS[[1, 3, 0, 4, 2]])
    delayed = np.roll(play, 1, axis=0)  # slot k shows what slot k−1 commanded
    fit = fit_reflection(_observed(delayed), play)
    assert fit.best_other_order == (4, 0, 1, 2, 3)
    assert fit.margin < 0
    assert not _accepted(fit)


def test_a_noisy_but_true_reflection_still_beats_every_other_order():
    """Low flash SNR (sunlight): the fit is imperfect, yet no other order explains it better."""
    play = _white(LEVELS[[3, 1, 4, 0, 2]])
    fits = []
    for seed in range(100):  # a ~4-level flash response under ±0.5-level measurement noise
        rng = np.random.default_rng(seed)
        seen = _observed(play, ambient=0.3, gain=(0.02, 0.015, 0.012))
        fits.append(fit_reflection(seen + rng.normal(0, 0.5, (5, 3)), play))
    corrs = np.array([f.corr for f in fits])
    assert np.mean(corrs < 0.95) > 0.3  # a fixed r ≥ 0.95 floor would refuse these faces
    assert np.mean([_accepted(f) for f in fits]) > 0.65


def test_repeated_states_are_not_counted_as_other_orders():
    play = _white([1.0, 0.5, 0.5, 0.0, 0.25])
    fit = fit_reflection(_observed(play), play)
    assert fit.margin > 0.05


def test_colour_challenge_is_checked_per_channel():
    rng = np.random.default_rng(3)
    palette = np.array([[1, 0.2, 0.2], [0.2, 1, 0.2], [0.2, 0.2, 1]])
    colours = palette[rng.integers(0, 3, size=5)]
    play = LEVELS[[4, 2, 0, 3, 1]][:, None] * colours
    good = fit_reflection(_observed(play, noise=0.002), play)
    assert good.corr > 0.98 and _accepted(good)
    other_colours = palette[(rng.integers(0, 3, size=5))]
    other = LEVELS[[4, 2, 0, 3, 1]][:, None] * other_colours
    if not np.allclose(other, play):
        assert fit_reflection(_observed(other, noise=0.002), play).corr < good.corr


def test_a_face_that_does_not_react_has_no_correlation():
    play = _white(LEVELS[[0, 1, 2, 3, 4]])
    flat = np.full((5, 3), 120.0)
    fit = fit_reflection(flat, play)
    assert fit.corr == 0.0


def test_darker_with_more_flash_is_not_a_reflection():
    play = _white(LEVELS[[0, 1, 2, 3, 4]])
    inverted = _observed(_white(LEVELS[[4, 3, 2, 1, 0]]))
    assert fit_reflection(inverted, play).corr == 0.0


def test_shapes_are_checked():
    with pytest.raises(ValueError):
        fit_reflection(np.zeros((5, 3)), np.zeros((4, 3)))


@settings(max_examples=200, deadline=None)
@given(
    perm=st.permutations(range(5)),
    ambient=st.floats(0.0, 0.45),
    gain=st.tuples(*[st.floats(0.02, 0.5)] * 3),
    camera_gamma=st.floats(1.8, 2.6),
)
def test_any_true_reflection_passes_whatever_the_ambient_gain_and_camera_gamma(
    perm, ambient, gain, camera_gamma
):
    """A Lambertian face under the drawn challenge matches it, even when the camera's transfer
    function is not the configured 2.2 (devices range 2.0–2.4)."""
    play = _white(LEVELS[list(perm)])
    seen = _observed(play, ambient=ambient, gain=gain, gamma=camera_gamma)
    fit = fit_reflection(seen, play, gamma=2.2)
    assert fit.corr >= 0.99
    assert fit.residual_ratio >= 10
