"""Run several configs × seeds with one command and tabulate them (ATR-FAS Tables 3–4 style).

Each run trains in-process (same trainer as ``flashfas-edge train``), then its best checkpoint is
scored on dev (threshold at the dev EER) and on test. Splits are loaded once per input form and
shared by the runs. The table is written as JSON and as Markdown (mean ± std over seeds).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flashfas_edge.train.cache import SplitTensors
from flashfas_edge.train.config import TrainConfig
from flashfas_edge.train.metrics import eer_threshold, evaluate_scores
from flashfas_edge.train.splits import (
    DataError,
    find_split,
    load_split_for,
    load_training_split,
    training_provenance,
)
from flashfas_edge.train.trainer import (
    TrainOptions,
    load_checkpoint,
    model_from_checkpoint,
    predict,
)

COLUMNS = (
    ("hter", "HTER"),
    ("eer", "EER (test)"),
    ("acer", "ACER"),
    ("bpcer_at_apcer_1pct", "BPCER@APCER=1%"),
    ("apcer_at_bpcer_1pct", "APCER@BPCER=1%"),
)


@dataclass(frozen=True)
class AblationData:
    """Where every run of a table trains and is scored."""

    data: Path  # train/ dev/ test/
    extra_train: tuple[Path, ...] = ()  # more training split folders (``extra_train_dirs``)
    cache: Path | None = None
    max_train: int | None = None


def _splits(
    source: AblationData, config: TrainConfig, memo: dict
) -> tuple[SplitTensors, SplitTensors, SplitTensors]:
    key = (config.model.input_size, config.model.input_mode, config.model.depth_size)
    if key not in memo:
        found = [find_split(source.data, s) for s in ("train", "dev", "test")]
        dirs = [d for d in found if d is not None]
        if len(dirs) < 3:
            raise DataError(f"{source.data}: needs train/ dev/ test/")
        train = load_training_split([dirs[0], *source.extra_train], config.model, source.cache,
                                    keep_aligned=True)
        if source.max_train:
            train = train.head(source.max_train)
        dev, test = (load_split_for(d, config.model, source.cache) for d in dirs[1:])
        memo[key] = (train, dev, test)
    return memo[key]


def run_one(
    config: TrainConfig,
    seed: int,
    source: AblationData,
    out_root: Path,
    memo: dict,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    import torch

    train, dev, test = _splits(source, config, memo)
    out_dir = out_root / f"{config.name}-s{seed}"
    summary = _train(
        TrainOptions(
            config=config,
            out_dir=out_dir,
            seed=seed,
            resume=True,
            device=device,
            progress=progress,
            data_info={
                **training_provenance(source.data, list(source.extra_train)),
                "train": len(train),
                "dev": len(dev),
            },
        ),
        train,
        dev,
    )
    model, _ = model_from_checkpoint(load_checkpoint(summary))
    where = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(where)  # score where it trained: on a GPU machine the CPU is the slow part
    dev_scores = predict(model, dev, where)[0]
    dev_eer, threshold = eer_threshold(dev_scores, dev.labels)
    report = evaluate_scores(predict(model, test, where)[0], test.labels, threshold).to_dict()
    history = json.loads((out_dir / "history.json").read_text())
    row = {
        "config": config.name,
        "seed": seed,
        "dev_eer": dev_eer,
        "train_s": history[-1]["elapsed_s"],
        "epochs": len(history),
        "params": sum(p.numel() for p in model.parameters()),
        **{k: report[k] for k, _ in COLUMNS},
        "apcer": report["apcer"],
    }
    (out_dir / "result.json").write_text(json.dumps(row, indent=1))
    return row


def _train(options: TrainOptions, train: SplitTensors, dev: SplitTensors) -> Path:
    from flashfas_edge.train.trainer import train_model

    out_dir, epochs = options.out_dir, options.config.optim.epochs
    if (out_dir / "result.json").is_file() or (
        (out_dir / "history.json").is_file()
        and len(json.loads((out_dir / "history.json").read_text())) >= epochs
    ):
        return out_dir / "best.pt"  # finished earlier: rerunning the table does not retrain
    return train_model(options, train, dev).best_checkpoint


def _fmt(values: list[float]) -> str:
    pct = [100 * v for v in values]
    if len(pct) == 1:
        return f"{pct[0]:.2f}"
    return f"{statistics.mean(pct):.2f} ± {statistics.stdev(pct):.2f}"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    by_config: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_config.setdefault(row["config"], []).append(row)
    head = "| config | seeds | " + " | ".join(t + " (%)" for _, t in COLUMNS)
    head += " | APCER print/replay/mask (%) | train s/run |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    for name, group in by_config.items():
        cells = [_fmt([r[k] for r in group]) for k, _ in COLUMNS]
        species = "/".join(
            _fmt([r["apcer"].get(s, float("nan")) for r in group])
            for s in ("print", "replay", "mask")
        )
        train_s = statistics.mean(r["train_s"] for r in group)
        lines.append(f"| {name} | {len(group)} | {' | '.join(cells)} | {species} | {train_s:.0f} |")
    return "\n".join(lines)
