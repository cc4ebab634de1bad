"""Several exported bundles → one ensemble bundle (docs/MODEL_BUNDLE.md, format version 2).

Networks trained with different seeds disagree most on the hard cases (here: side-lit masks), so
averaging their logits lowers the error of any one of them. The members must share the input
contract (N0, size, normalisation …); the folder layout is ``inference/ensemble_bundle.py``'s.
The threshold is the dev EER of the *ensemble*, measured through the daemon's own backend on the
dataset's dev split, and the combined output is checked against the mean of the members' logits,
each run on its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from flashfas_edge.inference.bundle import MAX_MEMBERS, Bundle, load_bundle
from flashfas_edge.inference.ensemble_bundle import CONTRACT_FIELDS, assemble_ensemble
from flashfas_edge.train.export import ExportError, write_manifest
from flashfas_edge.train.metrics import apcer_target_threshold, eer_threshold, evaluate_scores
from flashfas_edge.train.splits import DataError, find_split, load_split_for

PARITY_SAMPLES = 64


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p) - np.log1p(-p)


def write_ensemble(
    member_dirs: list[Path], data_dir: Path, out_dir: Path, *, name: str | None = None,
    cache_root: Path | None = None, target_apcer: float | None = None,
) -> dict[str, Any]:
    """Write the ensemble bundle to ``out_dir`` (new or empty); returns its manifest. The
    threshold: :func:`dev_threshold` (``target_apcer``: the worst attack type's rule, else the
    dev EER point)."""
    from flashfas_edge.train.evaluate import BundleScorer

    if not 2 <= len(member_dirs) <= MAX_MEMBERS:
        raise ExportError(f"an ensemble has 2…{MAX_MEMBERS} members, got {len(member_dirs)}")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ExportError(f"{out_dir}: exists and is not empty; choose a new folder")
    dev_dir = find_split(data_dir, "dev")
    if dev_dir is None:
        raise DataError(f"{data_dir}: the ensemble threshold needs a dev split")
    members = [load_bundle(d) for d in member_dirs]
    _check_contract(members)

    manifest = assemble_ensemble(member_dirs, members, out_dir, name=name)
    try:
        scorer = BundleScorer(out_dir)  # the daemon's ORT backend, on the ensemble
        dev = load_split_for(dev_dir, scorer.model_config, cache_root)
        dev_scores = scorer.score(dev)
        manifest["threshold"], manifest["provenance"]["dev"] = dev_threshold(
            dev_scores, dev.labels, dev_dir, target_apcer, "the ensemble")
        manifest["provenance"]["parity"] = _combine_parity(member_dirs, dev, dev_scores)
        write_manifest(out_dir, manifest)
        load_bundle(out_dir)  # what we wrote must be what the runtime accepts
    except BaseException:
        # never leave a loadable bundle behind whose threshold was not fixed on dev
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    return manifest


def dev_threshold(scores: np.ndarray, labels: list[str], dev_dir: Path,
                  target_apcer: float | None, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the manifest's ``threshold``, its ``provenance.dev``) from dev scores.

    Without ``target_apcer``: the dev EER point, every lower score ``spoof``. With it: the lowest
    threshold at which every attack type's dev APCER is at most ``target_apcer``
    (:func:`apcer_target_threshold`), and the EER point below it as ``spoof_below``, the lower
    edge of the band a check answers ``retry`` / ``score_uncertain`` (docs/MODEL_BUNDLE.md)."""
    dev_eer, eer_point = eer_threshold(scores, labels)
    threshold: dict[str, Any] = {
        "default": float(eer_point),
        "source": f"dev EER of {what} (ONNX Runtime, {dev_dir})",
    }
    if target_apcer is not None:
        strict = apcer_target_threshold(scores, labels, target_apcer)
        threshold = {
            "default": float(strict),
            "source": (f"every attack type's dev APCER <= {100 * target_apcer:g} % for {what} "
                       f"(ONNX Runtime, {dev_dir}); scores from the dev EER point up to it "
                       "answer retry"),
            "spoof_below": float(min(eer_point, strict)),
            "target_apcer": float(target_apcer),
        }
    if not 0.0 < threshold["default"] <= 1.0:
        raise ExportError(f"dev threshold {threshold['default']} is outside (0, 1]")
    at = evaluate_scores(scores, labels, threshold["default"]).to_dict()
    provenance = {"split": str(dev_dir), "eer": dev_eer,
                  **{k: v for k, v in at.items() if k in ("hter", "bpcer", "apcer")}}
    if "spoof_below" in threshold:
        live = np.asarray(scores)[np.asarray(labels) == "live"]
        provenance["live_in_retry_band"] = float(np.mean(
            (live >= threshold["spoof_below"]) & (live < threshold["default"])))
        provenance["eer_threshold"] = float(eer_point)
    return threshold, provenance


