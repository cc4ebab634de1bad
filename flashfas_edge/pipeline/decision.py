"""Step 10, the decision: P(live) against the threshold, failing closed (docs/ARCHITECTURE.md
§1)."""

from __future__ import annotations

import math

from flashfas_edge.inference.backend import ModelOutput
from flashfas_edge.pipeline.result import Reason, Verdict


class ImplausibleModelOutput(RuntimeError):
    """The backend returned a score that is not a probability (NaN, ±inf, outside [0, 1])."""


def resolve_threshold(override: float | None, bundle_default: float) -> float:
    """Calibration's threshold where one is set, else the bundle's (MODEL_BUNDLE.md)."""
    threshold = bundle_default if override is None else override
    if not (math.isfinite(threshold) and 0.0 < threshold <= 1.0):
        # 0 would accept everything: refuse it rather than run an open door.
        raise ValueError(f"decision threshold must be in (0, 1], got {threshold}")
    return float(threshold)


def resolve_spoof_below(threshold: float, bundle_spoof_below: float | None) -> float:
    """The score below which a check is ``spoof``: the bundle's uncertain band's lower edge, never
    above the threshold in use (a calibrated threshold only raises the upper edge), else the
    threshold itself (no band)."""
    if bundle_spoof_below is None:
        return threshold
    return min(float(bundle_spoof_below), threshold)


def decide(output: ModelOutput, threshold: float,
           spoof_below: float | None = None) -> tuple[Verdict, Reason]:
    """``live`` at or above ``threshold``; ``spoof`` below ``spoof_below`` (default: the
    threshold); in between ``retry`` / ``score_uncertain``."""
    try:
        p_live = float(output.p_live)
    except (TypeError, ValueError) as exc:
        raise ImplausibleModelOutput(f"P(live) = {output.p_live!r} is not a number") from exc
    if not (math.isfinite(p_live) and 0.0 <= p_live <= 1.0):
        raise ImplausibleModelOutput(f"P(live) = {p_live!r} is not a probability")
    if p_live >= threshold:
        return Verdict.LIVE, Reason.SCORE_ABOVE_THRESHOLD
    if spoof_below is not None and p_live >= spoof_below:
        return Verdict.RETRY, Reason.SCORE_UNCERTAIN
    return Verdict.SPOOF, Reason.SCORE_BELOW_THRESHOLD
