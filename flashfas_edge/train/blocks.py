"""Convolutional building blocks of the ATR-FAS networks (ResUNet [38] with inverted residuals).

The released ATR-FAS experts are inverted-residual U-Nets (docs/ARCHITECTURE.md §2); the same
blocks build the
attention gate's small ResUNet. Everything here exports to ONNX opset ≥ 13 without custom ops.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3×3 conv + BN + ReLU: the plain layer of the stem, gates and head (ATR-FAS Table 1)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class InvertedResidual(nn.Module):
    """1×1 expand → 3×3 depthwise (stride) → 1×1 project, residual when shapes allow."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, expansion: int = 2) -> None:
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, hidden, 1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class ResUNet(nn.Module):
    """U-Net of inverted-residual blocks: one halving per extra entry of ``channels``.

    ``channels[0]`` is the width at full resolution; the decoder upsamples (nearest ×2), adds the
    encoder skip and refines; a 1×1 conv gives ``c_out`` maps at the input resolution.
    """

    def __init__(self, c_in: int, channels: tuple[int, ...], c_out: int, expansion: int = 2):
        super().__init__()
        self.entry = InvertedResidual(c_in, channels[0], expansion=expansion)
        self.down = nn.ModuleList(
            nn.Sequential(
                InvertedResidual(c_prev, c, stride=2, expansion=expansion),
                InvertedResidual(c, c, expansion=expansion),
            )
            for c_prev, c in zip(channels[:-1], channels[1:], strict=True)
        )
        self.lateral = nn.ModuleList(
            nn.Conv2d(c, c_prev, 1, bias=False)
            for c_prev, c in zip(channels[:-1], channels[1:], strict=True)
        )
        self.up = nn.ModuleList(
            InvertedResidual(c_prev, c_prev, expansion=expansion) for c_prev in channels[:-1]
        )
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.exit = nn.Conv2d(channels[0], c_out, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.entry(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for level in reversed(range(len(self.down))):
            y = self.up[level](self.upsample(self.lateral[level](y)) + skips[level])
        return self.exit(y)
