"""Small random-weight bundles that meet docs/MODEL_BUNDLE.md, written with ``onnx.helper``.

For tests and benchmarks before (or beside) a trained bundle: every module is a real ONNX graph with
the contract's tensor names and shapes, run by real ONNX Runtime sessions. The weights are random,
so the outputs mean nothing — only the plumbing is exercised. ``gate_bias`` lets a test make the
type gate confident for one expert (to exercise sparse routing).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from flashfas_edge.flash_levels import DEFAULT_CHALLENGE_FAMILY, n_diff_of
from flashfas_edge.inference.backend import ATTACK_TYPES
from flashfas_edge.inference.bundle import EXPERT_MODULES, FORMAT_VERSION, MANIFEST_NAME

_OPSET = 17
_IR_VERSION = 8  # readable by every ONNX Runtime ≥ 1.14 and TensorRT 10


def write_synthetic_bundle(
    directory: str | Path,
    *,
    n0: int = 5,
    input_size: int = 64,
    channels: int = 8,
    depth_bins: int = 16,
    seed: int = 0,
    gate_inputs: str = "feat",
    gate_bias: tuple[float, float, float] = (0.0, 0.0, 0.0),
    name: str = "synthetic-test",
    routing_sparse: bool = False,
    min_top_weight: float = 0.95,
    flash_levels: tuple[float, ...] | None = None,
    challenge_family: str = DEFAULT_CHALLENGE_FAMILY,
) -> Path:
    """Write manifest.json + 7 ONNX files into ``directory``; returns the folder.

    ``flash_levels`` default: N0 evenly spaced levels from 1 to 0 (``DEFAULT_LEVELS`` at N0 = 5).
    """
    import onnx

    if input_size % 4:
        raise ValueError("input_size must be a multiple of 4 (the stem downsamples by 4)")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n_diff = n_diff_of(n0)
    depth_size = input_size // 4
    builders = {
        "stem": lambda: _stem(rng, n_diff, input_size, channels),
        **{
            e: (lambda: _expert(rng, n_diff, depth_size, channels, depth_bins))
            for e in EXPERT_MODULES
        },
        "type_gate": lambda: _type_gate(rng, n_diff, input_size, channels, gate_inputs, gate_bias),
        "attention_gate": lambda: _attention_gate(rng, n_diff, input_size, channels, gate_inputs),
        "head": lambda: _head(rng, depth_size),
    }
    modules = {}
    for module_name, build in builders.items():
        model = build()
        onnx.checker.check_model(model)
        path = out / f"{module_name}.onnx"
        path.write_bytes(model.SerializeToString())
        modules[module_name] = {
            "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "inputs": [i.name for i in model.graph.input],
            "outputs": [o.name for o in model.graph.output],
        }
    manifest = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "architecture": "atr-fas-dgm",
        "config": "synthetic",
        "n0": n0,
        "n_diff": n_diff,
        "flash_levels": list(flash_levels or np.linspace(1.0, 0.0, n0).round(6).tolist()),
        "challenge_family": challenge_family,
        "input_size": input_size,
        "depth_size": depth_size,
        "feature_channels": channels,
        "channel_order": "RGB",
        "layout": "NCHW",
        "normalisation": {"method": "synthetic-test"},
        "attack_types": list(ATTACK_TYPES),
        "modules": modules,
        "threshold": {"default": 0.5, "source": "none (random weights)"},
        "routing": {"sparse": routing_sparse, "min_top_weight": min_top_weight},
        "provenance": {
            "config": {"seed": seed},
            "data_seed": None,
            "metrics": {},
            "created": "synthetic",
            "torch": None,
        },
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


# --- graph pieces ---------------------------------------------------------------------------


class _Graph:
    """Accumulates nodes and initialisers for one small ONNX graph."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list = []
        self.inits: list = []
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        from onnx import numpy_helper

        name = self._name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        from onnx import helper

        out = output or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(self, x: str, c_in: int, c_out: int, k: int = 3, stride: int = 1) -> str:
        fan_in = c_in * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (c_out, c_in, k, k)).astype(np.float32)
        b = self.rng.normal(0, 0.05, (c_out,)).astype(np.float32)
        return self.op(
            "Conv",
            [x, self.const(w, "w"), self.const(b, "b")],
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[k // 2] * 4,
        )

    def reshape(self, x: str, shape: list[int], output: str | None = None) -> str:
        return self.op("Reshape", [x, self.const(np.array(shape, np.int64), "shape")], output)

    def model(self, name: str, inputs: list, outputs: list):
        from onnx import helper

        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        return helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", _OPSET)],
            ir_version=_IR_VERSION,
            producer_name="flashfas-synthetic",
        )


