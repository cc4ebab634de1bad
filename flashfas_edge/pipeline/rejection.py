"""How a stage stops a check early: a typed exception carrying the verdict, reason and evidence."""

from __future__ import annotations

from typing import Any

from flashfas_edge.pipeline.result import Reason, Verdict


class CheckRejected(Exception):
    """A gate or the challenge verification ended the check before the decision.

    ``verdict`` is RETRY for quality gates and SPOOF only for evidence of an attack (a challenge
    mismatch); never LIVE — only the decision stage can say live.
    """

    def __init__(self, verdict: Verdict, reason: Reason, detail: dict[str, Any] | None = None):
        if verdict is Verdict.LIVE:
            raise ValueError("a rejection cannot be a live verdict")
        super().__init__(f"{verdict.value}: {reason.value}")
        self.verdict = verdict
        self.reason = reason
        self.detail = dict(detail or {})


def retry(reason: Reason, **detail: Any) -> CheckRejected:
    return CheckRejected(Verdict.RETRY, reason, detail)
