"""The audit log: one JSON line per check, size-rotated; face images only when configured.

A security reviewer reads this file to reconstruct what the door was told and why
(docs/ARCHITECTURE.md §9,
privacy): id, time, verdict, reason, score, threshold, per-stage timings, model hash, nonce. Face
images are personal data, so by default none are written; ``store_images`` keeps the frames of each
check beside the log (for field debugging on sites that allow it).

Every check that starts is accounted for, even across a crash: before the flash plays,
:meth:`AuditLog.begin` leaves a marker file beside the log (``audit.jsonl.inflight``) that the
check's line removes. A daemon killed in the middle of a check leaves the marker, and the next
start (:meth:`AuditLog.recover`) writes the line ``reason: "interrupted"`` for it. Lines are
appended with one ``write`` each; a line torn by a power cut (no final newline) is cut off at start
and the cut recorded, so the file always parses line by line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from flashfas_edge.pipeline.result import CheckResult

log = logging.getLogger(__name__)

# What the caller of an interrupted check was told: nothing (the daemon died first).
INTERRUPTED_REASON = "interrupted"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


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
        self.marker = path.with_name(path.name + ".inflight")
        self._lock = threading.Lock()
        self._failure: str | None = None  # the last write error, until a write succeeds again
        self._probed_at = 0.0
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
                    os.write(fd, data)  # one write per line: a kill cannot leave half of it
                finally:
                    os.close(fd)
            except OSError as exc:
                self._failure = str(exc)
                raise AuditLogError(f"cannot write the audit log {self.path}: {exc}") from exc
            self._failure = None

    # ----- crash accounting ----------------------------------------------------------------------
    def begin(self, check_id: str, kind: str, client_ref: str | None = None) -> None:
        """Before a check plays its flash: the marker that :meth:`recover` turns into an
        ``interrupted`` line if the daemon dies before the check's own line is written."""
        marker = {"check_id": check_id, "kind": kind, "started": _now()}
        if client_ref is not None:
            marker["client_ref"] = client_ref
        tmp = self.marker.with_name(self.marker.name + ".tmp")
        try:
            tmp.write_text(json.dumps(marker, sort_keys=True))
            os.replace(tmp, self.marker)
        except OSError as exc:
            self._failure = str(exc)
            raise AuditLogError(f"cannot write the in-flight marker {self.marker}: {exc}") \
                from exc

    def _end(self, check_id: str) -> None:
        try:
            started = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return
        if started.get("check_id") == check_id:
            self.marker.unlink(missing_ok=True)

    def recover(self) -> list[dict[str, Any]]:
        """At start: cut a torn last line and write the line of a check a crash interrupted.
        Returns the lines written."""
        written: list[dict[str, Any]] = []
        try:
            with open(self.path, "rb+") as handle:
                data = handle.read()
                if data and not data.endswith(b"\n"):
                    keep = data.rfind(b"\n") + 1
                    handle.truncate(keep)
                    written.append({"time": _now(), "kind": "audit_repair",
                                    "reason": "torn_line_dropped",
                                    "dropped_bytes": len(data) - keep})
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise AuditLogError(f"cannot read the audit log {self.path}: {exc}") from exc
        try:
            started = json.loads(self.marker.read_text())
        except FileNotFoundError:
            started = None
        except (OSError, ValueError) as exc:
            started = {"check_id": None, "marker_error": str(exc)}
        if isinstance(started, dict):
            written.append({
                "check_id": started.get("check_id"), "time": _now(),
                "started": started.get("started"), "kind": started.get("kind"),
                "http_status": None, "verdict": None, "reason": INTERRUPTED_REASON,
                **({"client_ref": started["client_ref"]} if "client_ref" in started else {}),
            })
        for entry in written:
            self._append(json.dumps(entry, sort_keys=True))
            log.warning("audit log: %s (%s)", entry["reason"], entry.get("check_id"))
        self.marker.unlink(missing_ok=True)
        self._probe()  # a folder the daemon cannot write is a start-up error, not 503s later
        if self._failure is not None:
            raise AuditLogError(f"cannot write in the audit log's folder {self.path.parent}: "
                                f"{self._failure}")
        return written

    def _probe(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            os.close(fd)
            probe = self.path.with_name(self.path.name + ".probe")
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            self._failure = str(exc)
        else:
            self._failure = None

    # ----- health --------------------------------------------------------------------------------
    def failure(self) -> str | None:
        """Why the log cannot be written (None when it can). After a failed write the folder is
        probed again at most once a second, so health recovers without a check being tried."""
        if self._failure is None:
            return None
        now = time.monotonic()
        if now - self._probed_at >= 1.0:
            self._probed_at = now
            self._probe()
        return self._failure

    def _write_images(self, check_id: str, frames: list[np.ndarray]) -> list[str]:
        assert self.images_dir is not None
        names = []
        for index, image in enumerate(frames):
            name = f"{check_id}-{index:02d}.png"
            ok, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            if not ok:
                raise AuditLogError(f"cannot encode frame {index} of check {check_id}")
            try:
                (self.images_dir / name).write_bytes(png.tobytes())
            except OSError as exc:
                self._failure = str(exc)
                raise AuditLogError(f"cannot write frame {index} of check {check_id}: {exc}") \
                    from exc
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
        evaluation: bool = False,
    ) -> dict[str, Any]:
        """``http_status`` is what the caller was told: 200 = this verdict; 503/422 = an error
        instead of the verdict; 504 = the check finished after its deadline had been answered;
        503 with the check's own verdict = the daemon stopped (or the caller left) first.

        ``evaluation``: an uploaded recording was scored; it has no verdict (``verdict: null``),
        only the model's ``outcome``, and ``access_decision: false``."""
        entry: dict[str, Any] = {
            "check_id": result.check_id,
            "time": _now(),
            "kind": kind,
            "http_status": http_status,
            "verdict": None if evaluation else result.verdict.value,
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
        if evaluation:
            entry["outcome"] = result.verdict.value
            entry["access_decision"] = False
        if client_ref is not None:
            entry["client_ref"] = client_ref
        if self.images_dir is not None and frames:
            entry["images"] = self._write_images(result.check_id, frames)
        self._append(json.dumps(entry, sort_keys=True, default=_json_default))
        self._end(result.check_id)
        return entry


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable in an audit record: {type(value).__name__}")
