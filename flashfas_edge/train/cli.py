"""`flashfas-edge train | eval | export`: the model's life cycle (issue 4, docs/ARCHITECTURE.md §2,
§4).

torch is imported inside the commands only, so ``flashfas-edge --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TRAIN_EPILOG = """examples:
  flashfas-edge train --config edge --data data/ds --out runs/edge-s0
  flashfas-edge train --config ablation-memm-avg --data data/ds --out runs/avg --epochs 6
  flashfas-edge train --config edge --data DS --out runs/edge-s0 --resume
  flashfas-edge train --config edge --data DS --out runs/edge-s0 --resume --epochs 10
  flashfas-edge train --config edge-relight-ft --data DS --out runs/ft --init-from runs/r/best.pt
  flashfas-edge train --config edge-relight-ft --data DS --out runs/ft1 \
      --init-from engines/edge-default --init-member 1
  flashfas-edge train --config edge --data DS --extra-train DS2 --out runs/edge-more
  torchrun --nproc_per_node 4 -m flashfas_edge.cli train --config paper --data DS --out runs/p
presets: edge, edge-relight, edge-relight-ft, edge-snr-aug, paper, tiny,
  ablation-{wo-memm,memm-avg,memm-sum,memm-cat,wo-memm-att,memm-att,memm-rg,memm-rg-att,
  memm-tg,dgm,wo-dn,aurora-guard}, moesa, baseline-binary-cnn; or a JSON file
"""

EVAL_EPILOG = """examples:
  flashfas-edge eval --model engines/edge-default --data data/ds --out runs/eval
  flashfas-edge eval --model runs/edge-s0/best.pt --data data/ds --out runs/eval-ckpt
  flashfas-edge eval --model engines/edge-default --data data/fresh-test
With dev/ and test/ splits the threshold is fixed at the dev EER; with a single split the
threshold stored in the bundle (or checkpoint) is used.
"""

EXPORT_EPILOG = """examples:
  flashfas-edge export --checkpoint runs/edge-s0/best.pt --out engines/edge-default
  flashfas-edge export --checkpoint runs/edge-s0/best.pt --out engines/edge-default \\
      --data data/ds --report runs/eval/report.json
"""


ENSEMBLE_EPILOG = """examples:
  flashfas-edge ensemble --member runs/b0 --member runs/b1 --member runs/b2 \\
      --data data/dsA --out engines/edge-default --target-apcer 0.01
The threshold is set on the dev split through ONNX Runtime: with --target-apcer, the lowest at
which every attack type's APCER is at most that rate (scores from the dev EER point up to it
answer retry); without it, the dev EER point of the averaged scores.
"""

THRESHOLD_EPILOG = """examples:
  flashfas-edge threshold --model engines/edge-default --data data/scA-dev --target-apcer 0.01
Scores the bundle's dev split through ONNX Runtime and rewrites only the manifest's threshold and
its dev provenance. A site calibrated against the old manifest calibrates again.
"""


ABLATE_EPILOG = """examples:
  flashfas-edge ablate --configs edge,ablation-memm-avg,baseline-binary-cnn --seeds 0,1,2 \\
      --data data/ds --out runs/ablate --epochs 6
  flashfas-edge ablate --configs edge,edge-relight --seeds 0,1,2 --data data/dsA \\
      --extra-train data/dsB --out runs/ablate-4680 --epochs 7
