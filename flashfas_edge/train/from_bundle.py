"""A network back from an exported bundle, to fine-tune a shipped model whose checkpoint is gone.

A bundle keeps only ONNX files, and export folds each BatchNorm into the convolution before it:
the file holds W' = W·γ/√(σ² + ε) and b' = β − μ·γ/√(σ² + ε), not W, γ, β, μ, σ² apart. The
recovery therefore works in two steps:

1. **Which initializer is which parameter.** A probe network of the same config, with distinct
   random values in every parameter and each BatchNorm set to the identity (γ = 1, μ = 0,
   σ² = 1 − ε, its own random β), is exported by the same code. Its initializers then hold the
   probe's own conv weights and β values, so matching values names every initializer of the
   bundle's file, which has the same graph. Each conv gets W', its BatchNorm the identity with
   β = b'. In eval mode this is the exported network exactly (checked against ONNX Runtime).
2. **BatchNorm statistics to train with.** In train mode BatchNorm normalises by the batch's own
   statistics, which the identity does not know. ``recalibrate_batchnorm`` measures each
   BatchNorm's input mean and variance on training inputs and re-parameterises it
   (μ, σ² measured, γ = √(σ² + ε), β = b' + μ): the eval-mode function is unchanged, and a
   training batch drawn like those inputs is normalised to nearly the same output.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import Tensor, nn

from flashfas_edge.inference.bundle import BundleError, load_bundle
from flashfas_edge.train.config import TrainConfig, from_dict
from flashfas_edge.train.export import bundle_modules, example_input, export_module
from flashfas_edge.train.model import AtrFas, build_model

PROBE_SEED = 20261206
PARITY_TOLERANCE = 1e-4  # |Δ output| of a recovered module against its ONNX file


class RecoveryError(RuntimeError):
    """The bundle's files cannot be read back into the network its manifest names."""


@dataclass
class Recovered:
    model: AtrFas
    config: TrainConfig
    provenance: dict[str, Any]  # which bundle and member, and the parity of each module


def member_config(manifest: dict[str, Any], member: int) -> TrainConfig:
    """The training config a bundle member was exported with (its manifest's provenance)."""
    provenance = manifest.get("provenance", {})
    if "ensemble" in manifest:
        members = provenance.get("members", [])
        provenance = members[member].get("provenance", {}) if member < len(members) else {}
    if "config" not in provenance:
        raise RecoveryError("the manifest does not record the training config")
    return from_dict(provenance["config"])


def _conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Every BatchNorm with the conv it follows (the blocks always place them side by side)."""
    pairs = []
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            layers = list(module)
            for first, second in zip(layers, layers[1:], strict=False):
                if isinstance(second, nn.BatchNorm2d):
                    if not isinstance(first, nn.Conv2d) or first.bias is not None:
                        raise RecoveryError("a BatchNorm that does not follow a bias-free conv")
                    pairs.append((first, second))
    if sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) != len(pairs):
        raise RecoveryError("a BatchNorm outside a conv + BatchNorm pair")
    return pairs


def _running_stats(bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    if bn.running_mean is None or bn.running_var is None:
        raise RecoveryError("a BatchNorm without running statistics")
    return bn.running_mean, bn.running_var


def _set_identity(bn: nn.BatchNorm2d) -> None:
    """γ = 1, μ = 0, σ² + ε = 1: in eval mode the BatchNorm only adds its β."""
    mean, var = _running_stats(bn)
    bn.weight.data.fill_(1.0)
    mean.zero_()
    var.fill_(1.0 - bn.eps)


def _build(config: TrainConfig) -> AtrFas:
    """A network of ``config`` without touching the caller's random state (its initial weights
    are overwritten anyway)."""
    with torch.random.fork_rng(devices=[]):
        model = build_model(config.model)
    if not isinstance(model, AtrFas):
        raise RecoveryError(f"architecture {config.model.architecture!r} has no bundle form")
    return model


@torch.no_grad()
def _make_probe(config: TrainConfig) -> AtrFas:
    probe = _build(config)
    values = torch.Generator().manual_seed(PROBE_SEED)
    for param in probe.parameters():
        param.copy_(torch.randn(param.shape, generator=values))
    for _, bn in _conv_bn_pairs(probe):
        _set_identity(bn)
    return probe.eval()


def _initializers(path: Path) -> dict[str, np.ndarray]:
    graph = onnx.load(str(path)).graph
    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def _match(value: np.ndarray, probe_inits: dict[str, np.ndarray], taken: set[str]) -> str:
    found = [
        name for name, array in probe_inits.items()
        if name not in taken and array.shape == value.shape
        and np.allclose(array, value, rtol=1e-5, atol=1e-6)
    ]
    if len(found) != 1:
        raise RecoveryError(
            f"a parameter of shape {value.shape} matches {len(found)} initializers of the probe "
            "(the bundle was exported by other code)"
        )
    return found[0]


@torch.no_grad()
def _recover_module(
    probe_net: nn.Module, target_net: nn.Module, probe_file: Path, bundle_file: Path
) -> None:
    """Copy ``bundle_file``'s weights into ``target_net`` (same structure as ``probe_net``)."""
    probe_inits = _initializers(probe_file)
    bundle_inits = _initializers(bundle_file)
    def shapes(inits: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
        return {name: array.shape for name, array in inits.items()}

    if shapes(probe_inits) != shapes(bundle_inits):
        raise RecoveryError(f"{bundle_file.name}: its graph is not the one this code exports")
    taken: set[str] = set()

    def take(value: Tensor) -> Tensor:
        name = _match(value.detach().numpy(), probe_inits, taken)
        taken.add(name)
        return torch.from_numpy(bundle_inits[name].copy())

    target_params = dict(target_net.named_parameters())
    pairs = list(zip(_conv_bn_pairs(probe_net), _conv_bn_pairs(target_net), strict=True))
    folded = set()
    for (p_conv, p_bn), (t_conv, t_bn) in pairs:
        t_conv.weight.copy_(take(p_conv.weight))
        t_bn.bias.copy_(take(p_bn.bias))
        _set_identity(t_bn)
        folded.update({id(p_conv.weight), id(p_bn.weight), id(p_bn.bias)})
    for name, param in probe_net.named_parameters():
        if id(param) not in folded:
            target_params[name].copy_(take(param))
    if taken != set(probe_inits):
        raise RecoveryError(f"{bundle_file.name}: initializers {sorted(set(probe_inits) - taken)} "
                            "belong to no parameter")


def _module_parity(net: nn.Module, path: Path, example: Tensor, input_name: str) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {input_name: example.numpy()})[0]
    with torch.no_grad():
        got = net.eval()(example).numpy()
    return float(np.max(np.abs(got - expected)))


