"""ISO/IEC 30107-3 and ATR-FAS §4.2 error rates on hand-made score sets."""

from __future__ import annotations

import numpy as np
import pytest

from flashfas_edge.train.metrics import MetricsError, eer_threshold, evaluate_scores


def test_separable_scores_have_zero_eer_and_zero_errors_at_the_dev_threshold():
    scores = np.array([0.9, 0.8, 0.95, 0.1, 0.2, 0.05])
    labels = ["live", "live", "live", "print", "replay", "mask"]
    eer, threshold = eer_threshold(scores, labels)
    assert eer == 0.0
    report = evaluate_scores(scores, labels, threshold)
    assert report.hter == 0.0 and report.acer == 0.0
    assert report.bpcer_at_apcer_1pct == 0.0 and report.apcer_at_bpcer_1pct == 0.0


def test_a_clean_dev_split_puts_the_threshold_mid_gap_in_logit_space():
    scores = np.array([0.9, 0.99, 0.95, 0.1, 0.2, 0.01])
    labels = ["live", "live", "live", "print", "replay", "mask"]
    eer, threshold = eer_threshold(scores, labels)
    assert eer == 0.0
    # between the highest attack (0.2) and the lowest bona fide (0.9), not on 0.9
    assert 0.2 < threshold < 0.9
    logit = np.log(threshold / (1 - threshold))
    assert logit == pytest.approx(0.5 * (np.log(0.2 / 0.8) + np.log(0.9 / 0.1)))
    # scores of exactly 0 and 1 (saturated sigmoids) still give a finite threshold inside the gap
    saturated = np.array([1.0, 1.0, 0.0, 0.0])
    eer, threshold = eer_threshold(saturated, ["live", "live", "mask", "print"])
    assert eer == 0.0 and threshold == pytest.approx(0.5)


def test_apcer_is_counted_per_attack_species_and_acer_uses_the_worst():
    live = np.linspace(0.6, 1.0, 10)
    prints = np.array([0.1] * 9 + [0.7])  # one print of ten accepted at t = 0.5
    masks = np.array([0.1] * 5 + [0.7] * 5)  # half the masks accepted
    scores = np.concatenate([live, prints, masks])
    labels = ["live"] * 10 + ["print"] * 10 + ["mask"] * 10
    report = evaluate_scores(scores, labels, threshold=0.5)
    assert report.apcer == {"mask": 0.5, "print": 0.1}
    assert report.apcer_max == 0.5
    assert report.bpcer == 0.0
    assert report.apcer_pooled == pytest.approx(0.3)
    assert report.hter == pytest.approx(0.15)
    assert report.acer == pytest.approx(0.25)


def test_rates_at_fixed_operating_points():
    live = np.array([0.2] + [0.9] * 99)  # one bona fide scored low
    attack = np.array([0.95] + [0.1] * 99)  # one attack scored high
    scores = np.concatenate([live, attack])
    labels = ["live"] * 100 + ["replay"] * 100
    report = evaluate_scores(scores, labels, threshold=0.5)
    # At t = 0.2 only the one high attack passes (APCER 1 %) and no bona fide is rejected.
    assert report.bpcer_at_apcer_1pct == 0.0
    assert report.bpcer == pytest.approx(0.01)
    assert report.apcer_at_bpcer_1pct == pytest.approx(0.01)
    eer, _ = eer_threshold(scores, labels)
    assert eer == pytest.approx(0.01)


def test_a_split_without_bona_fide_samples_is_an_error_not_a_number():
    with pytest.raises(MetricsError):
        eer_threshold(np.array([0.1, 0.2]), ["print", "mask"])


def test_system_view_counts_retries_apart_from_apcer_and_bpcer():
    from flashfas_edge.train.system_eval import summarise

    def row(label, verdict, score, reason="score"):
        return {
            "label": label,
            "verdict": verdict,
            "reason": reason,
            "score": score,
            "scenario": "office",
            "device": "d",
        }

    rows = [
        row("live", "live", 0.9),
        row("live", "live", 0.8),
        row("live", "spoof", 0.2),
        row("live", "retry", None, "low_flash_snr"),
        row("mask", "spoof", 0.1),
        row("mask", "live", 0.95),
        row("replay", "retry", None, "low_flash_snr"),
        row("replay", "retry", None, "low_flash_snr"),
    ]
    report = summarise(rows, threshold=0.5)
    live, mask, replay = (report["classes"][k] for k in ("live", "mask", "replay"))
    assert live["retry_rate"] == 0.25 and live["error_rate_answered"] == pytest.approx(1 / 3)
    assert mask["error_rate_answered"] == 0.5 and mask["accepted_rate_all"] == 0.5
    # an attack the daemon only ever answered with retry was never accepted
    assert replay["error_rate_answered"] is None and replay["accepted_rate_all"] == 0.0
    assert replay["retry_reasons"] == {"low_flash_snr": 2}
    assert report["n_scored"] == 5


def test_the_worst_attack_type_threshold_rejects_every_type_down_to_its_target():
    from flashfas_edge.train.metrics import apcer_target_threshold

    labels = ["live"] * 4 + ["mask"] * 2 + ["print"]
    scores = np.array([0.2, 0.6, 0.9, 0.95, 0.1, 0.92, 0.05])
    # 1 %: fewer than 100 of a type, so none may pass; mid-gap (logit) above the highest mask
    t = apcer_target_threshold(scores, labels, 0.01)
    assert 0.92 < t < 0.95
    report = evaluate_scores(scores, labels, t)
    assert report.apcer_max == 0.0 and report.bpcer == 0.75
    # 50 %: one of the two masks may pass, no print (floor(0.5 · 1) = 0): the print and the
    # lower mask must be rejected, so the threshold sits just above 0.1, below the next score
    t = apcer_target_threshold(scores, labels, 0.5)
    assert 0.1 < t < 0.2
    assert evaluate_scores(scores, labels, t).apcer == {"mask": 0.5, "print": 0.0}
    # the EER point of the same split lies lower: the rule asks more of the attacks
    assert eer_threshold(scores, labels)[1] < apcer_target_threshold(scores, labels, 0.01)


def test_the_worst_attack_type_threshold_refuses_what_it_cannot_give():
    from flashfas_edge.train.metrics import apcer_target_threshold

    with pytest.raises(MetricsError, match="no attack"):
        apcer_target_threshold(np.array([0.2, 0.9]), ["live", "live"], 0.01)
    with pytest.raises(MetricsError, match="no bona fide"):
        apcer_target_threshold(np.array([0.2, 0.9]), ["mask", "print"], 0.01)
    with pytest.raises(MetricsError, match="target APCER"):
        apcer_target_threshold(np.array([0.2, 0.9]), ["live", "mask"], 1.5)
    with pytest.raises(MetricsError, match="P\\(live\\) = 1"):
        apcer_target_threshold(np.array([0.2, 1.0]), ["live", "mask"], 0.01)
