"""ATR-FAS §3.4 mixing of the expert depth maps, shared by every backend, and sparse routing.

The networks are split into modules (docs/MODEL_BUNDLE.md); what joins them is plain arithmetic
done here in numpy, so ONNX Runtime and TensorRT give the same answer from the same module outputs.
"""

from __future__ import annotations

import numpy as np

from flashfas_edge.inference.backend import ATTACK_TYPES


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    # Split by sign so that large |x| neither overflows nor loses precision.
    out = np.empty_like(x, dtype=np.float64)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    exp_x = np.exp(x[~positive])
    out[~positive] = exp_x / (1.0 + exp_x)
    return out


def route_experts(
    weights: np.ndarray, *, sparse: bool, min_top_weight: float
) -> tuple[np.ndarray, np.ndarray]:
    """Decide per sample which experts run and the weights to mix them with.

    weights: [B, M] type-gate softmax. Returns (mask bool [B, M], mixing weights float32 [B, M]).
    Dense (the paper): every expert runs, weights unchanged. Sparse (beyond the paper): a sample
    whose top weight ≥ ``min_top_weight`` runs only its top expert, renormalised to weight 1.
    """
    batch, experts = weights.shape
    mask = np.ones((batch, experts), dtype=bool)
    mixing = weights.astype(np.float32, copy=True)
    if sparse:
        top = weights.argmax(axis=1)
        confident = weights[np.arange(batch), top] >= min_top_weight
        mask[confident] = False
        mask[confident, top[confident]] = True
        mixing = np.where(mask, mixing, 0.0).astype(np.float32)
        mixing /= mixing.sum(axis=1, keepdims=True)
    return mask, mixing


def mix_depth(
    expert_depths: np.ndarray, mixing_weights: np.ndarray, attention: np.ndarray
) -> np.ndarray:
    """ATR-FAS §3.4: X' = Σ_m w_m · X^m, then x̂ = Σ_n A_n ⊙ X'_n.

    expert_depths: [B, M, N, D, D] (entries of skipped experts are ignored: their weight is 0);
    mixing_weights: [B, M]; attention: [B, N, D, D] (softmax over N already applied).
    Returns x̂ float32 [B, D, D].
    """
    if expert_depths.shape[1] != len(ATTACK_TYPES):
        raise ValueError(f"expected {len(ATTACK_TYPES)} experts, got {expert_depths.shape[1]}")
    mixed = np.einsum("bm,bmnij->bnij", mixing_weights, expert_depths, optimize=True)
    return np.einsum("bnij,bnij->bij", attention, mixed, optimize=True).astype(np.float32)