def rethreshold_bundle(bundle_dir: Path, data_dir: Path, target_apcer: float | None, *,
                       cache_root: Path | None = None) -> dict[str, Any]:
    """Choose an existing bundle's threshold again on ``data_dir``'s dev split
    (:func:`dev_threshold`) and rewrite its manifest in place; nothing else changes. A site that
    calibrated against the old manifest calibrates again (the calibration names its hash)."""
    from flashfas_edge.train.evaluate import BundleScorer

    dev_dir = find_split(data_dir, "dev")
    if dev_dir is None:
        raise DataError(f"{data_dir}: the threshold needs a dev split")
    scorer = BundleScorer(bundle_dir)
    bundle = scorer.backend.bundle
    dev = load_split_for(dev_dir, scorer.model_config, cache_root)
    scores = scorer.score(dev)
    what = "the ensemble" if "ensemble" in bundle.manifest else "the network"
    old_text = bundle.manifest_path.read_text()
    manifest = json.loads(old_text)
    manifest["threshold"], dev_provenance = dev_threshold(scores, dev.labels, dev_dir,
                                                          target_apcer, what)
    manifest.setdefault("provenance", {})["dev"] = dev_provenance
    write_manifest(bundle_dir, manifest)
    try:
        load_bundle(bundle_dir)
    except BaseException:
        bundle.manifest_path.write_text(old_text)  # never leave an unloadable bundle behind
        raise
    return manifest


def _check_contract(members: list[Bundle]) -> None:
    first = members[0]
    for member in members:
        if len(member.members) != 1:
            raise ExportError(f"{member.manifest_path}: a member must be a single network")
        for key in CONTRACT_FIELDS:
            if member.manifest.get(key) != first.manifest.get(key):
                raise ExportError(
                    f"{member.manifest_path}: {key} = {member.manifest.get(key)!r} differs from "
                    f"{first.manifest_path} ({first.manifest.get(key)!r}); members must share "
                    "the input contract"
                )


def _combine_parity(member_dirs: list[Path], dev, ensemble_scores: np.ndarray) -> dict[str, Any]:
    """The ensemble's P(live) against sigmoid(mean of member logits), members run one by one."""
    from flashfas_edge.train.evaluate import BundleScorer

    n = min(PARITY_SAMPLES, len(dev))
    head = dev.head(n)
    logits = [_logit(BundleScorer(d).score(head)) for d in member_dirs]
    expected = 1.0 / (1.0 + np.exp(-np.mean(logits, axis=0)))
    return {
        "max_abs_p_live": float(np.max(np.abs(expected - ensemble_scores[:n]))),
        "samples": n,
        "reference": "sigmoid(mean member logit), each member bundle run alone",
    }


def manifest_summary(manifest: dict[str, Any]) -> str:
    members = manifest["ensemble"]["members"]
    parity = manifest["provenance"]["parity"]["max_abs_p_live"]
    dev = manifest["provenance"]["dev"]
    return (
        f"ensemble {manifest['name']}: {members} members, threshold "
        f"{manifest['threshold']['default']:.4f} (dev EER {100 * dev['eer']:.2f}%), "
        f"combine parity max |ΔP(live)| {parity:.2e}"
    )
