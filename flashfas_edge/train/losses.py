"""Training objective (ATR-FAS §3.5): L = λc·L_c + λd·L_d + λg·L_g.

- L_c: binary cross-entropy of P(live).
- L_d: pixel-wise softmax cross-entropy over the K depth bins of every frame's mixed depth X'
  (ATR-FAS §3.4, MoESA §3.2), or an L2 regression of the expected depth (``depth_loss``).
- L_g: type-gate cross-entropy; target one-hot for an attack, uniform 1/M for a live face (§3.3).
  MoESA's sigmoid gate uses per-expert BCE with an all-zero live target instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from flashfas_edge.train.config import LossConfig, ModelConfig
from flashfas_edge.train.model import ForwardResult

SPOOF_DEPTH = 0.5  # every spoof's depth label (ATR-FAS §5.1)


@dataclass
class Targets:
    live: Tensor  # float [B], 1 = bona fide
    attack_index: Tensor  # long [B], index into ATTACK_TYPES, −1 for live
    depth: Tensor  # float [B, D, D], live face depth in [0, 1] (spoof rows are overwritten)


def depth_target(targets: Targets, loss: LossConfig) -> Tensor:
    """Live: the face depth (squared for MoESA); every attack: the constant 0.5."""
    live_depth = targets.depth.clamp(0.0, 1.0)
    if loss.depth_label == "squared":
        live_depth = live_depth**2
    is_live = targets.live[:, None, None] > 0.5
    return torch.where(is_live, live_depth, torch.full_like(live_depth, SPOOF_DEPTH))


def gate_target(targets: Targets, n_experts: int, uniform_live: bool) -> Tensor:
    """[B, M]: one-hot attack type; live rows uniform 1/M (ATR-FAS) or all zero (MoESA)."""
    b = targets.live.shape[0]
    out = torch.zeros(b, n_experts, device=targets.live.device)
    attack = targets.attack_index >= 0
    out[attack, targets.attack_index[attack]] = 1.0
    if uniform_live:
        out[~attack] = 1.0 / n_experts
    return out


def total_loss(
    result: ForwardResult, targets: Targets, model: ModelConfig, loss: LossConfig
) -> tuple[Tensor, dict[str, float]]:
    parts: dict[str, Tensor] = {
        "cls": F.binary_cross_entropy_with_logits(result.logit, targets.live.float())
    }
    if loss.lambda_depth > 0 and result.frame_log_probs is not None:
        target = depth_target(targets, loss)  # [B, D, D]
        if loss.depth_loss == "softmax":
            k = result.frame_log_probs.shape[2]
            bins = (target * (k - 1)).round().long()  # [B, D, D]
            n = result.frame_log_probs.shape[1]
            index = bins[:, None, None].expand(-1, n, 1, -1, -1)
            parts["depth"] = -result.frame_log_probs.gather(2, index).mean()
        else:
            assert result.frame_depth is not None
            parts["depth"] = F.mse_loss(
                result.frame_depth, target[:, None].expand_as(result.frame_depth)
            )
    gated = model.mixing in ("type_gate", "sigmoid_gate")
    if loss.lambda_gate > 0 and gated and result.gate_logits is not None:
        if model.mixing == "sigmoid_gate":
            target = gate_target(targets, model.n_experts, uniform_live=False)
            parts["gate"] = F.binary_cross_entropy_with_logits(result.gate_logits, target)
        else:
            target = gate_target(targets, model.n_experts, uniform_live=True)
            log_w = torch.log_softmax(result.gate_logits, dim=1)
            parts["gate"] = -(target * log_w).sum(dim=1).mean()
    weights = {"cls": loss.lambda_cls, "depth": loss.lambda_depth, "gate": loss.lambda_gate}
    total = sum(weights[name] * value for name, value in parts.items())
    assert isinstance(total, Tensor)
    return total, {name: float(value.detach()) for name, value in parts.items()}
