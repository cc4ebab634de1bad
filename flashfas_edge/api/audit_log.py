"""The audit log: one JSON line per check, size-rotated; face images only when configured.

A security reviewer reads this file to reconstruct what the door was told and why
(docs/ARCHITECTURE.md §9,
privacy): id, time, verdict, reason, score, threshold, per-stage timings, model hash, nonce. Face
images are personal data, so by default none are written; ``store_images`` keeps the frames of each
check beside the log (for field debugging on sites that allow it).
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flashfas_edge.pipeline.result import CheckResult


class AuditLogError(OSError):
    """The audit log cannot be written (a check must not be answered without its record)."""


class AuditLog:
    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        images_dir: Path | None = None,
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self.images_dir = images_dir  # None: no face images are ever written
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.images_dir is not None:
                self.images_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        except OSError as exc:
            raise AuditLogError(f"cannot create the audit log folder for {path}: {exc}") from exc

    def _rotate(self) -> None:
        # audit.jsonl → audit.jsonl.1 → … → audit.jsonl.<backups>; the oldest falls off.
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{index + 1}"))
        if self.backups > 0:
            os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()

    def _append(self, line: str) -> None:
        data = (line + "\n").encode("utf-8")
        with self._lock:
            try:
                size = self.path.stat().st_size if self.path.exists() else 0
                if size > 0 and size + len(data) > self.max_bytes:
                    self._rotate()
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                try:
                    os.write(fd, data)
                finally:
                    os.close(fd)
            except OSError as exc:
                raise AuditLogError(f"cannot write the audit log {self.path}: {exc}") from exc

    def _write_images(self, check_id: str, frames: list[np.ndarray]) -> list[str]:
        assert self.images_dir is not None
        names = []
        for index, image in enumerate(frames):
            name = f"{check_id}-{index:02d}.png"
            ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if not ok:
                raise AuditLogError(f"cannot encode frame {index} of check {check_id}")
            (self.images_dir / name).write_bytes(png.tobytes())
            names.append(name)
        return names

    def record(
        self,
        result: CheckResult,
        *,
        kind: str,
        queue_wait_ms: float,
        client_ref: str | None = None,
        frames: list[np.ndarray] | None = None,
        http_status: int = 200,
    ) -> dict[str, Any]:
        """``http_status`` is what the caller was told: 200 = this verdict; 503/422 = an error
        instead of the verdict; 504 = the check finished after its deadline had been answered."""
        entry: dict[str, Any] = {
            "check_id": result.check_id,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "kind": kind,
            "http_status": http_status,
            "verdict": result.verdict.value,
            "reason": result.reason.value,
            "score": result.score,
            "threshold": result.threshold,
            "type_probs": result.type_probs,
            "timings_ms": result.timings_ms,
            "queue_wait_ms": round(queue_wait_ms, 3),
            "model": result.model,
            "backend": result.backend.get("name"),
            "nonce": result.nonce,
        }
        if client_ref is not None:
            entry["client_ref"] = client_ref
        if self.images_dir is not None and frames:
            entry["images"] = self._write_images(result.check_id, frames)
        self._append(json.dumps(entry, sort_keys=True, default=_json_default))
        return entry


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable in an audit record: {type(value).__name__}")
