"""Error rates of a liveness classifier: ATR-FAS §4.2 (EER, HTER) and ISO/IEC 30107-3.

Scores are P(live); a presentation is accepted as bona fide when ``score >= threshold``.
- BPCER(t): share of bona fide presentations rejected.
- APCER_s(t): share of attack presentations of species ``s`` accepted; ISO/IEC 30107-3 reports the
  worst species (APCER_PAIS = max_s APCER_s), which ACER uses; EER/HTER use all attacks pooled
  (the paper's FAR/FRR).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

LIVE = "live"


class MetricsError(ValueError):
    """Scores/labels cannot give the requested metric (e.g. no bona fide samples)."""


def _rejected(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Share of ``scores`` below each threshold (i.e. rejected)."""
    return np.searchsorted(np.sort(scores), thresholds, side="left") / max(len(scores), 1)


def _rates(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Share of ``scores`` at or above each threshold (i.e. accepted), counted exactly."""
    ordered = np.sort(scores)
    n = max(len(ordered), 1)
    return (n - np.searchsorted(ordered, thresholds, side="left")) / n


@dataclass
class ErrorCurves:
    thresholds: np.ndarray  # ascending
    bpcer: np.ndarray
    apcer_pooled: np.ndarray
    apcer_species: dict[str, np.ndarray]

    @property
    def apcer_max(self) -> np.ndarray:
        return np.max(np.stack(list(self.apcer_species.values())), axis=0)


def error_curves(scores: np.ndarray, labels: list[str] | np.ndarray) -> ErrorCurves:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape:
        raise MetricsError(f"{scores.shape[0]} scores but {labels.shape[0]} labels")
    live = scores[labels == LIVE]
    attacks = scores[labels != LIVE]
    if live.size == 0 or attacks.size == 0:
        raise MetricsError("need both bona fide and attack presentations")
    # Every distinct score is a candidate threshold; +inf rejects everything.
    thresholds = np.concatenate([np.unique(scores), [np.inf]])
    species = sorted(set(labels[labels != LIVE].tolist()))
    return ErrorCurves(
        thresholds=thresholds,
        bpcer=_rejected(live, thresholds),
        apcer_pooled=_rates(attacks, thresholds),
        apcer_species={s: _rates(scores[labels == s], thresholds) for s in species},
    )


def eer_threshold(scores: np.ndarray, labels: list[str] | np.ndarray) -> tuple[float, float]:
    """(EER, threshold) with pooled attacks: the threshold where APCER and BPCER cross.

    Every threshold between the score just below the crossing and the crossing score itself gives
    the same errors on this split. The threshold is put in the middle of that gap (in logit space,
    scores being probabilities), not on a score: when dev separates the classes cleanly the
    crossing score is the lowest bona fide score, and a threshold there rejects any test bona fide
    presentation that scores a hair lower.
    """
    curves = error_curves(scores, labels)
    gap = np.abs(curves.apcer_pooled - curves.bpcer)
    i = int(np.argmin(gap))
    eer = 0.5 * (curves.apcer_pooled[i] + curves.bpcer[i])
    threshold = float(curves.thresholds[i])
    if not np.isfinite(threshold):
        return float(eer), float(np.max(scores)) + 1e-9
    if i > 0:
        threshold = _logit_midpoint(float(curves.thresholds[i - 1]), threshold)
    return float(eer), threshold


def apcer_target_threshold(scores: np.ndarray, labels: list[str] | np.ndarray,
                           target_apcer: float) -> float:
    """The lowest threshold at which every attack type's APCER on this split is at most
    ``target_apcer`` (APCER_PAIS of ISO/IEC 30107-3): of ``n`` attacks of a type at most
    ``floor(target · n)`` may score at or above it, so with fewer than ``1 / target`` of a type
    none may. Placed mid-gap (logit space) between the highest attack score it must reject and
    the next score of any class above it, as :func:`eer_threshold` places its point."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if not 0.0 <= target_apcer < 1.0:
        raise MetricsError(f"target APCER must be in [0, 1), got {target_apcer}")
    if not (labels == LIVE).any():
        raise MetricsError("no bona fide presentations")
    attack_types = [t for t in np.unique(labels) if t != LIVE]
    if not attack_types:
        raise MetricsError("no attack presentations")
    # the highest attack score that has to fall below the threshold: with target < 1, at most
    # floor(target · n) < n of a type may pass, so every type leaves one to reject
    limits = []
    for kind in attack_types:
        ranked = np.sort(scores[labels == kind])[::-1]
        limits.append(float(ranked[int(np.floor(target_apcer * len(ranked) + 1e-9))]))
    must_reject = max(limits)
    if must_reject >= 1.0:
        raise MetricsError("an attack scores P(live) = 1: no threshold in (0, 1] rejects it")
    above = scores[scores > must_reject]
    if not len(above):
        return float(np.nextafter(must_reject, np.inf))
    return _logit_midpoint(must_reject, float(above.min()))


def _logit_midpoint(low: float, high: float) -> float:
    """Halfway between two ascending scores: in logit space for probabilities strictly inside
    (0, 1), else arithmetically. The result lies in (low, high]."""
    if 0.0 < low < high < 1.0:
        mid = 0.5 * (np.log(low / (1 - low)) + np.log(high / (1 - high)))
        value = float(1.0 / (1.0 + np.exp(-mid)))
    else:
        value = 0.5 * (low + high)
    return value if low < value <= high else high


@dataclass
class Report:
    n_bona_fide: int
    n_attack: dict[str, int]
    threshold: float
    eer: float  # on this split, pooled attacks
    hter: float  # (APCER_pooled + BPCER) / 2 at ``threshold``
    bpcer: float
    apcer_pooled: float
    apcer: dict[str, float]  # per attack species at ``threshold``
    apcer_max: float  # APCER_PAIS of ISO/IEC 30107-3
    acer: float  # (APCER_max + BPCER) / 2
    bpcer_at_apcer_1pct: float  # lowest BPCER with APCER_max ≤ 1 %
    apcer_at_bpcer_1pct: float  # lowest APCER_max with BPCER ≤ 1 %
    apcer_species_at_bpcer_1pct: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_scores(scores: np.ndarray, labels: list[str] | np.ndarray, threshold: float) -> Report:
    """All error rates of one split at a threshold fixed elsewhere (on dev at its EER)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    curves = error_curves(scores, labels)
    live = scores[labels == LIVE]
    bpcer = float(np.mean(live < threshold))
    apcer = {s: float(np.mean(scores[labels == s] >= threshold)) for s in curves.apcer_species}
    apcer_pooled = float(np.mean(scores[labels != LIVE] >= threshold))
    apcer_max = max(apcer.values())
    ok_apcer = curves.apcer_max <= 0.01 + 1e-12
    ok_bpcer = curves.bpcer <= 0.01 + 1e-12
    # ok_bpcer holds for low thresholds; pick the highest such threshold (lowest APCER).
    i_bpcer = int(np.flatnonzero(ok_bpcer)[-1]) if ok_bpcer.any() else 0
    return Report(
        n_bona_fide=int(live.size),
        n_attack={s: int(np.sum(labels == s)) for s in curves.apcer_species},
        threshold=float(threshold),
        eer=eer_threshold(scores, labels)[0],
        hter=0.5 * (apcer_pooled + bpcer),
        bpcer=bpcer,
        apcer_pooled=apcer_pooled,
        apcer=apcer,
        apcer_max=apcer_max,
        acer=0.5 * (apcer_max + bpcer),
        bpcer_at_apcer_1pct=float(np.min(curves.bpcer[ok_apcer])),
        apcer_at_bpcer_1pct=float(curves.apcer_max[i_bpcer]),
        apcer_species_at_bpcer_1pct={s: float(a[i_bpcer]) for s, a in curves.apcer_species.items()},
    )
