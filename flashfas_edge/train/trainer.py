"""The training loop: seeded, resumable, data-parallel under torchrun, dev EER every epoch.

ATR-FAS §5.1: Adam with exponential learning-rate decay. Optional hard-example re-sampling (MoESA
§3.3): from ``hard_example_epoch`` on, the current model scores the training set at the start of
each epoch and the misclassified / highest-loss examples are drawn ``hard_example_factor`` times
as often.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from flashfas_edge.train.augment import augmented_inputs, jitter_alignment, scaled_jitter
from flashfas_edge.train.cache import SplitTensors
from flashfas_edge.train.config import ModelConfig, TrainConfig, from_dict
from flashfas_edge.train.distributed import ParallelContext, init_parallel, shutdown_parallel
from flashfas_edge.train.losses import Targets, total_loss
from flashfas_edge.train.metrics import MetricsError, eer_threshold
from flashfas_edge.train.model import build_model

LAST = "last.pt"
BEST = "best.pt"
HARD_QUANTILE = 0.9  # the top 10 % of per-example loss count as hard, besides misclassified ones
RECALIBRATION_SAMPLES = 512  # training inputs that set a recovered bundle's BatchNorm statistics


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not fit the configuration."""


@dataclass
class TrainOptions:
    config: TrainConfig
    out_dir: Path
    seed: int = 0
    resume: bool = False
    device: str | None = None
    max_steps_per_epoch: int | None = None  # for tests and smoke runs
    progress: bool = True
    data_info: dict[str, Any] = field(default_factory=dict)  # provenance, copied to checkpoints
    # warm start: the model weights of this checkpoint, then the config's own optimiser and LR
    init_from: Path | None = None  # a checkpoint, or an exported bundle's folder
    init_member: int = 0  # which network of an ensemble bundle ``init_from`` names


@dataclass
class TrainSummary:
    history: list[dict[str, Any]]
    best_checkpoint: Path
    last_checkpoint: Path
    train_seconds: float


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batch_targets(split: SplitTensors, index: torch.Tensor, device: torch.device) -> Targets:
    attack = split.attack_index[index].to(device)
    return Targets(
        live=(attack < 0).float(), attack_index=attack, depth=split.depth[index].to(device)
    )


def jittered_depth(depth: torch.Tensor, moves: list[np.ndarray | None],
                   model: ModelConfig) -> torch.Tensor:
    """The depth labels [B, D, D] moved with their checks' alignment jitter."""
    factor = model.depth_size / model.input_size
    out = depth.cpu().numpy().copy()
    for k, move in enumerate(moves):
        if move is not None:
            out[k] = jitter_alignment(out[k], scaled_jitter(move, factor))
    return torch.from_numpy(out).to(depth.device)


