"""``flashfas-edge record``: kiosk sessions in the dataset format, from the real or simulated kiosk.

Each session is one full check (random challenge, flash, capture) whose frames and flash playback
are kept by the recording wrappers and written with the dataset writer (one file per session,
``write_session_file``), so an integrator can collect data on site and fine-tune
(docs/ARCHITECTURE.md §8).
The check's own verdict is stored in ``meta`` for reference; it is not a label.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from flashfas_edge.config import LoadedConfig
from flashfas_edge.data.session import LABELS
from flashfas_edge.kiosk.recording import NothingRecordedError, session_from_capture


def record_sessions(
    config: LoadedConfig,
    out: Path,
    n: int,
    *,
    scene: str | None = None,
    ambient: str | None = None,
    seed: int | None = None,
    label: str | None = None,
) -> int:
    from flashfas_edge.data.dataset_format import write_session_file
    from flashfas_edge.kiosk.assembly import build_kiosk

    if label is not None and label not in LABELS:
        print(f"flashfas-edge record: --label must be one of {LABELS}", file=sys.stderr)
        return 2
    if (scene or ambient or seed is not None) and not config.sim:
        print("flashfas-edge record: --scene/--ambient/--seed need --sim", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    kiosk = build_kiosk(config)
    service, controls = kiosk.service, kiosk.scene_controls
    service.start()
    try:
        if not service.wait_ready(120):
            health = service.health()
            print(f"flashfas-edge record: kiosk not ready: {health.message}", file=sys.stderr)
            return 3
        written = 0
        for i in range(n):
            if controls is not None and (scene or ambient or seed is not None):
                controls.set_scene(scene or "live", ambient,
                                   None if seed is None else seed + i)
            result, _ = service.run_check(want_depth=False)
            try:
                session = session_from_capture(
                    service.last_check_frames,
                    service.recorder.last_playback(), service.latency_us)
            except NothingRecordedError as exc:
                print(f"session {i}: nothing recorded ({result.reason.value}: {exc})",
                      file=sys.stderr)
                continue
            if controls is not None:
                session.attack_type = controls.current_label()
            elif label is not None:
                session.attack_type = label
            session.meta.update({
                "recorded_unix": round(time.time(), 3), "mode": service.mode,
                "check": {"check_id": result.check_id, "verdict": result.verdict.value,
                          "reason": result.reason.value, "score": result.score},
            })
            path = out / f"session-{int(time.time())}-{i:04d}.npz"
            size = write_session_file(path, session)
            written += 1
            print(json.dumps({"file": str(path), "bytes": size, "frames": len(session.frames),
                              "verdict": result.verdict.value, "reason": result.reason.value}),
                  flush=True)
        return 0 if written == n else 1
    finally:
        service.stop()