Finished runs are reused, so an interrupted table resumes where it stopped.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = subparsers.add_parser(
        "train",
        help="train an ATR-FAS model (or an ablation/baseline) on a dataset",
        epilog=TRAIN_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--config", default="edge", help="preset name or JSON config file")
    p.add_argument("--data", type=Path, required=True, help="dataset folder with train/ dev/")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, history)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="override the config's epoch count")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/last.pt (with a larger --epochs: extend a finished run)",
    )
    p.add_argument(
        "--init-from",
        type=Path,
        metavar="CKPT",
        help="start from this checkpoint's weights (same network) with the config's own "
        "optimiser, LR and epochs: fine-tuning; or from an exported bundle's folder, whose "
        "networks are read back from their ONNX files (docs/MODEL_BUNDLE.md)",
    )
    p.add_argument(
        "--init-member",
        type=int,
        default=0,
        metavar="K",
        help="with --init-from BUNDLE: which network of an ensemble (0 = the first; default 0)",
    )
    p.add_argument(
        "--hard-examples",
        type=int,
        metavar="EPOCH",
        help="re-sample hard examples from this epoch on (MoESA §3.3)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if present, else cpu)")
    p.add_argument("--max-steps", type=int, help="cap steps per epoch (smoke runs)")
    p.add_argument(
        "--extra-train",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="more training sessions: a dataset with train/ or a split folder (repeatable)",
    )
    p.add_argument("--max-train", type=int, help="use only the first N training samples")
    p.add_argument("--cache", type=Path, help="cache folder (default DATA/.flashfas-cache)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_train)

    p = subparsers.add_parser(
        "eval",
        help="error rates (EER, HTER, ISO/IEC 30107-3) of a bundle or checkpoint",
        epilog=EVAL_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--model", type=Path, required=True, help="bundle folder or checkpoint .pt")
    p.add_argument("--data", type=Path, required=True, help="dataset (dev/ + test/) or a split")
    p.add_argument("--out", type=Path, help="report folder (default: runs/eval-<model name>)")
    p.add_argument("--backend", default="onnxruntime", help="bundle backend: onnxruntime|tensorrt")
    p.add_argument("--cache", type=Path)
    p.add_argument("--threads", type=int)
    p.add_argument("--json", action="store_true", help="print the whole report as JSON")
    p.add_argument(
        "--system",
        action="store_true",
        help="also run every test session through the daemon pipeline (gates, verification, "
        "decision); bundles only",
    )
    p.add_argument("--limit", type=int, help="with --system: at most this many sessions")
    p.add_argument(
        "--landmarks",
        choices=("ground_truth", "mtcnn"),
        default="ground_truth",
        help="with --system: the sessions' stored (renderer) landmarks, or the real camera's "
        "detector on the frames (default ground_truth)",
    )
    p.set_defaults(func=run_eval)

    p = subparsers.add_parser(
        "export",
        help="write a checkpoint as an ONNX model bundle (docs/MODEL_BUNDLE.md)",
        epilog=EXPORT_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write")
    p.add_argument("--name", help="bundle name (default: the folder name)")
    p.add_argument("--data", type=Path, help="dataset: parity check on real dev samples")
    p.add_argument("--report", type=Path, help="eval report.json to record as provenance metrics")
    p.add_argument("--cache", type=Path)
    p.add_argument("--tolerance", type=float, default=1e-4, help="max |ΔP(live)| ORT vs PyTorch")
    p.set_defaults(func=run_export)

    p = subparsers.add_parser(
        "ensemble",
        help="combine exported bundles into one ensemble bundle (logits averaged)",
        epilog=ENSEMBLE_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument(
        "--member", type=Path, action="append", required=True, metavar="BUNDLE",
        help="an exported single-network bundle (2–8, repeat the option)",
    )
    p.add_argument("--data", type=Path, required=True, help="dataset: its dev/ sets the threshold")
    p.add_argument("--out", type=Path, required=True, help="new bundle folder")
    p.add_argument("--name", help="bundle name (default: the folder name)")
    p.add_argument("--cache", type=Path)
    p.add_argument(
        "--target-apcer", type=float, metavar="RATE",
        help="threshold: the lowest at which every attack type's dev APCER is at most RATE "
        "(e.g. 0.01), scores from the dev EER point up to it answering retry; default: the dev "
        "EER point",
    )
    p.set_defaults(func=run_ensemble)

    p = subparsers.add_parser(
        "threshold",
        help="choose a bundle's threshold again on a dev split (rewrites its manifest)",
        epilog=THRESHOLD_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--model", type=Path, required=True, help="the bundle folder to rewrite")
    p.add_argument("--data", type=Path, required=True, help="dataset: its dev/ sets the threshold")
    p.add_argument(
        "--target-apcer", type=float, metavar="RATE",
        help="every attack type's dev APCER at most RATE (e.g. 0.01); default: the dev EER point",
    )
    p.add_argument("--cache", type=Path)
    p.set_defaults(func=run_threshold)

    p = subparsers.add_parser(
        "ablate",
        help="train + score several configs × seeds, write a Markdown table",
        epilog=ABLATE_EPILOG,
        formatter_class=fmt,
    )
    p.add_argument("--configs", required=True, help="comma-separated preset names / JSON files")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--data", type=Path, required=True, help="dataset with train/ dev/ test/")
    p.add_argument("--out", type=Path, required=True, help="folder for runs and the table")
    p.add_argument("--epochs", type=int, help="override every config's epoch count")
    p.add_argument("--max-train", type=int, help="use only the first N training samples")
    p.add_argument(
        "--extra-train", type=Path, action="append", default=[], metavar="DIR",
        help="more training sessions (a dataset or a train split folder; repeatable)",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda if present, else cpu)")
    p.add_argument("--threads", type=int)
    p.add_argument("--cache", type=Path)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_ablate)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1


def run_train(args: argparse.Namespace) -> int:
    import torch

    from flashfas_edge.train.cache import CacheError
    from flashfas_edge.train.config import ConfigError, load_config
    from flashfas_edge.train.splits import (
        DataError,
        extra_train_dirs,
        find_split,
        load_split_for,
        load_training_split,
        training_provenance,
    )
    from flashfas_edge.train.trainer import CheckpointError, TrainOptions, train_model

    try:
        config = load_config(args.config)
        optim: dict = {}
        if args.epochs is not None:
            optim["epochs"] = args.epochs
        if args.hard_examples is not None:
            optim["hard_example_epoch"] = args.hard_examples
        if optim:
            config = config.replace(optim=optim)
        if args.threads:
            torch.set_num_threads(args.threads)
        train_dir, dev_dir = find_split(args.data, "train"), find_split(args.data, "dev")
        if train_dir is None or dev_dir is None:
            raise DataError(f"{args.data}: needs train/ and dev/ split folders")
        progress = not args.no_progress
        keep = config.optim.frame_augment  # the augmentations work on the aligned frames
        extra_dirs = extra_train_dirs(args.extra_train)
        train = load_training_split(
            [train_dir, *extra_dirs], config.model, args.cache, progress, keep_aligned=keep
        )
        if args.max_train:
            train = train.head(args.max_train)
        dev = load_split_for(dev_dir, config.model, args.cache, progress)
        info = {
            **training_provenance(args.data, extra_dirs),
            "train": len(train),
            "dev": len(dev),
        }
        summary = train_model(
            TrainOptions(
                config=config,
                out_dir=args.out,
                seed=args.seed,
                resume=args.resume,
                device=args.device,
                max_steps_per_epoch=args.max_steps,
                progress=progress,
                data_info=info,
                init_from=args.init_from,
                init_member=args.init_member,
            ),
            train,
            dev,
        )
    except (ConfigError, DataError, CacheError, CheckpointError) as exc:
        return _fail(str(exc))
    if summary.history:
        best = min(summary.history, key=lambda r: (r["dev_eer"], r["dev_bce"]))
        print(
            f"trained {config.name} in {summary.train_seconds:.0f} s; best dev EER "
            f"{100 * best['dev_eer']:.2f}% (epoch {best['epoch']}) → {summary.best_checkpoint}"
        )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from flashfas_edge.inference.backend import BackendError
    from flashfas_edge.inference.bundle import BundleError
    from flashfas_edge.train.evaluate import run_evaluation, summary_lines
    from flashfas_edge.train.metrics import MetricsError
    from flashfas_edge.train.splits import DataError
    from flashfas_edge.train.trainer import CheckpointError

    out = args.out or Path("runs") / f"eval-{args.model.stem or args.model.name}"
    try:
        report = run_evaluation(
            args.model,
            args.data,
            out,
            backend=args.backend,
            cache_root=args.cache,
            threads=args.threads,
        )
    except (DataError, BundleError, BackendError, CheckpointError, MetricsError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print("\n".join(summary_lines(report)))
        print(f"report: {out / 'report.json'}  DET: {out / 'det.png'}")
    if args.system:
        from flashfas_edge.pipeline.pipeline import PipelineSetupError
        from flashfas_edge.train import system_eval
        from flashfas_edge.train.splits import find_split

        test_dir = find_split(args.data, "test")
        if not (args.model / "manifest.json").is_file() or test_dir is None:
            return _fail("--system needs a bundle folder and a test split")
        try:
            system = system_eval.run_system_evaluation(
                args.model, test_dir, out, args.limit, landmarks=args.landmarks
            )
        except (PipelineSetupError, BundleError, BackendError) as exc:
            return _fail(str(exc))
        if not args.json:
            print("\n".join(system_eval.summary_lines(system)))
            print(f"system report: {out / 'system_report.json'}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from flashfas_edge.inference.backend import BackendError
    from flashfas_edge.inference.bundle import BundleError
    from flashfas_edge.train.export import ExportError, check_parity, export_bundle, write_manifest
    from flashfas_edge.train.model import AtrFas
    from flashfas_edge.train.splits import DataError, find_split, load_split_for
    from flashfas_edge.train.trainer import CheckpointError, load_checkpoint, model_from_checkpoint

    try:
        state = load_checkpoint(args.checkpoint)
        model, config = model_from_checkpoint(state)
        if not isinstance(model, AtrFas):
            raise ExportError(
                f"config {config.name!r} ({config.model.architecture}) has no bundle form"
            )
        provenance = {
            "checkpoint_epoch": state["epoch"] + 1,
            "seed": state.get("seed"),
            "data": state.get("data", {}),
            "data_seed": state.get("data", {}).get("dataset", {}).get("seed"),
            "history": state.get("history", []),
            "metrics": {},
        }
        if args.report:
            report = json.loads(args.report.read_text())
            provenance["metrics"] = {
                k: report.get(k) for k in ("threshold", "dev", "test", "data", "model")
            }
        result = export_bundle(
            model,
            config,
            args.out,
            name=args.name or args.out.name,
            threshold=float(state["dev_threshold"]),
            threshold_source=f"dev EER (PyTorch, epoch {state['epoch'] + 1})",
            provenance=provenance,
        )
        if args.data is not None:
            dev_dir = find_split(args.data, "dev") or find_split(args.data, "test")
            if dev_dir is None:
                raise DataError(f"{args.data}: no dev or test split for the parity check")
            x = load_split_for(dev_dir, config.model, args.cache).x[:64].float()
            source = f"{dev_dir.name} samples"
        else:
            x = torch.randn(16, *(config.model.n_frames, 3), *(config.model.input_size,) * 2)
            source = "random inputs"
        parity = check_parity(model, args.out, np.ascontiguousarray(x.numpy()))
        result.manifest["provenance"]["parity"] = {**parity.__dict__, "inputs": source}
        write_manifest(args.out, result.manifest)
    except (CheckpointError, ExportError, DataError, BundleError, BackendError, OSError) as exc:
        return _fail(str(exc))
    print(
        f"bundle {args.out}: {len(result.manifest['modules'])} modules, "
        f"{result.files_bytes / 1e6:.2f} MB; ORT vs PyTorch on {parity.samples} {source}: "
        f"max |ΔP(live)| {parity.max_abs_p_live:.2e}, max |Δdepth| {parity.max_abs_depth:.2e}"
    )
    if parity.max_abs_p_live > args.tolerance:
        return _fail(f"parity {parity.max_abs_p_live:.2e} exceeds tolerance {args.tolerance}")
    return 0


def _bundle_writing_errors() -> tuple[type[BaseException], ...]:
    """What writing a bundle's threshold on a dev split can raise that the user can act on."""
    from flashfas_edge.inference.backend import BackendError
    from flashfas_edge.inference.bundle import BundleError
    from flashfas_edge.train.cache import CacheError
    from flashfas_edge.train.export import ExportError
    from flashfas_edge.train.metrics import MetricsError
    from flashfas_edge.train.splits import DataError

    return (BundleError, BackendError, ExportError, DataError, CacheError, MetricsError, OSError)


def run_ensemble(args: argparse.Namespace) -> int:
    from flashfas_edge.train.ensemble import manifest_summary, write_ensemble

    try:
        manifest = write_ensemble(
            args.member, args.data, args.out, name=args.name, cache_root=args.cache,
            target_apcer=args.target_apcer,
        )
    except _bundle_writing_errors() as exc:
        return _fail(str(exc))
    print(manifest_summary(manifest))
    return 0


def run_threshold(args: argparse.Namespace) -> int:
    from flashfas_edge.train.ensemble import rethreshold_bundle

    try:
        manifest = rethreshold_bundle(args.model, args.data, args.target_apcer,
                                      cache_root=args.cache)
    except _bundle_writing_errors() as exc:
        return _fail(str(exc))
    threshold, dev = manifest["threshold"], manifest["provenance"]["dev"]
    band = (f", retry from {threshold['spoof_below']:.4f} ({100 * dev['live_in_retry_band']:.1f} %"
            " of dev live checks)" if "spoof_below" in threshold else "")
    print(f"{args.model}: threshold {threshold['default']:.4f}{band}; dev BPCER "
          f"{100 * dev['bpcer']:.2f} %, APCER "
          + ", ".join(f"{k} {100 * v:.2f} %" for k, v in dev["apcer"].items()))
    return 0


def run_ablate(args: argparse.Namespace) -> int:
    import torch

    from flashfas_edge.train.ablation import AblationData, markdown_table, run_one
    from flashfas_edge.train.cache import CacheError
    from flashfas_edge.train.config import ConfigError, load_config
    from flashfas_edge.train.splits import DataError, extra_train_dirs

    if args.threads:
        torch.set_num_threads(args.threads)
    rows: list[dict] = []
    memo: dict = {}
    try:
        extra = tuple(extra_train_dirs(args.extra_train))
        source = AblationData(args.data, extra, args.cache, args.max_train)
        seeds = [int(s) for s in args.seeds.split(",")]
        for name in args.configs.split(","):
            config = load_config(name)
            if args.epochs is not None:
                config = config.replace(optim={"epochs": args.epochs})
            for seed in seeds:
                rows.append(
                    run_one(
                        config, seed, source, args.out, memo, args.device, not args.no_progress
                    )
                )
                table = markdown_table(rows)
                (args.out / "rows.json").write_text(json.dumps(rows, indent=1))
                (args.out / "table.md").write_text(table + "\n")
    except (ConfigError, DataError, CacheError, ValueError) as exc:
        return _fail(str(exc))
    print(markdown_table(rows))
    return 0
