"""The ATR-FAS network (ATR-FAS §3, Fig. 2; docs/ARCHITECTURE.md §2) and the binary-CNN baseline.

Shapes: x [B, N, 3, S, S] differential frames → stem → feat [B, N, C, D, D] (D = S/4) → M expert
ResUNets → per-pixel logits over K depth bins → mixed by the type gate (MEMM, §3.4) → fused over
frames by the attention gate (§3.3) → final depth x̂ [B, D, D] → head → logit of P(live).
Each sub-network is its own module so that export can write one ONNX file per module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flashfas_edge.train.blocks import ResUNet, conv_bn_relu
from flashfas_edge.train.config import ModelConfig


@dataclass
class ForwardResult:
    logit: Tensor  # [B] logit of P(live)
    depth: Tensor | None = None  # [B, D, D] fused depth x̂ in [0, 1]
    frame_depth: Tensor | None = None  # [B, N, D, D] per-frame mixed depth X'
    frame_log_probs: Tensor | None = None  # [B, N, K, D, D] log of the mixed bin distribution
    gate_logits: Tensor | None = None  # [B, M]
    attention: Tensor | None = None  # [B, N, D, D]


def _fold(x: Tensor) -> tuple[Tensor, int, int]:
    b, n = x.shape[:2]
    return x.reshape(b * n, *x.shape[2:]), b, n


class Stem(nn.Module):
    """Two 3×3 convs, ×4 downsampling, plus a learnable 2D position embedding (§3.4, MoESA §3.2)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c = config.stem_channels
        self.convs = nn.Sequential(conv_bn_relu(3, c, stride=2), conv_bn_relu(c, c, stride=2))
        d = config.depth_size
        self.position = nn.Parameter(torch.zeros(1, c, d, d)) if config.position_embedding else None
        if self.position is not None:
            nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: Tensor) -> Tensor:
        flat, b, n = _fold(x)
        feat = self.convs(flat)
        if self.position is not None:
            feat = feat + self.position  # X⁰ = Stem(X) + P
        return feat.reshape(b, n, *feat.shape[1:])


