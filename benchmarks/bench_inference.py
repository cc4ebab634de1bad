"""Per-check inference latency of a model bundle through every available backend.

Prints median / p95 per check (one check = N = 6 differential frames) for ONNX Runtime (and
TensorRT where a GPU with matching engines exists), with dense and sparse expert routing, plus
PyTorch eager as the reference point in the same run (where torch and the training code exist).

    python benchmarks/bench_inference.py                          # engines/edge-default
    python benchmarks/bench_inference.py --bundle DIR --checks 300 --threads 1 2
    python benchmarks/bench_inference.py --modules                # per-module breakdown (ORT)
    python benchmarks/bench_inference.py --data data/ds     # sparse routing on dev/test

The inputs are seeded random draws shaped like _core.preprocess output: latency does not depend on
the pixel values, but sparse routing does (it depends on the gate), so sparse figures on random
inputs are only indicative — the evaluation CLI measures sparse routing on real splits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1e3
    return {
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(np.mean(ms)),
    }


def _time(fn, inputs: np.ndarray, warmup: int) -> list[float]:
    for i in range(warmup):
        fn(inputs[i % len(inputs)])
    out = []
    for x in inputs:
        start = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - start)
    return out


class _TimedRunner:
    """Wraps a ModuleRunner and accumulates wall time per module."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds: dict[str, list[float]] = {}

    def run_module(self, module, inputs):
        start = time.perf_counter()
        out = self.inner.run_module(module, inputs)
        self.seconds.setdefault(module, []).append(time.perf_counter() - start)
        return out


def _torch_reference(bundle, checkpoint: str | None, threads: int):
    """A PyTorch eager model for the bundle: the checkpoint if given, else the manifest's config
    with random weights (latency only)."""
    try:
        import torch

        from flashfas_edge.train.config import from_dict
        from flashfas_edge.train.model import build_model
        from flashfas_edge.train.trainer import load_checkpoint, model_from_checkpoint
    except ImportError as exc:
        return None, f"skipped: {exc}"
    torch.set_num_threads(threads)
    if checkpoint:
        model, _ = model_from_checkpoint(load_checkpoint(Path(checkpoint)))
        label = f"checkpoint {checkpoint}"
    else:
        config = bundle.manifest.get("provenance", {}).get("config")
        if not isinstance(config, dict) or "model" not in config:
            return None, "skipped: manifest has no training config and no --checkpoint was given"
        model = build_model(from_dict(config).model).eval()
        label = "manifest config, random weights (latency only)"

    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x[None]))

    return run, label


