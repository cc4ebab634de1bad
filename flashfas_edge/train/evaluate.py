"""Evaluation protocol (ATR-FAS §4.2, docs/ARCHITECTURE.md §8): threshold at the dev EER, error
rates on test.

A bundle is scored through the daemon's own backend (``inference.create_backend``), so the numbers
describe what ships; a checkpoint is scored with PyTorch (for ablations that have no bundle form).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flashfas_edge.train.cache import SplitTensors
from flashfas_edge.train.config import ModelConfig
from flashfas_edge.train.det_plot import draw_det
from flashfas_edge.train.metrics import eer_threshold, error_curves, evaluate_scores
from flashfas_edge.train.splits import DataError, find_split, load_split_for

_MAX_CONDITION_VALUES = 12  # a meta key with more distinct values is an id, not a condition


@dataclass
class Scorer:
    kind: str  # "bundle" | "checkpoint"
    model_config: ModelConfig
    manifest_threshold: float | None
    info: dict[str, Any]

    def score(self, split: SplitTensors) -> np.ndarray:
        raise NotImplementedError


class BundleScorer(Scorer):
    def __init__(self, bundle_dir: Path, backend: str = "onnxruntime", batch: int = 32) -> None:
        from flashfas_edge.inference.factory import create_backend
        from flashfas_edge.train.export import normalisation_spec

        self.backend = create_backend(
            bundle_dir, backend, expect_normalisation=normalisation_spec(), warm_up=True
        )
        bundle = self.backend.bundle
        info = self.backend.info()
        super().__init__(
            kind="bundle",
            model_config=ModelConfig(n0=bundle.n0, input_size=bundle.input_size),
            manifest_threshold=bundle.threshold_default,
            info={
                "bundle": str(bundle_dir),
                "manifest_sha256": bundle.manifest_sha256,
                "backend": info.name,
                "device": info.device,
                "precision": info.precision,
                "config": bundle.manifest.get("config"),
            },
        )
        self.batch = batch

    def score(self, split: SplitTensors) -> np.ndarray:
        scores: list[float] = []
        for start in range(0, len(split), self.batch):
            x = split.x[start : start + self.batch].float().numpy()
            scores.extend(o.p_live for o in self.backend.run_batch(x))
        return np.asarray(scores, dtype=np.float64)


class CheckpointScorer(Scorer):
    def __init__(self, path: Path, threads: int | None = None) -> None:
        import torch

        from flashfas_edge.train.trainer import load_checkpoint, model_from_checkpoint

        if threads:
            torch.set_num_threads(threads)
        state = load_checkpoint(path)
        self.model, config = model_from_checkpoint(state)
        super().__init__(
            kind="checkpoint",
            model_config=config.model,
            manifest_threshold=state.get("dev_threshold"),
            info={"checkpoint": str(path), "config": config.name, "epoch": state["epoch"] + 1},
        )

    def score(self, split: SplitTensors) -> np.ndarray:
        import torch

        from flashfas_edge.train.trainer import predict

        return predict(self.model, split, torch.device("cpu"))[0]


def make_scorer(
    model_path: Path, backend: str = "onnxruntime", threads: int | None = None
) -> Scorer:
    if (model_path / "manifest.json").is_file():
        return BundleScorer(model_path, backend)
    if model_path.is_file():
        return CheckpointScorer(model_path, threads)
    raise DataError(f"{model_path}: neither a bundle folder (manifest.json) nor a checkpoint file")


def per_condition(
    scores: np.ndarray, labels: list[str], meta: list[dict], threshold: float
) -> dict[str, dict[str, dict[str, float]]]:
    """BPCER and pooled APCER per value of each categorical condition the renderer recorded."""
    values: dict[str, set] = defaultdict(set)
    for m in meta:
        for key, value in m.items():
            if isinstance(value, str):
                values[key].add(value)
    out: dict[str, dict[str, dict[str, float]]] = {}
    labels_arr = np.asarray(labels)
    for key, seen in values.items():
        if not 1 < len(seen) <= _MAX_CONDITION_VALUES:
            continue
        column = np.array([m.get(key) for m in meta], dtype=object)
        out[key] = {}
        for value in sorted(seen):
            rows = column == value
            live = rows & (labels_arr == "live")
            attack = rows & (labels_arr != "live")
            out[key][value] = {
                "n": int(rows.sum()),
                "bpcer": float(np.mean(scores[live] < threshold)) if live.any() else float("nan"),
                "apcer": float(np.mean(scores[attack] >= threshold))
                if attack.any()
                else float("nan"),
            }
    return out


def run_evaluation(
    model_path: Path,
    data_dir: Path,
    out_dir: Path,
    *,
    backend: str = "onnxruntime",
    cache_root: Path | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    scorer = make_scorer(model_path, backend, threads)
    test_dir = find_split(data_dir, "test")
    if test_dir is None:
        raise DataError(f"{data_dir}: no test split")
    dev_dir = find_split(data_dir, "dev")
    started = time.perf_counter()
    report: dict[str, Any] = {"model": scorer.info, "kind": scorer.kind, "data": str(data_dir)}
    if dev_dir is not None:
        dev = load_split_for(dev_dir, scorer.model_config, cache_root)
        dev_scores = scorer.score(dev)
        dev_eer, threshold = eer_threshold(dev_scores, dev.labels)
        report["threshold"] = {"value": threshold, "source": "dev EER", "dev_eer": dev_eer}
        report["dev"] = evaluate_scores(dev_scores, dev.labels, threshold).to_dict()
    elif scorer.manifest_threshold is not None:
        threshold = float(scorer.manifest_threshold)
        report["threshold"] = {"value": threshold, "source": f"the {scorer.kind}'s own"}
    else:
        raise DataError(f"{data_dir}: no dev split and the model carries no threshold")
    test = load_split_for(test_dir, scorer.model_config, cache_root)
    t0 = time.perf_counter()
    test_scores = scorer.score(test)
    per_check_ms = 1000 * (time.perf_counter() - t0) / max(len(test), 1)
    test_report = evaluate_scores(test_scores, test.labels, threshold)
    report["test"] = test_report.to_dict()
    report["test_per_condition"] = per_condition(test_scores, test.labels, test.meta, threshold)
    report["timing"] = {
        "scoring_ms_per_check": per_check_ms,
        "total_s": time.perf_counter() - started,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    draw_det(
        error_curves(test_scores, test.labels), out_dir / "det.png", title=f"DET {model_path.name}"
    )
    np.save(out_dir / "test_scores.npy", test_scores)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def summary_lines(report: dict[str, Any]) -> list[str]:
    t = report["test"]
    apcers = ", ".join(f"{k} {100 * v:.2f}%" for k, v in t["apcer"].items())
    at1 = ", ".join(f"{k} {100 * v:.2f}%" for k, v in t["apcer_species_at_bpcer_1pct"].items())
    return [
        f"threshold {report['threshold']['value']:.6f} ({report['threshold']['source']})",
        f"test: {t['n_bona_fide']} bona fide, attacks {t['n_attack']}",
        f"EER {100 * t['eer']:.2f}%  HTER {100 * t['hter']:.2f}%  ACER {100 * t['acer']:.2f}%",
        f"BPCER {100 * t['bpcer']:.2f}%  APCER {apcers}",
        f"BPCER@APCER=1% {100 * t['bpcer_at_apcer_1pct']:.2f}%  "
        f"APCER@BPCER=1% {100 * t['apcer_at_bpcer_1pct']:.2f}% ({at1})",
    ]
