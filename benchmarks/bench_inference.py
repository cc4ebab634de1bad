"""Per-check inference latency of a model bundle through every available backend.

Prints median / p95 per check (one check = N = 6 differential frames) for ONNX Runtime (and
TensorRT where a GPU with matching engines exists), with dense and sparse expert routing, and
expert calls per check (every member's experts counted: an ensemble of 4 runs up to 12). The
baseline is the same work in PyTorch eager (every member of the bundle, same graph sizes, the
members side by side as the runtime runs them), timed interleaved with the ORT runs (each check
runs every variant, in rotating order); the ratio PyTorch / ORT is printed with a verdict (target:
the runtime beats the PyTorch reference). The ATR-FAS reference network (`paper` preset) anchors the
size: parameters and multiply-accumulates per check against the bundle's.

    python benchmarks/bench_inference.py                          # engines/edge-default
    python benchmarks/bench_inference.py --bundle DIR --checks 300 --threads 1 2
    python benchmarks/bench_inference.py --modules                # per-module breakdown (ORT)
    python benchmarks/bench_inference.py --checkpoint runs/ft-s0/best.pt runs/ft-s1/best.pt ...
    python benchmarks/bench_inference.py --data data/ds           # sparse routing on dev/test

The inputs are seeded random draws shaped like _core.preprocess output: latency does not depend on
the pixel values, but sparse routing does (it depends on the gate), so sparse figures on random
inputs are only indicative — the evaluation CLI measures sparse routing on real splits. Without
--checkpoint the PyTorch members get random weights (latency only: same graphs, same cost).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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


def _time_interleaved(fns: list, inputs: np.ndarray, warmup: int) -> list[list[float]]:
    """Wall times per check of every fn; each check runs all of them, the first one rotating, so
    that load changes on a shared machine hit every variant alike."""
    for i in range(warmup):
        for fn in fns:
            fn(inputs[i % len(inputs)])
    out: list[list[float]] = [[] for _ in fns]
    for i, x in enumerate(inputs):
        for k in range(len(fns)):
            j = (i + k) % len(fns)
            start = time.perf_counter()
            fns[j](x)
            out[j].append(time.perf_counter() - start)
    return out


class _CountingRunner:
    """Wraps a ModuleRunner and counts expert calls (every member's, from any thread)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.expert_calls = 0
        self._lock = threading.Lock()

    def run_module(self, module, inputs):
        if module.rsplit(".", 1)[-1].startswith("expert_"):
            with self._lock:
                self.expert_calls += 1
        return self.inner.run_module(module, inputs)


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


def _member_configs(bundle) -> list[dict] | None:
    """The training config of every member, from the manifest's provenance."""
    provenance = bundle.manifest.get("provenance", {})
    if bundle.manifest.get("ensemble"):
        configs = [m.get("provenance", {}).get("config") for m in provenance.get("members", [])]
    else:
        configs = [provenance.get("config")]
    if len(configs) != len(bundle.members) or not all(
        isinstance(c, dict) and "model" in c for c in configs
    ):
        return None
    return configs


def _torch_reference(bundle, checkpoints: list[str] | None, threads: int):
    """The bundle's work in PyTorch eager: every member (from its checkpoint, else its manifest
    config with random weights), members side by side like the runtime, logits averaged."""
    try:
        import torch

        from flashfas_edge.train.config import from_dict
        from flashfas_edge.train.model import build_model
        from flashfas_edge.train.trainer import load_checkpoint, model_from_checkpoint
    except ImportError as exc:
        return None, f"skipped: {exc}"
    torch.set_num_threads(threads)
    members = len(bundle.members)
    if checkpoints:
        if len(checkpoints) != members:
            return None, (f"skipped: {len(checkpoints)} checkpoint(s) for a bundle of {members} "
                          "network(s); pass one per member, in member order")
        models = [model_from_checkpoint(load_checkpoint(Path(c)))[0].eval() for c in checkpoints]
        label = f"{members} checkpoint(s)"
    else:
        configs = _member_configs(bundle)
        if configs is None:
            return None, "skipped: manifest has no training config per member and no --checkpoint"
        models = [build_model(from_dict(c).model).eval() for c in configs]
        label = f"{members} member(s) from the manifest configs, random weights (latency only)"
    workers = min(members, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def one(model, x):
        with torch.inference_mode():
            return model(x)

    def run(x):
        xt = torch.from_numpy(x[None])
        outs = list(pool.map(lambda m: one(m, xt), models)) if pool else [one(models[0], xt)]
        return outs

    return run, label


def _size_anchor(bundle) -> str | None:
    """Parameters and MACs per check: the bundle's members against the ATR-FAS reference network
    (the `paper` preset)."""
    try:
        from flashfas_edge.train.complexity import measure
        from flashfas_edge.train.config import from_dict
        from flashfas_edge.train.presets import get_preset
    except ImportError:
        return None
    configs = _member_configs(bundle)
    if configs is None:
        return None
    ours = [measure(from_dict(c).model) for c in configs]
    paper = measure(get_preset("paper").model)
    params, macs = sum(c.params for c in ours), sum(c.macs for c in ours)
    return (f"size: this bundle {len(ours)} x {ours[0].params:,} parameters, {macs / 1e6:.1f} M "
            f"MACs per check; ATR-FAS reference network (`paper` preset) {paper.params:,} "
            f"parameters, {paper.macs / 1e6:.1f} M MACs: the bundle is "
            f"{params / paper.params:.2f}x its parameters and {macs / paper.macs:.3f}x its compute")


def evaluate_routing(bundle, data_dir: Path, thresholds: list[float], threads: int) -> list[dict]:
    """Sparse expert routing on the evaluation protocol (docs/ARCHITECTURE.md §8): the live/spoof
    threshold
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
    parser.add_argument("--checkpoint", nargs="+", default=None,
                        help="PyTorch checkpoints for the reference, one per bundle member")
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

    def report(name: str, samples: list[float], extra: str = "") -> dict:
        stats = _percentiles(samples)
        row = {"backend": name, **stats, "note": extra}
        results.append(row)
        print(
            f"  {name:42s} median {stats['median_ms']:7.2f} ms   p95 {stats['p95_ms']:7.2f} ms"
            f"  {extra}"
        )
        return row

    # Every ORT variant and the PyTorch reference, timed interleaved over the same checks.
    spinning = {"on": [True], "off": [False], "both": [True, False]}[args.spinning]
    labels, fns, calls_per_variant = [], [], []
    for threads in args.threads:
        for spin in spinning:
            for sparse in (False, True):
                routing = RoutingConfig(sparse=sparse, min_top_weight=min_top)
                backend = OrtBackend(
                    bundle, routing=routing, intra_op_threads=threads, allow_spinning=spin
                )
                backend.warm_up()
                counter = _CountingRunner(backend.forward.runner)
                backend.forward.runner = counter
                calls: list[int] = []

                def run(x, backend=backend, counter=counter, calls=calls):
                    before = counter.expert_calls
                    backend.run(x)
                    calls.append(counter.expert_calls - before)

                labels.append(
                    f"onnxruntime cpu {threads}t{' spin' if spin else ''} "
                    f"{'sparse' if sparse else 'dense'}"
                )
                fns.append(run)
                calls_per_variant.append(calls)
    torch_label = None
    if not args.no_torch:
        run_torch, torch_label = _torch_reference(bundle, args.checkpoint, args.threads[0])
        if run_torch is None:
            print(f"  pytorch eager: {torch_label}")
            torch_label = None
        else:
            fns.append(run_torch)
    samples = _time_interleaved(fns, inputs, args.warmup)
    ort_rows = []
    for label, times, calls in zip(labels, samples, calls_per_variant, strict=False):
        counted = calls[args.warmup:]
        row = report(label, times, f"expert calls/check {np.mean(counted):.2f} "
                                   f"(of {3 * len(bundle.members)})")
        row["expert_calls_per_check"] = float(np.mean(counted))
        ort_rows.append(row)
    if torch_label is not None:
        base = report(f"baseline: pytorch eager cpu {args.threads[0]}t", samples[-1], torch_label)
        # the same work: every expert of every member (dense), the first thread count
        same = next(r for r in ort_rows if r["backend"].endswith("dense"))
        ratios = np.asarray(samples[-1]) / np.asarray(samples[labels.index(same["backend"])])
        q1, q2, q3 = np.percentile(ratios, [25, 50, 75])
        holds = q1 > 1.0
        print(f"  ratio pytorch / {same['backend']} per check: median {q2:.2f}x "
              f"(p25 {q1:.2f}x, p75 {q3:.2f}x); target the runtime beats the PyTorch reference "
              f"(p25 > 1): {'holds' if holds else 'MISSED'}")
        base["ratio_to_ort_dense"] = {"p25": float(q1), "median": float(q2), "p75": float(q3)}
    anchor = None if args.no_torch else _size_anchor(bundle)
    if anchor:
        print(f"  {anchor}")
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

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
