"""System-level evaluation: every test session through the daemon's own pipeline.

``Pipeline.run_recorded`` runs docs/ARCHITECTURE.md §1 steps 4–10 (sync, quality gates, challenge
verification, alignment, diffnorm, the bundle on ONNX Runtime, the decision at the bundle's
threshold). A check the daemon answers with ``retry`` (e.g. ``low_flash_snr`` in sunlight: the
flash cannot be seen, so it proves nothing) is a non-response: ISO/IEC 30107-3 reports it apart
from APCER/BPCER, which count only checks that got a live/spoof answer. The security view (attacks
accepted as live among *all* attacks) and the convenience view (bona fide answered ``live`` among
all bona fide) are reported too.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from flashfas_edge.train.metrics import MetricsError, eer_threshold


def run_system_evaluation(
    bundle_dir: Path,
    split_dir: Path,
    out_dir: Path,
    limit: int | None = None,
    landmarks: str = "ground_truth",
) -> dict[str, Any]:
    """``landmarks``: ``ground_truth`` uses each session's stored (renderer) landmarks;
    ``mtcnn`` drops them and runs the real camera's detector on the frames, as a kiosk does."""
    from dataclasses import replace

    from flashfas_edge.data import iter_sessions
    from flashfas_edge.face.config import LandmarkConfig
    from flashfas_edge.face.factory import create_landmark_provider
    from flashfas_edge.inference.factory import create_backend
    from flashfas_edge.pipeline.config import PipelineConfig
    from flashfas_edge.pipeline.pipeline import Pipeline

    config = PipelineConfig(landmarks=LandmarkConfig.model_validate({"provider": landmarks}))
    backend = create_backend(bundle_dir, "onnxruntime", intra_op_threads=1)
    provider = create_landmark_provider(config.landmarks)
    pipeline = Pipeline(None, None, provider, backend, config)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for session in itertools.islice(iter_sessions(split_dir), limit):
            if landmarks != "ground_truth":
                session = replace(session, landmarks=None)  # the detector finds the face
            result = pipeline.run_recorded(session)
            rows.append(
                {
                    "label": session.attack_type,
                    "scenario": session.meta.get("scenario"),
                    "device": session.meta.get("device"),
                    "verdict": result.verdict.value,
                    "reason": result.reason.value,
                    "score": result.score,
                }
            )
    finally:
        pipeline.stop()
    report = summarise(rows, pipeline.threshold)
    report["landmarks"] = landmarks
    report["bundle"] = str(bundle_dir)
    report["split"] = str(split_dir)
    report["seconds"] = time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "system_report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "system_rows.json").write_text(json.dumps(rows) + "\n")
    return report


def _share(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def summarise(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        per_class[row["label"]][row["verdict"]] += 1
        if row["verdict"] == "retry":
            reasons[row["label"]][row["reason"]] += 1
    classes: dict[str, Any] = {}
    for label, counts in sorted(per_class.items()):
        total = sum(counts.values())
        answered = counts["live"] + counts["spoof"]
        wrong = counts["spoof"] if label == "live" else counts["live"]
        classes[label] = {
            "n": total,
            "verdicts": dict(counts),
            "retry_rate": _share(counts["retry"], total),
            # BPCER (live) / APCER (attack) over the checks that got an answer
            "error_rate_answered": _share(wrong, answered),
            # attacks: accepted as live among all; live: answered live among all
            "accepted_rate_all": _share(counts["live"], total),
            "retry_reasons": dict(reasons[label]),
        }
    scored = [r for r in rows if r["score"] is not None]
    eer = None
    try:
        eer = eer_threshold(np.array([r["score"] for r in scored]), [r["label"] for r in scored])[0]
    except MetricsError:
        pass
    by_scenario: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        by_scenario[str(row["scenario"])][f"{row['label']}:{row['verdict']}"] += 1
    return {
        "threshold": threshold,
        "n": len(rows),
        "classes": classes,
        "eer_of_scored_checks": eer,
        "n_scored": len(scored),
        "by_scenario": {k: dict(v) for k, v in sorted(by_scenario.items())},
    }


def summary_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"{report['n']} sessions through the pipeline (landmarks: "
        f"{report.get('landmarks', 'ground_truth')}), threshold {report['threshold']:.4f}"
    ]
    for label, c in report["classes"].items():
        err = c["error_rate_answered"]
        name = "BPCER" if label == "live" else f"APCER {label}"
        err_text = f"{100 * err:.2f}%" if err is not None else "n/a"
        lines.append(
            f"{label:7s} n={c['n']:4d} verdicts {c['verdicts']}  retry {100 * c['retry_rate']:.1f}%"
            f"  {name} (answered) {err_text}  reasons {c['retry_reasons']}"
        )
    if report["eer_of_scored_checks"] is not None:
        lines.append(
            f"EER over the {report['n_scored']} scored checks "
            f"{100 * report['eer_of_scored_checks']:.2f}%"
        )
    return lines
