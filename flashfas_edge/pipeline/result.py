"""What one liveness check answers (docs/ARCHITECTURE.md §1 step 10): the seam between pipeline and
API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np


class Verdict(str, Enum):
    LIVE = "live"
    SPOOF = "spoof"
    RETRY = "retry"


class Reason(str, Enum):
    """Machine-readable reason of a check's answer. With `live`: score_above_threshold. With
    `spoof`: score_below_threshold, challenge_mismatch. Every other reason comes with `retry`
    (ask the person to try again; never open): score_uncertain, challenge_unclear,
    challenge_lockout, no_face, multiple_faces, face_too_small, face_too_large, motion,
    underexposed, overexposed, low_flash_snr, no_clean_frame, flash_unsafe, stage_timeout,
    internal_error.
    camera_unavailable, flash_unavailable and invalid_session reach the caller as errors (503,
    422), not as a 200."""

    # live / spoof decisions
    SCORE_ABOVE_THRESHOLD = "score_above_threshold"
    SCORE_BELOW_THRESHOLD = "score_below_threshold"
    # the score lies between the bundle's spoof edge and its threshold: neither let in nor called
    # an attack; retry with a fresh challenge (docs/MODEL_BUNDLE.md, threshold)
    SCORE_UNCERTAIN = "score_uncertain"
    CHALLENGE_MISMATCH = "challenge_mismatch"
    # the reflections followed this challenge best of all, but not clearly enough to verify it
    # (order or timing just past its limit): retry; counts toward the lock-out like a mismatch
    CHALLENGE_UNCLEAR = "challenge_unclear"
    # too many mismatches lately: the daemon refuses checks for a while (daemon/challenge_lockout)
    CHALLENGE_LOCKOUT = "challenge_lockout"
    # quality gates → retry
    NO_FACE = "no_face"
    MULTIPLE_FACES = "multiple_faces"
    FACE_TOO_SMALL = "face_too_small"
    FACE_TOO_LARGE = "face_too_large"
    MOTION = "motion"
    UNDEREXPOSED = "underexposed"
    OVEREXPOSED = "overexposed"
    LOW_FLASH_SNR = "low_flash_snr"
    NO_CLEAN_FRAME = "no_clean_frame"
    # the drawn challenge would exceed the photosensitive flash limits (docs/SAFETY.md): not
    # played; retry after a pause
    FLASH_UNSAFE = "flash_unsafe"
    # failures of the check itself → retry, never live
    STAGE_TIMEOUT = "stage_timeout"
    INTERNAL_ERROR = "internal_error"
    CAMERA_UNAVAILABLE = "camera_unavailable"  # CameraError: absent, stalled, no frames (→ 503)
    FLASH_UNAVAILABLE = "flash_unavailable"  # FlashError: surface absent or missed its schedule
    INVALID_SESSION = "invalid_session"  # a recorded session that is inconsistent (→ 4xx)


def new_check_id() -> str:
    """The id of one check (32 hex digits, random): made here only, for checks the pipeline runs
    and for those the service answers without running one (lockout)."""
    return uuid.uuid4().hex


@dataclass
class CheckResult:
    check_id: str
    verdict: Verdict
    reason: Reason
    score: float | None  # P(live) from the backend; None when inference did not run
    threshold: float
    type_probs: dict[str, float] = field(default_factory=dict)
    # per stage of docs/ARCHITECTURE.md §1
    timings_ms: dict[str, float] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # bundle name, manifest sha256
    backend: dict[str, Any] = field(default_factory=dict)  # BackendInfo as a dict
    nonce: str = ""
    depth: np.ndarray | None = None  # float32 [D, D] x̂, only kept when asked for
    detail: dict[str, Any] = field(default_factory=dict)  # gate measurements behind the reason

    @property
    def decided_by_score(self) -> bool:
        """The networks scored this check and the score decided the answer: ``live`` or
        ``spoof``, or a ``retry`` for a score in the bundle's uncertain band (its score counts
        like any other, e.g. in a site's live-score sample)."""
        return self.score is not None and (
            self.verdict in (Verdict.LIVE, Verdict.SPOOF) or self.reason is Reason.SCORE_UNCERTAIN)
