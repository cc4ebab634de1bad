"""Step 5 on the face region: exposure, flash SNR, then challenge verification — in that order.

Order matters for the verdict: a face the flash cannot be seen on (too much ambient light, a flash
that never showed) is a ``retry`` — it proves nothing either way — and only a *visible* flash
response that follows the wrong sequence is evidence of an attack (``spoof``,
``challenge_mismatch``). A mismatch on a weak response (SNR below ``min_flash_snr_for_mismatch``)
may be measurement noise, so it is a ``retry`` (``low_flash_snr``) too — never ``live``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from flashfas_edge.flash.base import FlashSchedule
from flashfas_edge.pipeline.config import GateThresholds
from flashfas_edge.pipeline.face_region import face_crop, pixel_noise_sigma
from flashfas_edge.pipeline.reflection_check import ReflectionFit, fit_reflection
from flashfas_edge.pipeline.rejection import CheckRejected, retry
from flashfas_edge.pipeline.result import Reason, Verdict


@dataclass(frozen=True)
class FlashEvidence:
    state_means_dl: np.ndarray  # float [N0, 3] face mean RGB per play slot
    saturated_frac: np.ndarray  # float [N0] share of face pixels at or above saturation
    saturated_frac_ambient: float  # the same in the darkest observed state (ambient only)
    noise_sigma_dl: float  # per-pixel noise of the darkest state's face region
    response_dl: float  # observed range of the face mean luma over the state frames
    fit: ReflectionFit
    detail: dict[str, Any]


def excitation_of(schedule: FlashSchedule) -> np.ndarray:
    """Commanded light per play slot and channel: intensity × colour, float [N0, 3]."""
    return np.array([[s.intensity * c for c in s.rgb] for s in schedule.states], dtype=np.float64)


def measure_flash(
    images: Sequence[np.ndarray] | np.ndarray,
    landmarks: np.ndarray,
    schedule: FlashSchedule,
    gates: GateThresholds,
    gamma: float,
) -> FlashEvidence:
    """Face-region statistics of the N0 state frames (play order) against the schedule."""
    crops = [face_crop(img, pts) for img, pts in zip(images, landmarks, strict=True)]
    if any(c.pixel_count < 16 for c in crops):
        raise retry(Reason.NO_FACE, why="face region outside the frame")
    means = np.stack([c.mean_rgb() for c in crops])
    saturated = np.array([c.saturated_frac(gates.saturation_level) for c in crops])
    # Visibility of the flash is measured on what was *observed* (the range over slots), not on
    # what was commanded: a stream that follows another sequence must reach the verification
    # below (spoof), not pass as "flash too weak" (retry).
    luma = means.mean(axis=1)
    darkest = int(np.argmin(luma))
    noise = pixel_noise_sigma(crops[darkest])
    response = float(luma.max() - luma.min())
    fit = fit_reflection(means, excitation_of(schedule), gamma)
    detail: dict[str, Any] = {
        "face_mean_dl": [round(float(v), 2) for v in means.mean(axis=1)],
        "saturated_frac_max": round(float(saturated.max()), 4),
        "saturated_frac_ambient": round(float(saturated[darkest]), 4),
        "noise_sigma_dl": round(noise, 3),
        "flash_response_dl": round(response, 3),
        "flash_snr": round(response / noise, 3) if noise > 0 else None,
        # diagnosis only: how much the flash adds to the face's ambient-only level
        "flash_to_ambient": round(response / max(float(luma[darkest]), 1.0), 4),
        "challenge_corr": round(fit.corr, 4),
        "challenge_best_other_corr": round(fit.best_other_corr, 4),
        "challenge_best_other_order": list(fit.best_other_order),
        "challenge_margin": round(fit.margin, 4),
        "challenge_residual_ratio": round(min(fit.residual_ratio, 1e6), 3),
    }
    return FlashEvidence(
        state_means_dl=means,
        saturated_frac=saturated,
        saturated_frac_ambient=float(saturated[darkest]),
        noise_sigma_dl=noise,
        response_dl=response,
        fit=fit,
        detail=detail,
    )


def gate_flash(evidence: FlashEvidence, gates: GateThresholds) -> None:
    """Raise :class:`CheckRejected` for the first failing gate; return when all pass."""
    detail = evidence.detail
    if evidence.saturated_frac_ambient > gates.max_saturated_frac_ambient:
        raise retry(
            Reason.OVEREXPOSED,
            **detail,
            max_saturated_frac_ambient=gates.max_saturated_frac_ambient,
        )
    if float(evidence.saturated_frac.max()) > gates.max_saturated_frac_flash:
        raise retry(
            Reason.OVEREXPOSED, **detail, max_saturated_frac_flash=gates.max_saturated_frac_flash
        )
    if float(evidence.state_means_dl.mean(axis=1).max()) < gates.min_face_level:
        raise retry(Reason.UNDEREXPOSED, **detail, min_face_level=gates.min_face_level)
    snr = evidence.response_dl / evidence.noise_sigma_dl if evidence.noise_sigma_dl > 0 else 0.0
    if evidence.response_dl < gates.min_flash_response_dl or snr < gates.min_flash_snr:
        raise retry(
            Reason.LOW_FLASH_SNR,
            **detail,
            min_flash_snr=gates.min_flash_snr,
            min_flash_response_dl=gates.min_flash_response_dl,
        )
    fit = evidence.fit
    if (
        fit.corr < gates.min_challenge_corr
        or fit.residual_ratio < gates.min_challenge_residual_ratio
    ):
        if snr < gates.min_flash_snr_for_mismatch:
            raise retry(
                Reason.LOW_FLASH_SNR,
                **detail,
                challenge_verified=False,
                min_flash_snr_for_mismatch=gates.min_flash_snr_for_mismatch,
            )
        limits = {
            "min_challenge_corr": gates.min_challenge_corr,
            "min_challenge_residual_ratio": gates.min_challenge_residual_ratio,
        }
        if fit.corr >= gates.min_challenge_corr and fit.residual_ratio >= 1.0:
            # this order explains the reflections best of all, just not by the margin: a live
            # face under noise, not another order (a replay of another order leaves ratio < 1)
            raise retry(Reason.CHALLENGE_UNCLEAR, **detail, **limits, challenge_verified=False)
        raise CheckRejected(Verdict.SPOOF, Reason.CHALLENGE_MISMATCH, {**detail, **limits})