def evaluate_routing(bundle, data_dir: Path, thresholds: list[float], threads: int) -> list[dict]:
    """Sparse expert routing on the evaluation protocol (DESIGN.md §3): the live/spoof threshold
    is fixed at the dev EER for each routing, error rates are reported on test, latency is the
    per-check median on test (one check at a time, as the daemon runs)."""
    from flashfas_edge.inference.bundle import RoutingConfig
    from flashfas_edge.inference.ort_backend import OrtBackend
    from flashfas_edge.train.cache import load_split
    from flashfas_edge.train.config import ModelConfig
    from flashfas_edge.train.metrics import eer_threshold, evaluate_scores
    from flashfas_edge.train.splits import find_split, load_split_for

    model_config = ModelConfig(n0=bundle.n0, input_size=bundle.input_size)
    splits = {}
    for name in ("dev", "test"):
        # Either session folders (DIR/dev, DIR/test) or pre-aligned caches (DIR/dev-s64, …).
        cache_dir = data_dir / f"{name}-s{bundle.input_size}"
        if (cache_dir / "info.json").is_file():
            split = load_split(cache_dir, model_config.input_mode, bundle.depth_size)
        else:
            split_dir = find_split(data_dir, name)
            if split_dir is None:
                raise SystemExit(f"{data_dir}: no {name} split")
            split = load_split_for(split_dir, model_config)
        splits[name] = (np.ascontiguousarray(split.x.float().numpy()), split.labels)
    rows = []
    for min_top in [None, *thresholds]:
        routing = RoutingConfig(sparse=min_top is not None, min_top_weight=min_top or 0.95)
        backend = OrtBackend(bundle, routing=routing, intra_op_threads=threads)
        backend.warm_up()
        scores, experts, seconds = {}, [], []
        for name, (x, _) in splits.items():
            out = []
            for sample in x:
                start = time.perf_counter()
                result = backend.run(sample)
                if name == "test":
                    seconds.append(time.perf_counter() - start)
                out.append(result)
            scores[name] = np.array([o.p_live for o in out])
            if name == "test":
                experts = [len(o.experts_run) for o in out]
        dev_eer, threshold = eer_threshold(scores["dev"], splits["dev"][1])
        test = evaluate_scores(scores["test"], splits["test"][1], threshold)
        rows.append(
            {
                "routing": "dense" if min_top is None else f"sparse ≥{min_top}",
                "dev_eer": dev_eer,
                "threshold": threshold,
                "test_eer": test.eer,
                "test_hter": test.hter,
                "test_bpcer": test.bpcer,
                "test_apcer": test.apcer,
                "experts_per_check": float(np.mean(experts)),
                **_percentiles(seconds),
                "test_scores": scores["test"],
            }
        )
    dense_scores = rows[0]["test_scores"]
    for row in rows:
        row["max_abs_score_change"] = float(np.max(np.abs(row.pop("test_scores") - dense_scores)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", default=str(REPO / "engines" / "edge-default"))
    parser.add_argument("--checks", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--spinning", choices=("on", "off", "both"), default="off")
    parser.add_argument("--min-top-weight", type=float, default=None)
    parser.add_argument("--checkpoint", default=None, help="PyTorch checkpoint for the reference")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--modules", action="store_true", help="per-module ORT breakdown")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--data", default=None, help="dataset with dev/test: sparse routing eval")
    parser.add_argument("--sparse-thresholds", type=float, nargs="+", default=[0.9, 0.95, 0.99])
    args = parser.parse_args(argv)

    from flashfas_edge.inference.bundle import RoutingConfig, load_bundle
    from flashfas_edge.inference.factory import choose_backend
    from flashfas_edge.inference.ort_backend import OrtBackend

    bundle_dir = Path(args.bundle)
    if not (bundle_dir / "manifest.json").is_file():
        print(f"no bundle at {bundle_dir}; pass --bundle DIR", file=sys.stderr)
        return 2
    bundle = load_bundle(bundle_dir)
    if args.data:
        rows = evaluate_routing(bundle, Path(args.data), args.sparse_thresholds, args.threads[0])
        for row in rows:
            apcer = " ".join(f"{k} {v:.3f}" for k, v in row["test_apcer"].items())
            print(
                f"{row['routing']:12s} experts/check {row['experts_per_check']:.2f}  "
                f"median {row['median_ms']:.2f} ms mean {row['mean_ms']:.2f} ms "
                f"p95 {row['p95_ms']:.2f} ms  "
                f"dev EER "
                f"{row['dev_eer']:.4f}  test EER {row['test_eer']:.4f} HTER "
                f"{row['test_hter']:.4f} BPCER {row['test_bpcer']:.4f} APCER {apcer}  "
                f"max|Δscore| {row['max_abs_score_change']:.4f}"
            )
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        return 0
    min_top = args.min_top_weight or bundle.routing.min_top_weight
    rng = np.random.default_rng(0)
    inputs = rng.normal(0, 1, (args.checks, *bundle.input_shape)).astype(np.float32)
    print(
        f"bundle {bundle.name} ({bundle.directory}), input {list(bundle.input_shape)}, "
        f"{args.checks} checks, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}"
    )
    results = []

    def report(name: str, samples: list[float], extra: str = "") -> None:
        stats = _percentiles(samples)
        results.append({"backend": name, **stats, "note": extra})
        print(
            f"  {name:42s} median {stats['median_ms']:7.2f} ms   p95 {stats['p95_ms']:7.2f} ms"
            f"  {extra}"
        )

    spinning = {"on": [True], "off": [False], "both": [True, False]}[args.spinning]
    for threads in args.threads:
        for spin in spinning:
            for sparse in (False, True):
                routing = RoutingConfig(sparse=sparse, min_top_weight=min_top)
                backend = OrtBackend(
                    bundle, routing=routing, intra_op_threads=threads, allow_spinning=spin
                )
                backend.warm_up()
                experts = []

                def run(x, backend=backend, experts=experts):
                    experts.append(len(backend.run(x).experts_run))

                samples = _time(run, inputs, args.warmup)
                label = (
                    f"onnxruntime cpu {threads}t{' spin' if spin else ''} "
                    f"{'sparse' if sparse else 'dense'}"
                )
                report(label, samples, f"experts/check {np.mean(experts):.2f}")
    if args.modules:
        backend = OrtBackend(bundle, intra_op_threads=args.threads[0], allow_spinning=False)
        timed = _TimedRunner(backend.runner)
        backend.forward.runner = timed
        _time(backend.run, inputs, args.warmup)
        for module, seconds in timed.seconds.items():
            print(f"    {module:16s} median {np.median(seconds) * 1e3:6.2f} ms")

    choice = choose_backend(bundle, "auto")
    if choice.kind == "tensorrt":
        from flashfas_edge.inference.tensorrt_backend import TensorRTBackend

        for sparse in (False, True):
            trt_backend = TensorRTBackend(
                bundle,
                routing=RoutingConfig(sparse=sparse, min_top_weight=min_top),
                precision=None,
            )
            trt_backend.warm_up()
            samples = _time(trt_backend.run, inputs, args.warmup)
            info = trt_backend.info()
            report(
                f"tensorrt {info.precision} {'sparse' if sparse else 'dense'}", samples, info.device
            )
            trt_backend.close()
    else:
        print(f"  tensorrt: {choice.reason}")

    if not args.no_torch:
        run_torch, label = _torch_reference(bundle, args.checkpoint, args.threads[0])
        if run_torch is None:
            print(f"  pytorch eager: {label}")
        else:
            report(
                f"pytorch eager cpu {args.threads[0]}t",
                _time(run_torch, inputs, args.warmup),
                label,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
