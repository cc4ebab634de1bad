"""Named training configs: the two deployable sizes, the ATR-FAS ablations and the baselines.

- ``paper``: ATR-FAS §5.1 sizes (256×256 in, 64×64 depth); too heavy for the kiosk CPU.
- ``edge``: the default bundle (64×64 in, 16×16 depth, narrow inverted-residual ResUNets);
  ``edge-snr-aug`` adds the flash-SNR augmentation (tried, not kept); ``edge-relight`` the
  ambient-relighting augmentation, ``edge-relight-ft`` a stronger-relighting fine-tune of it
  (``train --init-from``), ``edge-scanned-ft`` that fine-tune with the crop jittered as a landmark
  detector moves it; ``edge128`` / ``edge128-relight`` the same at 128² in.
- ``ablation-*``: ATR-FAS Table 3 (mixing) and Table 4 (input) rows on the ``edge`` sizes.
- ``moesa``: MoESA §3.2 (per-expert sigmoid gate, spatial attention, squared live depth).
- ``baseline-binary-cnn``: a plain CNN on the differential frames with a binary loss only.
- ``tiny``: a toy size for unit tests.
"""

from __future__ import annotations

from flashfas_edge.train.config import (
    ConfigError,
    LossConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)

# 64² in / 16² depth: on this 2-core CPU a training step costs ~0.06 s per check at 64² against
# ~0.4 s at 128² (the 256-bin softmax over D² pixels dominates); see docs/RESULTS.md.
EDGE = TrainConfig(
    name="edge",
    description="ATR-FAS full model (MEMM + DGM), edge sizes: 64² in, 16² depth, 256 bins",
    model=ModelConfig(input_size=64),
)
# Tried for the default bundle and not kept (docs/RESULTS.md): half of the training checks shown
# with a weakened flash (augment.py), meant for unseen bright ambient light (sunlight).
EDGE_SNR_AUG = EDGE.replace(
    name="edge-snr-aug",
    description="edge + flash-SNR augmentation on 50 % of training checks",
    optim={"snr_augment": 0.5},
)

# The side-lit, brighter-ambient look of strong sun without rendering the held-out scenario
# (augment.py, relight_ambient): half the training checks relit.
EDGE_RELIGHT = EDGE.replace(
    name="edge-relight",
    description="edge + ambient-relighting augmentation on 50 % of training checks",
    optim={"relight_augment": 0.5},
)

# A fine-tuning recipe, not a from-scratch one (train --init-from an edge-relight checkpoint):
# three epochs at a low learning rate with the relit ambient up to 6× brighter instead of 3×,
# the range where the default ensemble starts accepting relit dev masks (docs/RESULTS.md).
EDGE_RELIGHT_FT = EDGE_RELIGHT.replace(
    name="edge-relight-ft",
    description="fine-tune of edge-relight: relit ambient 1–6× brighter, LR 3e-4, 3 epochs",
    optim={"relight_boost": (1.0, 6.0), "lr": 3e-4, "lr_decay": 0.7, "epochs": 3},
)

# The fine-tune that carried the default bundle from the procedural heads to scanned faces
# (train --init-from engines/edge-default --init-member K on scanned-face sessions): the relighting
# fine-tune plus the crop moved as a real landmark detector moves it, so that the networks do not
# depend on the renderer's own landmark convention (docs/RESULTS.md).
EDGE_SCANNED_FT = EDGE_RELIGHT_FT.replace(
    name="edge-scanned-ft",
    description="edge-relight-ft + half the checks re-aligned by a detector-sized random "
    "similarity",
    optim={"align_jitter": 0.5},
)

# The edge network at twice the resolution (128² in, 32² depth): 4× the multiply-accumulates,
# trainable only on a GPU here; does the texture the 64² crop loses separate masks?
EDGE128 = EDGE.replace(
    name="edge128",
    description="edge network at 128² in, 32² depth",
    model={"input_size": 128},
)
EDGE128_RELIGHT = EDGE_RELIGHT.replace(
    name="edge128-relight",
    description="edge-relight at 128² in, 32² depth",
    model={"input_size": 128},
)

PAPER = TrainConfig(
    name="paper",
    description="ATR-FAS full model at the paper's sizes: 256² in, 64² depth",
    model=ModelConfig(
        input_size=256,
        stem_channels=32,
        expert_channels=(32, 64, 128, 192),
        expert_expansion=4,
        gate_channels=(32, 64, 128),
        gate_hidden=128,
        attention_channels=(16, 32, 64),
        head_channels=(32, 64, 64),
    ),
    optim=OptimConfig(batch_size=4, lr=1e-4, lr_decay=0.95, epochs=30),
)

