"""The order in which a bundle's modules run, shared by every backend (docs/ARCHITECTURE.md §1 step
9).

stem → type gate → (routing) → experts → attention gate → mixing (ATR-FAS §3.4) → head, once per
member network; an ensemble bundle (format 2) averages the members' logits.
A backend only supplies a :class:`ModuleRunner` that runs one ONNX module on named arrays; this
file turns module outputs into :class:`ModelOutput`. Errors are typed and fail closed: a shape
or value problem raises :class:`BackendError`, never a "live" score.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from flashfas_edge.inference.backend import ATTACK_TYPES, BackendError, ModelOutput
from flashfas_edge.inference.bundle import EXPERT_MODULES, Bundle, ModuleSpec, RoutingConfig
from flashfas_edge.inference.mixing import mix_depth, route_experts, sigmoid, softmax


class ModuleRunner(Protocol):
    def run_module(self, module: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one bundle module; ``inputs`` carry the batch dimension; returns outputs by name."""
        ...


class BundleForward:
    """Runs a bundle through a :class:`ModuleRunner` and mixes the results."""

    def __init__(self, bundle: Bundle, runner: ModuleRunner, routing: RoutingConfig) -> None:
        self.bundle = bundle
        self.runner = runner
        self.routing = routing
        members = len(bundle.members)
        # An ensemble's members are independent: run them side by side (the runtimes release
        # the GIL inside each module), at most one per core.
        workers = min(members, os.cpu_count() or 1)
        self._pool = ThreadPoolExecutor(workers, "ensemble-member") if workers > 1 else None

    def check_input(self, x: np.ndarray, batched: bool) -> np.ndarray:
        expected = self.bundle.input_shape
        shape = x.shape[1:] if batched else x.shape
        if x.ndim != len(expected) + int(batched) or tuple(shape) != expected:
            lead = "[B, " if batched else "["
            raise BackendError(
                f"input has shape {list(x.shape)}; bundle {self.bundle.name!r} expects "
                f"{lead}{', '.join(map(str, expected))}] float32"
            )
        if batched and x.shape[0] == 0:
            raise BackendError("empty batch")
        if x.dtype != np.float32:
            raise BackendError(f"input dtype is {x.dtype}, the bundle expects float32")
        if not np.isfinite(x).all():
            raise BackendError("input contains NaN or Inf")
        return np.ascontiguousarray(x)

    def run_batch(self, x: np.ndarray) -> list[ModelOutput]:
        """x: float32 [B, N, 3, S, S]; one :class:`ModelOutput` per sample."""
        return self._forward(self.check_input(x, batched=True))

    def run(self, x: np.ndarray) -> ModelOutput:
        """x: float32 [N, 3, S, S], one check."""
        return self._forward(self.check_input(x, batched=False)[None])[0]

    def _forward(self, x: np.ndarray) -> list[ModelOutput]:
        members = self.bundle.members
        mapper = self._pool.map if self._pool is not None else map
        runs = list(mapper(lambda specs: self._forward_member(specs, x), members))
        batch = x.shape[0]
        # An ensemble averages its members' logits (and reports the mean gate and depth).
        logit = np.mean([r.logit for r in runs], axis=0)
        weights = np.mean([r.weights for r in runs], axis=0)
        final_depth = np.mean([r.depth for r in runs], axis=0).astype(np.float32)
        ran = np.any([r.experts_run for r in runs], axis=0)
        p_live = sigmoid(logit)
        if not (np.isfinite(p_live).all() and np.isfinite(final_depth).all()):
            raise BackendError(f"bundle {self.bundle.name!r} produced NaN/Inf outputs")

        outputs = []
        for b in range(batch):
            outputs.append(
                ModelOutput(
                    p_live=float(p_live[b]),
                    type_probs={t: float(weights[b, i]) for i, t in enumerate(ATTACK_TYPES)},
                    depth=final_depth[b],
                    experts_run=tuple(t for i, t in enumerate(ATTACK_TYPES) if ran[b, i]),
                )
            )
        return outputs

    def _forward_member(self, specs: dict[str, ModuleSpec], x: np.ndarray) -> _MemberRun:
        """One network of the bundle: module outputs for the batch ``x``."""
        run = self.runner.run_module
        feat = run(specs["stem"].name, {"x": x})["feat"]
        values = {"x": x, "feat": feat}

        gate = specs["type_gate"]
        logits = run(gate.name, {gate.inputs[0]: values[gate.inputs[0]]})["logits"]
        weights = softmax(logits.astype(np.float64), axis=1)
        mask, mixing = route_experts(
            weights, sparse=self.routing.sparse, min_top_weight=self.routing.min_top_weight
        )

        batch, d = x.shape[0], self.bundle.depth_size
        # Zeros, not empty: a skipped expert's slot is multiplied by weight 0 and must not be NaN.
        depths = np.zeros((batch, len(EXPERT_MODULES), self.bundle.n_diff, d, d), np.float32)
        for m, expert in enumerate(EXPERT_MODULES):
            rows = np.flatnonzero(mask[:, m])
            if rows.size == 0:
                continue
            expert_feat = feat if rows.size == batch else np.ascontiguousarray(feat[rows])
            depths[rows, m] = run(specs[expert].name, {"feat": expert_feat})["depth"]

        att = specs["attention_gate"]
        attention = run(att.name, {att.inputs[0]: values[att.inputs[0]]})["attention"]
        final_depth = mix_depth(depths, mixing, attention)  # [B, D, D]
        logit = run(specs["head"].name, {"depth": final_depth[:, None]})["logit"]
        return _MemberRun(
            logit=logit.reshape(batch).astype(np.float64),
            weights=weights,
            depth=final_depth,
            experts_run=mask,
        )


@dataclass
class _MemberRun:
    logit: np.ndarray  # float64 [B]
    weights: np.ndarray  # float64 [B, M] type-gate softmax
    depth: np.ndarray  # float32 [B, D, D] mixed depth
    experts_run: np.ndarray  # bool [B, M]


class BundleBackendBase:
    """What every backend shares once it has a bundle and a :class:`BundleForward`.

    Subclasses set ``self._bundle`` and ``self.forward`` and add ``info()`` (and may split
    ``run_batch`` where their engines have a batch limit).
    """

    _bundle: Bundle
    forward: BundleForward

    @property
    def bundle(self) -> Bundle:
        return self._bundle

    @property
    def routing(self) -> RoutingConfig:
        return self.forward.routing

    def warm_up(self) -> None:
        self.forward.run(np.zeros(self._bundle.input_shape, np.float32))

    def run(self, x: np.ndarray) -> ModelOutput:
        return self.forward.run(x)

    def run_batch(self, x: np.ndarray) -> list[ModelOutput]:
        return self.forward.run_batch(x)
