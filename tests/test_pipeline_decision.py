"""Step 10, the decision: live at or above the threshold, spoof below the bundle's spoof edge,
and in between a retry that never opens the door; a calibrated (stricter) threshold only widens
that band upwards."""

from __future__ import annotations

import numpy as np
import pytest

from flashfas_edge.inference.backend import ModelOutput
from flashfas_edge.pipeline.decision import (
    ImplausibleModelOutput,
    decide,
    resolve_spoof_below,
)
from flashfas_edge.pipeline.result import Reason, Verdict


def _out(p: float) -> ModelOutput:
    return ModelOutput(p_live=p, type_probs={}, depth=np.zeros((2, 2), np.float32))


def test_a_score_in_the_band_is_a_retry_and_below_it_a_spoof():
    assert decide(_out(0.98), 0.97, 0.54) == (Verdict.LIVE, Reason.SCORE_ABOVE_THRESHOLD)
    assert decide(_out(0.97), 0.97, 0.54) == (Verdict.LIVE, Reason.SCORE_ABOVE_THRESHOLD)
    assert decide(_out(0.96), 0.97, 0.54) == (Verdict.RETRY, Reason.SCORE_UNCERTAIN)
    assert decide(_out(0.54), 0.97, 0.54) == (Verdict.RETRY, Reason.SCORE_UNCERTAIN)
    assert decide(_out(0.53), 0.97, 0.54) == (Verdict.SPOOF, Reason.SCORE_BELOW_THRESHOLD)
    # a bundle without a band: below the threshold is spoof
    assert decide(_out(0.96), 0.97) == (Verdict.SPOOF, Reason.SCORE_BELOW_THRESHOLD)


def test_a_calibrated_threshold_raises_the_band_top_never_its_bottom_above_it():
    assert resolve_spoof_below(0.99, 0.54) == 0.54  # calibration made the kiosk stricter
    assert resolve_spoof_below(0.4, 0.54) == 0.4  # never a band edge above the threshold
    assert resolve_spoof_below(0.97, None) == 0.97  # no band
    # an edge above the threshold (a hand-made call) still never calls that score live
    assert decide(_out(0.5), 0.45, 0.6)[0] is Verdict.LIVE
    assert decide(_out(0.44), 0.45, 0.6)[0] is Verdict.SPOOF


@pytest.mark.parametrize("p", [float("nan"), 1.5, -0.1])
def test_a_score_that_is_not_a_probability_is_refused_with_or_without_a_band(p):
    with pytest.raises(ImplausibleModelOutput):
        decide(_out(p), 0.9, 0.5)