def _tensor(name: str, dims: list[int | str]):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _stem(rng, n_diff: int, size: int, channels: int):
    # ATR-FAS §3.3: two 3×3 convs downsampling by 4, plus a learnable 2D position embedding.
    g = _Graph(rng)
    h = g.reshape("x", [-1, 3, size, size])
    h = g.op("Relu", [g.conv(h, 3, channels, stride=2)])
    h = g.conv(h, channels, channels, stride=2)
    pos = rng.normal(0, 0.1, (1, channels, size // 4, size // 4)).astype(np.float32)
    h = g.op("Add", [h, g.const(pos, "pos_embedding")])
    g.reshape(h, [-1, n_diff, channels, size // 4, size // 4], "feat")
    return g.model(
        "stem",
        [_tensor("x", ["B", n_diff, 3, size, size])],
        [_tensor("feat", ["B", n_diff, channels, size // 4, size // 4])],
    )


def _expert(rng, n_diff: int, d: int, channels: int, bins: int):
    # Depth = expectation over depth bins (docs/ARCHITECTURE.md §2: Σ p_k · k/(K−1)), so it lies in
    # [0, 1].
    g = _Graph(rng)
    h = g.reshape("feat", [-1, channels, d, d])
    h = g.op("Relu", [g.conv(h, channels, channels)])
    probs = g.op("Softmax", [g.conv(h, channels, bins, k=1)], axis=1)
    bin_values = (np.arange(bins, dtype=np.float32) / (bins - 1)).reshape(1, bins, 1, 1)
    h = g.op("Conv", [probs, g.const(bin_values, "bins")], kernel_shape=[1, 1])
    g.reshape(h, [-1, n_diff, d, d], "depth")
    return g.model(
        "expert",
        [_tensor("feat", ["B", n_diff, channels, d, d])],
        [_tensor("depth", ["B", n_diff, d, d])],
    )


def _gate_input(g: _Graph, source: str, n_diff: int, size: int, channels: int):
    if source == "feat":
        spatial, c = size // 4, channels
        value = _tensor("feat", ["B", n_diff, channels, spatial, spatial])
    elif source == "x":
        spatial, c = size, 3
        value = _tensor("x", ["B", n_diff, 3, size, size])
    else:
        raise ValueError(f"gate input must be 'x' or 'feat', not {source!r}")
    return value, spatial, c


def _type_gate(rng, n_diff, size, channels, source, bias):
    g = _Graph(rng)
    value, spatial, c = _gate_input(g, source, n_diff, size, channels)
    h = g.reshape(source, [-1, n_diff * c, spatial, spatial])
    h = g.op("Relu", [g.conv(h, n_diff * c, channels, stride=2)])
    h = g.op("Flatten", [g.op("GlobalAveragePool", [h])], axis=1)
    w = rng.normal(0, 0.5, (channels, len(ATTACK_TYPES))).astype(np.float32)
    g.op("Gemm", [h, g.const(w, "w"), g.const(np.array(bias, np.float32), "b")], "logits")
    return g.model("type_gate", [value], [_tensor("logits", ["B", len(ATTACK_TYPES)])])


def _attention_gate(rng, n_diff, size, channels, source):
    g = _Graph(rng)
    value, spatial, c = _gate_input(g, source, n_diff, size, channels)
    d = size // 4
    h = g.reshape(source, [-1, c, spatial, spatial])
    if source == "x":
        h = g.op("Relu", [g.conv(h, c, channels, stride=2)])
        h = g.conv(h, channels, channels, stride=2)
        c = channels
    h = g.conv(h, c, 1)
    h = g.reshape(h, [-1, n_diff, d, d])
    g.op("Softmax", [h], "attention", axis=1)  # ATR-FAS §3.4: softmax over the N frames
    return g.model("attention_gate", [value], [_tensor("attention", ["B", n_diff, d, d])])


def _head(rng, d: int):
    g = _Graph(rng)
    h = g.op("Relu", [g.conv("depth", 1, 4, stride=2)])
    h = g.op("Flatten", [g.op("GlobalAveragePool", [h])], axis=1)
    w = rng.normal(0, 0.5, (4, 1)).astype(np.float32)
    g.op("Gemm", [h, g.const(w, "w"), g.const(np.zeros(1, np.float32), "b")], "logit")
    return g.model("head", [_tensor("depth", ["B", 1, d, d])], [_tensor("logit", ["B", 1])])


def write_synthetic_ensemble(directory: str | Path, *, members: int = 2, **kwargs: Any) -> Path:
    """An ensemble bundle (format 2) of ``members`` synthetic networks with different seeds."""
    from flashfas_edge.inference.bundle import load_bundle
    from flashfas_edge.inference.ensemble_bundle import assemble_ensemble

    out = Path(directory)
    seed = int(kwargs.pop("seed", 0))
    parts = [
        write_synthetic_bundle(out.parent / f"{out.name}.member{k}", seed=seed + k, **kwargs)
        for k in range(members)
    ]
    assemble_ensemble(parts, [load_bundle(p) for p in parts], out, name=kwargs.get("name"))
    return out
