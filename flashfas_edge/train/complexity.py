"""Parameter and multiply-accumulate counts of a config, for choosing a deployable size.

Counts convolution and linear layers only (they are ≥ 95 % of the work here); per check, i.e. one
batch element with all N differential frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from flashfas_edge.train.config import ModelConfig
from flashfas_edge.train.model import build_model


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int  # per check


def measure(config: ModelConfig) -> Complexity:
    model = build_model(config).eval()
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            per_out = (
                module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
            )
            total += output.numel() * per_out
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    s = config.input_size
    with torch.no_grad():
        model(torch.zeros(1, config.n_frames, 3, s, s))
    for h in handles:
        h.remove()
    return Complexity(params=sum(p.numel() for p in model.parameters()), macs=total)