TINY = TrainConfig(
    name="tiny",
    description="toy size for unit tests",
    model=ModelConfig(
        input_size=32,
        stem_channels=8,
        expert_channels=(8, 12),
        expert_expansion=2,
        depth_bins=256,
        gate_channels=(8, 8, 8),
        gate_hidden=8,
        attention_channels=(4, 8, 8),
        head_channels=(8, 8, 8),
        binary_channels=(8, 16),
    ),
    optim=OptimConfig(epochs=2, batch_size=4, lr=3e-3, augment=False),
)

# ATR-FAS Table 3: (experts, mixing, attention) per row; gate loss only where the gate is typed.
_TABLE3 = {
    "ablation-wo-memm": (1, "avg", False, "w/o MEMM: one depth expert, frames averaged"),
    "ablation-memm-avg": (3, "avg", False, "MEMM-Avg: experts averaged, frames averaged"),
    "ablation-memm-sum": (3, "sum", False, "MEMM-Sum: expert logits summed"),
    "ablation-memm-cat": (3, "cat", False, "MEMM-Cat: expert logits concatenated, 1×1 conv"),
    "ablation-wo-memm-att": (1, "avg", True, "w/o MEMM-ATT: one expert + attention gate"),
    "ablation-memm-att": (3, "avg", True, "MEMM-ATT: experts averaged + attention gate"),
    "ablation-memm-rg": (3, "random_gate", False, "MEMM-RG: learned gate without type labels"),
    "ablation-memm-rg-att": (3, "random_gate", True, "MEMM-RG-ATT: unsupervised gate + attention"),
    "ablation-memm-tg": (3, "type_gate", False, "MEMM-TG: type gate, frames averaged"),
}


def _ablation(name: str, experts: int, mixing: str, attention: bool, text: str) -> TrainConfig:
    gate_supervised = mixing == "type_gate"
    return EDGE.replace(
        name=name,
        description=text,
        model={"n_experts": experts, "mixing": mixing, "attention": attention},
        loss={"lambda_gate": EDGE.loss.lambda_gate if gate_supervised else 0.0},
        exportable=mixing in ("type_gate", "random_gate") and attention,
    )


def _build() -> dict[str, TrainConfig]:
    presets = {
        c.name: c
        for c in (
            EDGE, EDGE_SNR_AUG, EDGE_RELIGHT, EDGE_RELIGHT_FT, EDGE_SCANNED_FT, EDGE128,
            EDGE128_RELIGHT, PAPER, TINY,
        )
    }
    for name, (experts, mixing, attention, text) in _TABLE3.items():
        presets[name] = _ablation(name, experts, mixing, attention, text)
    presets["ablation-dgm"] = EDGE.replace(name="ablation-dgm", description="MEMM-DGM (= edge)")
    # ATR-FAS Table 4: without differential normalisation; Aurora-Guard consecutive differences.
    presets["ablation-wo-dn"] = EDGE.replace(
        name="ablation-wo-dn",
        description="w/o DN: the N0 aligned frames (intensity order), globally normalised",
        model={"input_mode": "raw"},
        exportable=False,
    )
    presets["ablation-aurora-guard"] = EDGE.replace(
        name="ablation-aurora-guard",
        description="Aurora-Guard normal cues: differences of intensity-consecutive frames",
        model={"input_mode": "consecutive"},
        exportable=False,
    )
    presets["moesa"] = EDGE.replace(
        name="moesa",
        description="MoESA: per-expert sigmoid gate (live → all 0), spatial attention, depth²",
        model={"mixing": "sigmoid_gate"},
        loss={"depth_label": "squared"},
        exportable=False,
    )
    presets["baseline-binary-cnn"] = TrainConfig(
        name="baseline-binary-cnn",
        description="plain binary CNN on the differential frames (BCE only)",
        model=ModelConfig(architecture="binary-cnn", n_experts=1, mixing="avg", attention=False),
        loss=LossConfig(lambda_depth=0.0, lambda_gate=0.0),
        exportable=False,
    )
    for config in presets.values():
        config.validate()
    return presets


PRESETS = _build()


def get_preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown config {name!r}; presets: {', '.join(sorted(PRESETS))}"
        ) from None
