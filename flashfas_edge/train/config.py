"""Training configuration: the model's sizes, its ablation switches and the optimiser, as data.

One frozen dataclass tree, validated once when built (STYLE.md "config is data"). Named presets
(``paper``, ``edge``, the ATR-FAS Table 3/4 ablations, baselines) live in ``presets.py``; a config
can also be loaded from a JSON file with the same fields, optionally ``{"base": "edge", ...}``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flashfas_edge.flash_levels import check_n0, n_diff_of

ARCHITECTURES = ("atr-fas", "binary-cnn")
# How the M expert outputs are combined (ATR-FAS §5.3, Table 3).
MIXINGS = ("avg", "sum", "cat", "random_gate", "type_gate", "sigmoid_gate")
# What the networks see (ATR-FAS §3.2 and Table 4).
INPUT_MODES = ("diffnorm", "raw", "consecutive")
DEPTH_LOSSES = ("softmax", "regression")
DEPTH_LABELS = ("linear", "squared")  # MoESA §4 squares the live depth


class ConfigError(ValueError):
    """A training configuration has a bad or inconsistent value."""


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "atr-fas"
    n0: int = 5  # flash states per check (ATR-FAS §5.3.3: N0 = 5)
    input_mode: str = "diffnorm"
    input_size: int = 128  # aligned face S; the stem downsamples ×4 to the depth size D = S / 4
    stem_channels: int = 16  # C' of the stem output / position embedding
    expert_channels: tuple[int, ...] = (16, 32, 48)  # ResUNet widths per level (D, D/2, D/4, ...)
    expert_expansion: int = 2  # inverted-residual expansion factor
    depth_bins: int = 256  # per-pixel depth classes, depth = Σ p_k · k / (bins − 1)
    n_experts: int = 3  # print, replay, mask (1 = "w/o MEMM")
    mixing: str = "type_gate"
    attention: bool = True  # attention gate over frames (False: plain mean over frames)
    position_embedding: bool = True
    gate_channels: tuple[int, ...] = (16, 32, 48)  # the type gate's three strided 3×3 convs
    gate_hidden: int = 32
    attention_channels: tuple[int, ...] = (8, 16, 24)  # attention gate ResUNet widths
    head_channels: tuple[int, ...] = (16, 32, 32)  # the head's three strided 3×3 convs
    binary_channels: tuple[int, ...] = (16, 32, 64, 96)  # binary-CNN baseline only

    @property
    def n_frames(self) -> int:
        """Frames the networks see: N = 2(N0 − 2) differential frames, N0 raw, or N0 − 1 diffs."""
        if self.input_mode == "diffnorm":
            return n_diff_of(self.n0)
        if self.input_mode == "raw":
            return self.n0
        return self.n0 - 1

    @property
    def depth_size(self) -> int:
        return self.input_size // 4

    def validate(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if self.mixing not in MIXINGS:
            raise ConfigError(f"mixing must be one of {MIXINGS}, got {self.mixing!r}")
        if self.input_mode not in INPUT_MODES:
            raise ConfigError(f"input_mode must be one of {INPUT_MODES}, got {self.input_mode!r}")
        try:
            check_n0(self.n0)  # ATR-FAS §5.3.3
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        levels = len(self.expert_channels) - 1
        if self.input_size % (4 * 2**levels) or self.input_size < 32:
            raise ConfigError(
                f"input_size {self.input_size} must be ≥ 32 and divisible by 4·2^{levels} "
                "(stem ×4, then one halving per extra expert level)"
            )
        if self.depth_size % 4:
            raise ConfigError("depth size (input_size / 4) must be divisible by 4 (attention gate)")
        if self.n_experts < 1:
            raise ConfigError("n_experts must be ≥ 1")
        if self.n_experts == 1 and self.mixing not in ("avg",):
            raise ConfigError("a single expert (w/o MEMM) needs mixing='avg' (nothing to mix)")
        if self.depth_bins < 2:
            raise ConfigError("depth_bins must be ≥ 2")


@dataclass(frozen=True)
class LossConfig:
    lambda_cls: float = 1.0  # λc · BCE(live)
    lambda_depth: float = 1.0  # λd · depth loss
    lambda_gate: float = 0.5  # λg · CE(type gate), live target uniform 1/M (ATR-FAS §3.3)
    depth_loss: str = "softmax"
    depth_label: str = "linear"

    def validate(self) -> None:
        if self.depth_loss not in DEPTH_LOSSES:
            raise ConfigError(f"depth_loss must be one of {DEPTH_LOSSES}, got {self.depth_loss!r}")
        if self.depth_label not in DEPTH_LABELS:
            raise ConfigError(
                f"depth_label must be one of {DEPTH_LABELS}, got {self.depth_label!r}"
            )
        if min(self.lambda_cls, self.lambda_depth, self.lambda_gate) < 0:
            raise ConfigError("loss weights must be ≥ 0")


# how much brighter the relit ambient light is than the old one (augment.relight_ambient)
RELIGHT_BOOST_DEFAULT = (1.0, 3.0)


@dataclass(frozen=True)
class OptimConfig:
    epochs: int = 12
    batch_size: int = 16
    lr: float = 2e-3
    lr_decay: float = 0.8  # exponential decay per epoch (ATR-FAS §5.1: Adam, exponential decay)
    weight_decay: float = 1e-4
    augment: bool = True  # horizontal flip of the whole check (the template is symmetric)
    snr_augment: float = 0.0  # share of checks shown with a weakened flash (augment.py)
    relight_augment: float = 0.0  # share of checks relit by a brighter side light (augment.py)
    relight_boost: tuple[float, float] = RELIGHT_BOOST_DEFAULT  # uniform range of the boost
    # share of checks re-aligned by a small random similarity, as a landmark detector's error
    # moves the crop (augment.jitter_alignment)
    align_jitter: float = 0.0
    hard_example_epoch: int = 0  # >0: from this epoch on, re-sample hard examples (MoESA §3.3)
    hard_example_factor: float = 3.0  # sampling weight of a hard example relative to an easy one

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("epochs, batch_size must be ≥ 1 and lr > 0")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError("lr_decay must be in (0, 1]")
        if not all(0 <= share <= 1 for share in
                   (self.snr_augment, self.relight_augment, self.align_jitter)):
            raise ConfigError("snr_augment, relight_augment and align_jitter are shares in [0, 1]")
        low, high = self.relight_boost
        if not 1 <= low <= high:
            raise ConfigError(f"relight_boost must be a range 1 ≤ low ≤ high, got {low}, {high}")

    @property
    def frame_augment(self) -> bool:
        """Whether training builds inputs from the aligned frames (an augmentation is on)."""
        return self.snr_augment > 0 or self.relight_augment > 0 or self.align_jitter > 0


@dataclass(frozen=True)
class TrainConfig:
    name: str = "edge"
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    exportable: bool = True  # fits the bundle contract (docs/MODEL_BUNDLE.md)

    def validate(self) -> TrainConfig:
        self.model.validate()
        self.loss.validate()
        self.optim.validate()
        if self.exportable and not (
            self.model.architecture == "atr-fas"
            and self.model.n_experts == 3
            and self.model.mixing in ("type_gate", "random_gate")
            and self.model.attention
            and self.model.input_mode == "diffnorm"
        ):
            raise ConfigError(
                f"config {self.name!r} is marked exportable but the bundle contract needs "
                "3 experts, a softmax gate, the attention gate and differential input"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **sections: dict[str, Any] | str | bool) -> TrainConfig:
        """A copy with some fields changed: ``replace(model={"mixing": "avg"}, name="x")``."""
        return from_dict(_merge(self.to_dict(), dict(sections)))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _section(cls: type, data: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(names)
    if unknown:
        raise ConfigError(f"unknown field(s) in {where}: {sorted(unknown)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**kwargs)


def from_dict(data: dict[str, Any]) -> TrainConfig:
    data = dict(data)
    if "base" in data:
        from flashfas_edge.train.presets import get_preset

        data = _merge(get_preset(data.pop("base")).to_dict(), data)
    unknown = set(data) - {"name", "description", "model", "loss", "optim", "exportable"}
    if unknown:
        raise ConfigError(f"unknown top-level config field(s): {sorted(unknown)}")
    config = TrainConfig(
        name=str(data.get("name", "custom")),
        description=str(data.get("description", "")),
        model=_section(ModelConfig, data.get("model", {}), "model"),
        loss=_section(LossConfig, data.get("loss", {}), "loss"),
        optim=_section(OptimConfig, data.get("optim", {}), "optim"),
        exportable=bool(data.get("exportable", True)),
    )
    return config.validate()


def load_config(name_or_path: str) -> TrainConfig:
    """A preset name (``edge``, ``paper``, ``ablation-memm-avg`` …) or a JSON file path."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        try:
            return from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    from flashfas_edge.train.presets import get_preset

    return get_preset(name_or_path)