class Expert(nn.Module):
    """One attack-type expert: ResUNet → K depth-bin logits per pixel of each frame."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.unet = ResUNet(
            config.stem_channels, config.expert_channels, config.depth_bins, config.expert_expansion
        )

    def forward(self, feat: Tensor) -> Tensor:
        flat, b, n = _fold(feat)
        logits = self.unet(flat)
        return logits.reshape(b, n, *logits.shape[1:])


def expected_depth(probs: Tensor, dim: int) -> Tensor:
    """depth = Σ_k p_k · k / (K − 1): the expectation over depth bins, in [0, 1]."""
    k = probs.shape[dim]
    shape = [1] * probs.dim()
    shape[dim] = k
    bins = torch.linspace(0.0, 1.0, k, device=probs.device, dtype=probs.dtype).reshape(shape)
    return (probs * bins).sum(dim=dim)


class TypeGate(nn.Module):
    """Three strided 3×3 convs + two linear layers → M logits from all frames (§3.3, g = G_g(X))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        c_in = 3 * config.n_frames
        chans = config.gate_channels
        self.convs = nn.Sequential(
            conv_bn_relu(c_in, chans[0], stride=2),
            conv_bn_relu(chans[0], chans[1], stride=2),
            conv_bn_relu(chans[1], chans[2], stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.mlp = nn.Sequential(
            nn.Linear(chans[2], config.gate_hidden),
            nn.ReLU(inplace=True),
            nn.Linear(config.gate_hidden, config.n_experts),
        )

    def forward(self, x: Tensor) -> Tensor:
        b, n, c, h, w = x.shape
        return self.mlp(self.convs(x.reshape(b, n * c, h, w)))


class AttentionGate(nn.Module):
    """Two strided 3×3 convs + a ResUNet with two downsamplings → one map per frame, softmax over
    frames (§3.3, A = G_a(X); MoESA §3.2 spatial attention)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        chans = config.attention_channels
        self.convs = nn.Sequential(
            conv_bn_relu(3, chans[0], stride=2), conv_bn_relu(chans[0], chans[0], stride=2)
        )
        self.unet = ResUNet(chans[0], chans, 1, expansion=2)

    def forward(self, x: Tensor) -> Tensor:
        flat, b, n = _fold(x)
        maps = self.unet(self.convs(flat))  # [B·N, 1, D, D]
        return torch.softmax(maps.reshape(b, n, *maps.shape[-2:]), dim=1)


class Head(nn.Module):
    """Three strided 3×3 convs + one linear layer on the final depth map → logit of P(live)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        chans = config.head_channels
        self.body = nn.Sequential(
            conv_bn_relu(1, chans[0], stride=2),
            conv_bn_relu(chans[0], chans[1], stride=2),
            conv_bn_relu(chans[1], chans[2], stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(chans[2], 1),
        )

    def forward(self, depth: Tensor) -> Tensor:
        return self.body(depth - 0.5)  # centred: a spoof's depth label is the constant 0.5


class AtrFas(nn.Module):
    """MEMM + DGM + head. ``config.mixing`` / ``attention`` select the Table 3 ablations."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = Stem(config)
        self.experts = nn.ModuleList(Expert(config) for _ in range(config.n_experts))
        gated = config.mixing in ("random_gate", "type_gate", "sigmoid_gate")
        self.type_gate = TypeGate(config) if gated else None
        self.attention_gate = AttentionGate(config) if config.attention else None
        k, m = config.depth_bins, config.n_experts
        self.cat_mixer = nn.Conv2d(k * m, k, 1) if config.mixing == "cat" else None
        self.head = Head(config)

    def forward(self, x: Tensor) -> ForwardResult:
        feat = self.stem(x)
        logits = torch.stack([expert(feat) for expert in self.experts], dim=1)  # [B,M,N,K,D,D]
        gate_logits = self.type_gate(x) if self.type_gate is not None else None
        log_probs = self._mix(logits, gate_logits)  # [B, N, K, D, D]
        frame_depth = expected_depth(log_probs.exp(), dim=2)  # X' [B, N, D, D]
        if self.attention_gate is not None:
            attention = self.attention_gate(x)
            depth = (attention * frame_depth).sum(dim=1)  # x̂ = Σ_n A_n ⊙ X'_n
        else:
            attention = None
            depth = frame_depth.mean(dim=1)
        logit = self.head(depth[:, None]).squeeze(1)
        return ForwardResult(logit, depth, frame_depth, log_probs, gate_logits, attention)

    def _mix(self, logits: Tensor, gate_logits: Tensor | None) -> Tensor:
        """Log of the mixed per-pixel bin distribution; mixing distributions keeps E[depth]
        linear in the expert depths, which is what the runtime mixes (docs/MODEL_BUNDLE.md)."""
        mixing = self.config.mixing
        if mixing == "sum":
            return torch.log_softmax(logits.sum(dim=1), dim=2)
        if mixing == "cat":
            assert self.cat_mixer is not None
            b, m, n, k, d, _ = logits.shape
            stacked = logits.permute(0, 2, 1, 3, 4, 5).reshape(b * n, m * k, d, d)
            return torch.log_softmax(self.cat_mixer(stacked), dim=1).reshape(b, n, k, d, d)
        log_p = torch.log_softmax(logits, dim=3)  # per expert, over bins
        m = logits.shape[1]
        if mixing == "avg":
            log_w = logits.new_full((logits.shape[0], m), -math.log(m))
        elif mixing == "sigmoid_gate":  # MoESA: independent gates, renormalised for the mixture
            assert gate_logits is not None
            w = torch.sigmoid(gate_logits)
            log_w = torch.log(w / (w.sum(dim=1, keepdim=True) + 1e-6) + 1e-12)
        else:  # X' = softmax(g) × X̄ (ATR-FAS §3.4)
            assert gate_logits is not None
            log_w = torch.log_softmax(gate_logits, dim=1)
        return torch.logsumexp(log_p + log_w[:, :, None, None, None, None], dim=1)


class BinaryCnn(nn.Module):
    """Baseline: strided 3×3 convs over all frames stacked as channels, binary output only."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3 * config.n_frames
        for c in config.binary_channels:
            layers.append(conv_bn_relu(c_in, c, stride=2))
            c_in = c
        self.body = nn.Sequential(
            *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 1)
        )

    def forward(self, x: Tensor) -> ForwardResult:
        b, n, c, h, w = x.shape
        return ForwardResult(self.body(x.reshape(b, n * c, h, w)).squeeze(1))


def build_model(config: ModelConfig) -> nn.Module:
    config.validate()
    if config.architecture == "binary-cnn":
        return BinaryCnn(config)
    return AtrFas(config)
