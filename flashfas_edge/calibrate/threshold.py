"""The decision threshold from K live checks at the site, never more lenient than the bundle.

Live scores P(live) are modelled as logit-normal: z = logit(p) ~ N(μ, σ). For a target BPCER
(bona fide presentations refused), the threshold is the target quantile of that distribution,
taken on the safe side of what K samples can say: σ by its one-sided 90 % upper confidence bound
(χ² with K − 1 degrees of freedom) and μ by its lower one (Student t), so that a small K leans
towards fewer refused users rather than more. It is then raised to the bundle's own threshold if
it lies below (ISO/IEC 30107-3: the attack operating point is the bundle's; the site can only
make the kiosk stricter). Both are recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

_CONFIDENCE = 0.90
_P_CLIP = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _P_CLIP, 1 - _P_CLIP)
    return np.log(p / (1 - p))


def _norm_ppf(q: float) -> float:
    """Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9)."""
    a = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
         1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
    b = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
         6.680131188771972e01, -1.328068155288572e01)
    c = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
         -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
    d = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
         3.754408661907416e00)
    if not 0 < q < 1:
        raise ValueError("quantile must be in (0, 1)")
    if q < 0.02425:
        r = np.sqrt(-2 * np.log(q))
        return float((((((c[0] * r + c[1]) * r + c[2]) * r + c[3]) * r + c[4]) * r + c[5])
                     / ((((d[0] * r + d[1]) * r + d[2]) * r + d[3]) * r + 1))
    if q > 1 - 0.02425:
        return -_norm_ppf(1 - q)
    r = q - 0.5
    s = r * r
    return float((((((a[0] * s + a[1]) * s + a[2]) * s + a[3]) * s + a[4]) * s + a[5]) * r
                 / (((((b[0] * s + b[1]) * s + b[2]) * s + b[3]) * s + b[4]) * s + 1))


def _chi2_ppf(q: float, dof: int) -> float:
    """χ² quantile by the Wilson–Hilferty cube (good to ~1 % from 3 degrees of freedom)."""
    z = _norm_ppf(q)
    h = 2.0 / (9.0 * dof)
    return float(dof * (1 - h + z * np.sqrt(h)) ** 3)


def _t_ppf(q: float, dof: int) -> float:
    """Student t quantile (Cornish–Fisher expansion in 1/dof; ~1 % from 3 degrees of freedom)."""
    z = _norm_ppf(q)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    return float(z + g1 / dof + g2 / dof**2)


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float  # what the daemon will use (≥ bundle_threshold)
    fitted: float  # the BPCER quantile before the bundle's floor
    bundle_threshold: float
    target_bpcer: float
    scores: tuple[float, ...]  # the live checks' P(live)
    retries: dict[str, int]  # live checks that got no score, by reason

    @property
    def raised_to_bundle(self) -> bool:
        return self.fitted < self.bundle_threshold

    def bpcer_at(self, scores: Sequence[float]) -> float:
        """Share of these live scores the threshold refuses."""
        s = np.asarray(scores, float)
        return float((s < self.threshold).mean()) if len(s) else float("nan")

    def summary(self) -> dict[str, object]:
        return {
            "threshold": round(self.threshold, 6),
            "fitted": round(self.fitted, 6),
            "bundle_threshold": round(self.bundle_threshold, 6),
            "target_bpcer": self.target_bpcer,
            "live_checks": len(self.scores),
            "scores": [round(s, 5) for s in self.scores],
            "bpcer_on_these_checks": round(self.bpcer_at(self.scores), 4),
            "retries": dict(self.retries),
        }


def choose_threshold(scores: Sequence[float], bundle_threshold: float, target_bpcer: float,
                     retries: dict[str, int] | None = None) -> ThresholdChoice:
    """The threshold for ``target_bpcer`` from live scores, never below the bundle's."""
    s = np.asarray(scores, float)
    if len(s) < 3:
        raise ValueError("at least 3 live scores are needed to set a threshold")
    z = _logit(s)
    k = len(z)
    mu, sd = float(z.mean()), float(z.std(ddof=1))
    sd_upper = sd * np.sqrt((k - 1) / _chi2_ppf(1 - _CONFIDENCE, k - 1))
    mu_lower = mu - _t_ppf(_CONFIDENCE, k - 1) * sd / np.sqrt(k)
    fitted_z = mu_lower + _norm_ppf(target_bpcer) * max(sd_upper, 0.05)
    fitted = float(1 / (1 + np.exp(-fitted_z)))
    threshold = max(fitted, bundle_threshold)
    return ThresholdChoice(threshold=float(min(threshold, 1.0)), fitted=fitted,
                           bundle_threshold=bundle_threshold, target_bpcer=target_bpcer,
                           scores=tuple(float(v) for v in s), retries=dict(retries or {}))


def collect_live_scores(run_check: Callable[[int], tuple[float | None, str]], wanted: int,
                        max_attempts: int, progress: Callable[[int, int], None] | None = None
                        ) -> tuple[list[float], dict[str, int]]:
    """Run live checks until ``wanted`` got a score (or ``max_attempts``); ``run_check(k)``
    returns (P(live) or None, reason)."""
    scores: list[float] = []
    retries: dict[str, int] = {}
    for attempt in range(max_attempts):
        if len(scores) >= wanted:
            break
        score, reason = run_check(attempt)
        if score is None:
            retries[reason] = retries.get(reason, 0) + 1
        else:
            scores.append(score)
        if progress is not None:
            progress(len(scores), wanted)
    return scores, retries