def model_from_bundle(bundle_dir: Path, member: int = 0) -> Recovered:
    """Member ``member`` of the bundle in ``bundle_dir`` as a PyTorch network (eval mode, each
    BatchNorm the identity after its folded conv), with each module's parity against its file."""
    try:
        bundle = load_bundle(bundle_dir)
    except BundleError as exc:
        raise RecoveryError(str(exc)) from exc
    if not 0 <= member < len(bundle.members):
        raise RecoveryError(f"{bundle_dir}: no member {member} ({len(bundle.members)} in all)")
    config = member_config(bundle.manifest, member)
    probe = _make_probe(config)
    model = _build(config).eval()
    parity: dict[str, float] = {}
    probe_modules = bundle_modules(probe)
    with tempfile.TemporaryDirectory(prefix="flashfas-probe-") as tmp:
        for role, (target_net, input_name, output_name) in bundle_modules(model).items():
            probe_net = probe_modules[role][0]
            example = example_input(config, input_name, 2)
            probe_file = Path(tmp) / f"{role}.onnx"
            export_module(probe_net, input_name, output_name, example, probe_file)
            bundle_file = bundle.members[member][role].path
            _recover_module(probe_net, target_net, probe_file, bundle_file)
            parity[role] = _module_parity(target_net, bundle_file, example, input_name)
    worst = max(parity.values())
    if not worst <= PARITY_TOLERANCE:
        raise RecoveryError(f"{bundle_dir}: the recovered member {member} differs from its files "
                            f"by {worst:.3g} (modules: {parity})")
    provenance = {
        "bundle": str(bundle_dir),
        "manifest_sha256": bundle.manifest_sha256,
        "member": member,
        "config": config.name,
        "parity_max_abs": parity,
    }
    return Recovered(model, config, provenance)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: Tensor, batch_size: int = 64) -> int:
    """Give every BatchNorm the statistics of its inputs over ``inputs`` without changing the
    eval-mode function (module docstring, step 2). Returns the number of BatchNorms."""
    pairs = _conv_bn_pairs(model)
    sums: dict[int, list[Tensor]] = {id(bn): [] for _, bn in pairs}

    def hook(bn: nn.Module, args: tuple[Tensor, ...], _out: Tensor) -> None:
        z = args[0].double()
        sums[id(bn)].append(torch.stack([
            z.sum(dim=(0, 2, 3)), (z * z).sum(dim=(0, 2, 3)),
            torch.full((z.shape[1],), float(z.numel() // z.shape[1]), dtype=torch.float64),
        ]))

    handles = [bn.register_forward_hook(hook) for _, bn in pairs]
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(inputs), batch_size):
            model(inputs[start:start + batch_size])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    for _, bn in pairs:
        total = torch.stack(sums[id(bn)]).sum(dim=0)
        mean = total[0] / total[2]
        var = (total[1] / total[2] - mean * mean).clamp_min(0.0)
        # identity before: y = z·γ/√(σ²+ε) + β − μγ/√(σ²+ε) with the old (γ, β, μ, σ²)
        running_mean, running_var = _running_stats(bn)
        scale = bn.weight.double() / torch.sqrt(running_var.double() + bn.eps)
        shift = bn.bias.double() - running_mean.double() * scale
        running_mean.copy_(mean)
        running_var.copy_(var)
        bn.weight.copy_(scale * torch.sqrt(var + bn.eps))
        bn.bias.copy_(shift + mean * scale)
    return len(pairs)