@torch.no_grad()
def predict(
    model: nn.Module, split: SplitTensors, device: torch.device, batch_size: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """(P(live) float64 [n], per-example BCE [n]) in eval mode."""
    model.eval()
    logits = []
    for start in range(0, len(split), batch_size):
        x = split.x[start : start + batch_size].to(device).float()
        logits.append(model(x).logit.double().cpu())
    logit = torch.cat(logits)
    bce = F.binary_cross_entropy_with_logits(logit, split.live.double(), reduction="none")
    return torch.sigmoid(logit).numpy(), bce.numpy()


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # pickle/zip errors: all mean "not a checkpoint"
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc


def model_from_checkpoint(checkpoint: dict[str, Any]) -> tuple[nn.Module, TrainConfig]:
    config = from_dict(checkpoint["config"])
    model = build_model(config.model)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    return model, config


def _epoch_order(n: int, epoch: int, seed: int, weights: np.ndarray | None) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    if weights is None:
        return torch.randperm(n, generator=generator)
    return torch.multinomial(torch.from_numpy(weights), n, replacement=True, generator=generator)


def _hard_weights(
    model: nn.Module, train: SplitTensors, device: torch.device, factor: float
) -> tuple[np.ndarray, int]:
    p_live, bce = predict(model, train, device)
    wrong = (p_live >= 0.5) != (train.live.numpy() > 0.5)
    hard = wrong | (bce >= np.quantile(bce, HARD_QUANTILE))
    return np.where(hard, factor, 1.0), int(hard.sum())


def _check_resumable(saved: dict[str, Any], wanted: dict[str, Any], path: Path) -> None:
    """A run resumes under its own config; only the epoch count may grow (extending a run)."""

    def without_epochs(config: dict[str, Any]) -> dict[str, Any]:
        # through from_dict: fields added since the run was saved compare at their defaults
        config = from_dict(config).to_dict()
        return {**config, "optim": {k: v for k, v in config["optim"].items() if k != "epochs"}}

    if without_epochs(saved) != without_epochs(wanted):
        raise CheckpointError(f"{path}: saved with another config; use a new --out")
    if wanted["optim"]["epochs"] < saved["optim"]["epochs"]:
        raise CheckpointError(
            f"{path}: saved for {saved['optim']['epochs']} epochs; --epochs "
            f"{wanted['optim']['epochs']} would shorten it (a run can only be extended)"
        )


def _warm_start_from_bundle(
    model: nn.Module, path: Path, member: int, config: TrainConfig, train: SplitTensors, seed: int
) -> dict[str, Any]:
    """Load an exported bundle's member into ``model`` (train/from_bundle.py) and give its
    BatchNorms the statistics of ``RECALIBRATION_SAMPLES`` training inputs."""
    from flashfas_edge.train.from_bundle import (
        RecoveryError,
        model_from_bundle,
        recalibrate_batchnorm,
    )

    try:
        recovered = model_from_bundle(path, member)
    except RecoveryError as exc:
        raise CheckpointError(str(exc)) from exc
    if recovered.config.model != config.model:
        raise CheckpointError(f"{path}: another network; --init-from needs the same model config")
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    inputs = train.x[pick[:RECALIBRATION_SAMPLES]].float()
    recalibrate_batchnorm(recovered.model, inputs)
    model.load_state_dict(recovered.model.state_dict())
    return {**recovered.provenance, "batchnorm_recalibrated_on": int(len(inputs))}


def _warm_start(model: nn.Module, path: Path, config: TrainConfig) -> dict[str, Any]:
    """Load another run's weights into ``model`` (fine-tuning): the network must be the same,
    the recipe — augmentation, learning rate, epochs — is this run's own. Returns the provenance:
    which checkpoint, its run and epoch."""
    state = load_checkpoint(path)
    if from_dict(state["config"]).model != config.model:
        raise CheckpointError(f"{path}: another network; --init-from needs the same model config")
    model.load_state_dict(state["model"])
    return {
        "checkpoint": str(path),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "config": state["config"]["name"],
        "seed": state.get("seed"),
        "epoch": state["epoch"] + 1,
        "data": state.get("data", {}),
    }


def train_model(options: TrainOptions, train: SplitTensors, dev: SplitTensors) -> TrainSummary:
    config = options.config
    ctx: ParallelContext = init_parallel(options.device)
    seed_everything(options.seed + ctx.rank)
    torch.manual_seed(options.seed)  # identical initial weights on every rank
    model = build_model(config.model).to(ctx.device)
    optimiser = torch.optim.Adam(
        model.parameters(), lr=config.optim.lr, weight_decay=config.optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=config.optim.lr_decay)
    history: list[dict[str, Any]] = []
    best_key: tuple[float, float] = (float("inf"), float("inf"))
    start_epoch = 0
    data_info = options.data_info  # + the warm start's provenance
    out = options.out_dir
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
    if options.resume and (out / LAST).is_file():
        state = load_checkpoint(out / LAST)
        _check_resumable(state["config"], config.to_dict(), out / LAST)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = state["history"]
        best_key = tuple(state["best_key"])  # type: ignore[assignment]
        start_epoch = state["epoch"] + 1
    elif options.init_from is not None and options.init_from.is_dir():
        data_info = {**data_info, "init_from": _warm_start_from_bundle(
            model, options.init_from, options.init_member, config, train, options.seed
        )}
    elif options.init_from is not None:
        data_info = {**data_info, "init_from": _warm_start(model, options.init_from, config)}
    net: nn.Module = model
    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)

    started = time.perf_counter()
    prior_seconds = history[-1]["elapsed_s"] if history else 0.0
    batch = config.optim.batch_size
    for epoch in range(start_epoch, config.optim.epochs):
        weights, n_hard = None, 0
        if 0 < config.optim.hard_example_epoch <= epoch:
            weights, n_hard = _hard_weights(
                model, train, ctx.device, config.optim.hard_example_factor
            )
        order = _epoch_order(len(train), epoch, options.seed, weights)
        per_rank = len(order) // ctx.world_size
        order = order[ctx.rank :: ctx.world_size][:per_rank]
        steps = per_rank // batch
        if options.max_steps_per_epoch is not None:
            steps = min(steps, options.max_steps_per_epoch)
        net.train()
        sums: dict[str, float] = {}
        bar = tqdm(
            range(steps),
            desc=f"{config.name} epoch {epoch + 1}/{config.optim.epochs}",
            disable=not (options.progress and ctx.is_main),
            leave=False,
        )
        aug = torch.Generator().manual_seed(options.seed * 7919 + epoch * 31 + ctx.rank)
        frame_rng = np.random.default_rng([options.seed, epoch, ctx.rank])
        frame_augment = config.optim.frame_augment
        if frame_augment and train.aligned is None:
            raise ValueError(
                "snr_augment / relight_augment need the aligned frames "
                "(load_split keep_aligned=True)"
            )
        for step in bar:
            index = order[step * batch : (step + 1) * batch]
            if frame_augment:
                assert train.aligned is not None
                x_np, moves = augmented_inputs(
                    train.aligned[index.numpy()],
                    config.model.input_mode,
                    frame_rng,
                    weaken=config.optim.snr_augment,
                    relight=config.optim.relight_augment,
                    boost=config.optim.relight_boost,
                    jitter=config.optim.align_jitter,
                )
                x = torch.from_numpy(x_np).to(ctx.device)
            else:
                x, moves = train.x[index].to(ctx.device).float(), []
            targets = batch_targets(train, index, ctx.device)
            if any(move is not None for move in moves):
                targets.depth = jittered_depth(targets.depth, moves, config.model)
            if config.optim.augment:  # mirror the whole check: the template is symmetric
                flip = (torch.rand(len(index), generator=aug) < 0.5).to(ctx.device)
                x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
                targets.depth = torch.where(
                    flip[:, None, None], targets.depth.flip(-1), targets.depth
                )
            result = net(x)
            loss, parts = total_loss(result, targets, config.model, config.loss)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            parts["total"] = float(loss.detach())
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{sums['total'] / (step + 1):.3f}")
        scheduler.step()
        record: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": optimiser.param_groups[0]["lr"],
            "hard_examples": n_hard,
            **{f"train_{k}": v / max(steps, 1) for k, v in sums.items()},
        }
        if ctx.is_main:
            p_live, bce = predict(model, dev, ctx.device)
            try:
                dev_eer, dev_threshold = eer_threshold(p_live, dev.labels)
            except MetricsError:
                dev_eer, dev_threshold = float("nan"), 0.5
            record.update(dev_eer=dev_eer, dev_threshold=dev_threshold, dev_bce=float(bce.mean()))
            record["elapsed_s"] = prior_seconds + time.perf_counter() - started
            history.append(record)
            score_key = (dev_eer if np.isfinite(dev_eer) else 1.0, float(bce.mean()))
            improved = score_key < best_key
            best_key = min(best_key, score_key)
            state = {
                "config": config.to_dict(),
                "model": model.state_dict(),
                "optimizer": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "epoch": epoch,
                "history": history,
                "best_key": list(best_key),
                "seed": options.seed,
                "data": data_info,
                "dev_threshold": dev_threshold,
                "torch": torch.__version__,
            }
            torch.save(state, out / LAST)
            if improved:
                torch.save(state, out / BEST)
            if options.progress:
                tqdm.write(
                    f"{config.name} epoch {epoch + 1}: loss {record.get('train_total', 0):.4f} "
                    f"dev EER {100 * dev_eer:.2f}% dev BCE {record['dev_bce']:.4f}"
                    f"{' *' if improved else ''} ({record['elapsed_s']:.0f} s)"
                )
            (out / "history.json").write_text(json.dumps(history, indent=1))
        if ctx.distributed:
            torch.distributed.barrier()
    shutdown_parallel(ctx)
    elapsed = history[-1]["elapsed_s"] if history else 0.0
    return TrainSummary(history, out / BEST, out / LAST, elapsed)
