"""Export a trained ATR-FAS checkpoint as a model bundle (docs/MODEL_BUNDLE.md,
docs/ARCHITECTURE.md §4).

One ONNX file per module (stem, expert_print/replay/mask, type_gate, attention_gate, head) with a
dynamic batch dimension and fixed N = 2(N0 − 2), so a runtime can skip experts the type gate rules
out. Experts export the expected depth Σ p_k·k/(K − 1) rather than K bin logits: the runtime mixes
depths linearly (ATR-FAS §3.4), which equals mixing the bin distributions and then taking the
expectation, and it moves K× less data. ``check_parity`` runs the exported bundle through the
daemon's own backend and reports the largest difference from PyTorch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from flashfas_edge import _core
from flashfas_edge.flash_levels import (
    DEFAULT_CHALLENGE_FAMILY,
    DEFAULT_LEVELS,
    check_family,
    check_levels,
)
from flashfas_edge.inference.backend import ATTACK_TYPES
from flashfas_edge.inference.bundle import FORMAT_VERSION, MANIFEST_NAME
from flashfas_edge.train.config import TrainConfig
from flashfas_edge.train.model import AtrFas, expected_depth

OPSET = 17


class ExportError(RuntimeError):
    """The checkpoint cannot become a bundle (config outside the contract, parity failure …)."""


def normalisation_spec() -> dict[str, Any]:
    """What ``_core.preprocess`` does to its output (the pipeline compares this verbatim)."""
    return {"method": str(_core.NORMALISATION), "eps": float(_core.GLOBAL_RMS_EPS)}


class _ExpertDepth(nn.Module):
    def __init__(self, expert: nn.Module) -> None:
        super().__init__()
        self.expert = expert

    def forward(self, feat: Tensor) -> Tensor:
        return expected_depth(torch.softmax(self.expert(feat), dim=2), dim=2)


class _HeadLogit(nn.Module):
    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def forward(self, depth: Tensor) -> Tensor:
        return self.head(depth)


def bundle_modules(model: AtrFas) -> dict[str, tuple[nn.Module, str, str]]:
    """module name → (network, input name, output name)."""
    assert model.type_gate is not None and model.attention_gate is not None
    out: dict[str, tuple[nn.Module, str, str]] = {"stem": (model.stem, "x", "feat")}
    for name, expert in zip(ATTACK_TYPES, model.experts, strict=True):
        out[f"expert_{name}"] = (_ExpertDepth(expert), "feat", "depth")
    out["type_gate"] = (model.type_gate, "x", "logits")
    out["attention_gate"] = (model.attention_gate, "x", "attention")
    out["head"] = (_HeadLogit(model.head), "depth", "logit")
    return out


def export_module(net: nn.Module, input_name: str, output_name: str, example: Tensor,
                  path: Path) -> None:
    """One module as the bundle holds it (eval mode: each BatchNorm folded into its conv)."""
    torch.onnx.export(
        net.eval(),
        (example,),
        str(path),
        input_names=[input_name],
        output_names=[output_name],
        dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
        opset_version=OPSET,
        dynamo=False,
    )


def example_input(config: TrainConfig, name: str, batch: int) -> Tensor:
    m = config.model
    s, d = m.input_size, m.depth_size
    shapes = {
        "x": (batch, m.n_frames, 3, s, s),
        "feat": (batch, m.n_frames, m.stem_channels, d, d),
        "depth": (batch, 1, d, d),
    }
    return torch.randn(*shapes[name], generator=torch.Generator().manual_seed(0))


def trained_challenge(data_provenance: dict[str, Any]) -> tuple[tuple[float, ...], str]:
    """The flash levels and challenge family a run was trained on, from its data's
    ``dataset.json`` (``synth`` records both); a dataset that does not say was rendered with the
    defaults, which is what it is read as (every ``--extra-train`` set must agree)."""
    found = set()
    for entry in [data_provenance, *data_provenance.get("extra_train", [])]:
        info = entry.get("dataset", {}) if isinstance(entry, dict) else {}
        try:
            levels = check_levels(info.get("levels", DEFAULT_LEVELS))
            family = check_family(info.get("challenge_family", DEFAULT_CHALLENGE_FAMILY))
        except (TypeError, ValueError) as exc:
            raise ExportError(f"training data {entry.get('path', '?')}: {exc}") from exc
        found.add((levels, family))
    if len(found) != 1:
        raise ExportError(f"the training data mixes challenges: {sorted(found)}")
    return found.pop()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class ExportResult:
    directory: Path
    manifest: dict[str, Any]
    files_bytes: int


def export_bundle(
    model: AtrFas,
    config: TrainConfig,
    out_dir: Path,
    *,
    name: str,
    threshold: float,
    threshold_source: str,
    provenance: dict[str, Any],
) -> ExportResult:
    if not config.exportable or not isinstance(model, AtrFas):
        raise ExportError(f"config {config.name!r} does not fit the bundle contract")
    if config.model.n_frames != 6 or config.model.n0 != 5:
        raise ExportError("the bundle contract fixes N0 = 5 (N = 6)")
    if not 0.0 <= threshold <= 1.0:
        raise ExportError(f"threshold {threshold} is not a probability")
    flash_levels, challenge_family = trained_challenge(provenance.get("data", {}))
    if len(flash_levels) != config.model.n0:
        raise ExportError(
            f"the training data has {len(flash_levels)} flash levels, the model n0 = "
            f"{config.model.n0}"
        )
    model = model.eval().cpu()
    out_dir.mkdir(parents=True, exist_ok=True)
    modules: dict[str, Any] = {}
    total = 0
    for module_name, (net, input_name, output_name) in bundle_modules(model).items():
        path = out_dir / f"{module_name}.onnx"
        export_module(net, input_name, output_name, example_input(config, input_name, 2), path)
        total += path.stat().st_size
        modules[module_name] = {
            "file": path.name,
            "sha256": _sha256(path),
            "inputs": [input_name],
            "outputs": [output_name],
        }
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": "atr-fas-dgm",
        "config": config.name,
        "n0": config.model.n0,
        "n_diff": config.model.n_frames,
        "flash_levels": list(flash_levels),
        "challenge_family": challenge_family,
        "input_size": config.model.input_size,
        "depth_size": config.model.depth_size,
        "feature_channels": config.model.stem_channels,
        "depth_bins": config.model.depth_bins,
        "channel_order": "RGB",
        "layout": "NCHW",
        "normalisation": normalisation_spec(),
        "attack_types": list(ATTACK_TYPES),
        "modules": modules,
        "threshold": {"default": float(threshold), "source": threshold_source},
        "routing": {"sparse": False, "min_top_weight": 0.95},
        "provenance": {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "config": config.to_dict(),
            **provenance,
        },
    }
    write_manifest(out_dir, manifest)
    return ExportResult(out_dir, manifest, total)


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")


@dataclass
class Parity:
    max_abs_p_live: float
    max_abs_depth: float
    max_abs_logit_modules: float  # head logit, ORT module vs PyTorch module
    samples: int


@torch.no_grad()
def check_parity(model: AtrFas, bundle_dir: Path, x: np.ndarray) -> Parity:
    """Run ``x`` [B, N, 3, S, S] through PyTorch and through the daemon's ORT backend."""
    from flashfas_edge.inference.factory import create_backend

    model = model.eval().cpu()
    result = model(torch.from_numpy(x).float())
    p_torch = torch.sigmoid(result.logit.double()).numpy()
    assert result.depth is not None
    depth_torch = result.depth.numpy()
    backend = create_backend(bundle_dir, "onnxruntime", warm_up=True)
    outputs = backend.run_batch(np.ascontiguousarray(x, dtype=np.float32))
    p_ort = np.array([o.p_live for o in outputs])
    depth_ort = np.stack([o.depth for o in outputs])
    import onnxruntime as ort

    head = ort.InferenceSession(str(bundle_dir / "head.onnx"), providers=["CPUExecutionProvider"])
    logit_ort = head.run(["logit"], {"depth": depth_torch[:, None].astype(np.float32)})[0]
    logit_torch = model.head(torch.from_numpy(depth_torch[:, None])).numpy()
    return Parity(
        max_abs_p_live=float(np.max(np.abs(p_ort - p_torch))),
        max_abs_depth=float(np.max(np.abs(depth_ort - depth_torch))),
        max_abs_logit_modules=float(np.max(np.abs(logit_ort - logit_torch))),
        samples=int(x.shape[0]),
    )
