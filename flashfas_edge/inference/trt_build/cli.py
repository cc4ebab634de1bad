"""``flashfas-edge engines build|verify|info|record``: TensorRT engines for a bundle, on the device.

Heavy imports (onnx, onnxruntime, tensorrt) happen inside the handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

DEFAULT_BUNDLE = "engines/edge-default"

EPILOG = """examples:
  flashfas-edge engines info --bundle engines/edge-default
  flashfas-edge engines build --bundle engines/edge-default            # trtexec, else builder API
  flashfas-edge engines build --bundle engines/edge-default --dry-run --tensorrt-version 10.3.0
  flashfas-edge engines build --bundle engines/edge-default --dla-core 0   # Jetson DLA, opt-in
  flashfas-edge engines verify --bundle engines/edge-default --samples 64
"""


def register(subparsers) -> None:
    engines = subparsers.add_parser(
        "engines",
        help="build, verify and describe TensorRT engines for a model bundle",
        description="TensorRT engines for a model bundle (see engines/README.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = engines.add_subparsers(dest="engines_command", metavar="ACTION", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--bundle", default=DEFAULT_BUNDLE, help="bundle folder")
        parser.add_argument(
            "--engines-dir", default=None, help="where engines live (default: <bundle>/tensorrt)"
        )

    def build_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
        parser.add_argument("--batch-min", type=int, default=1)
        parser.add_argument("--batch-opt", type=int, default=1)
        parser.add_argument("--batch-max", type=int, default=8)
        parser.add_argument("--mem-pool-mb", type=int, default=1024, help="builder workspace")
        parser.add_argument(
            "--timing-cache", default=None, help="default: <bundle>/tensorrt.timing.cache"
        )
        parser.add_argument("--dla-core", type=int, default=None, help="Jetson DLA core (opt-in)")

    build = actions.add_parser("build", help="build one engine per module, record, verify")
    common(build)
    build_options(build)
    build.add_argument("--builder", choices=("auto", "trtexec", "tensorrt-python"), default="auto")
    build.add_argument("--dry-run", action="store_true", help="print the trtexec commands only")
    build.add_argument(
        "--tensorrt-version", default=None, help="for --dry-run without TensorRT: e.g. 10.3.0"
    )
    build.add_argument("--no-verify", action="store_true")
    build.set_defaults(func=_build)

    verify = actions.add_parser("verify", help="compare the engines with ONNX Runtime")
    common(verify)
    verify.add_argument("--samples", type=int, default=32)
    verify.add_argument("--seed", type=int, default=0)
    verify.add_argument(
        "--data", default=None, help="dataset folder: verify on its dev split instead of random"
    )
    verify.set_defaults(func=_verify)

    info = actions.add_parser("info", help="bundle facts, engines, and the backend `auto` picks")
    common(info)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_info)

    record = actions.add_parser(
        "record", help="write engine_manifest.json for engines built by build_engines.sh"
    )
    common(record)
    build_options(record)
    record.add_argument("--builder", default="trtexec")
    record.add_argument("--tensorrt-version", default=None, help="default: tensorrt module")
    record.add_argument("--compute-capability", default=None, help="default: probe the GPU")
    record.set_defaults(func=_record)


def _load(args):
    from flashfas_edge.inference.bundle import load_bundle
    from flashfas_edge.inference.engine_manifest import default_engines_dir

    bundle = load_bundle(args.bundle)
    engines_dir = (
        Path(args.engines_dir) if args.engines_dir else default_engines_dir(bundle.directory)
    )
    return bundle, engines_dir


def _options(args, bundle):
    from flashfas_edge.inference.trt_build.engine_plan import BuildOptions

    cache = Path(args.timing_cache or bundle.directory / "tensorrt.timing.cache")
    options = BuildOptions(
        precision=args.precision,
        batch_min=args.batch_min,
        batch_opt=args.batch_opt,
        batch_max=args.batch_max,
        mem_pool_mb=args.mem_pool_mb,
        timing_cache=cache,
        dla_core=args.dla_core,
    )
    options.validate()
    return options


def _guarded(handler):
    """Typed library errors become one clear line and exit code 1 (2 for bad arguments)."""

    def run(args) -> int:
        from flashfas_edge.inference.backend import BackendError
        from flashfas_edge.inference.bundle import BundleError

        try:
            return handler(args)
        except (BundleError, BackendError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # unreadable/unwritable engine folder, missing tool
            print(f"error: {exc}", file=sys.stderr)
            return 1

    return run


@_guarded
def _build(args) -> int:
    from flashfas_edge.inference.gpu_environment import probe_gpu
    from flashfas_edge.inference.trt_build.engines import build_commands, build_engines

    bundle, engines_dir = _load(args)
    options = _options(args, bundle)
    # Like build_engines.sh: build into <engines>.new, swap in only after verification passes.
    staging = engines_dir.with_name(engines_dir.name + ".new")
    if args.dry_run:
        version = args.tensorrt_version or _installed_tensorrt_version()
        if version is None:
            print("error: --dry-run needs --tensorrt-version (no tensorrt here)", file=sys.stderr)
            return 2
        major = int(version.split(".")[0])
        for command in build_commands(bundle, staging, options, major, python=sys.executable):
            print(" ".join(command))
        return 0
    environment = probe_gpu()
    shutil.rmtree(staging, ignore_errors=True)
    build_engines(bundle, staging, options, environment, builder=args.builder)
    if not args.no_verify and _verify_engines(bundle, staging, samples=32, seed=0) != 0:
        print(f"error: verification failed; {engines_dir} left untouched", file=sys.stderr)
        return 1
    previous = engines_dir.with_name(engines_dir.name + ".previous")
    shutil.rmtree(previous, ignore_errors=True)
    if engines_dir.exists():
        engines_dir.rename(previous)
    staging.rename(engines_dir)
    print(f"OK: engines in {engines_dir} (previous engines kept in {previous})")
    return 0


def _installed_tensorrt_version() -> str | None:
    from flashfas_edge.inference.gpu_environment import tensorrt_version

    return tensorrt_version()


@_guarded
def _verify(args) -> int:
    bundle, engines_dir = _load(args)
    return _verify_engines(
        bundle, engines_dir, samples=args.samples, seed=args.seed, data=args.data
    )


def _verify_engines(
    bundle, engines_dir: Path, *, samples: int, seed: int, data: str | None = None
) -> int:
    from flashfas_edge.inference.ort_backend import OrtModuleRunner
    from flashfas_edge.inference.tensorrt_backend import TensorRTBackend
    from flashfas_edge.inference.trt_build.engines import (
        FP16_TOLERANCE,
        FP32_TOLERANCE,
        compare_runners,
        verification_inputs,
    )

    if data:
        # Real sessions go through the training cache (torch): the training extra is needed here.
        from flashfas_edge.train.splits import DataError, dataset_inputs

        try:
            inputs = dataset_inputs(bundle, Path(data), "dev")
        except DataError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        source = f"dev split of {data}"
    else:
        inputs = verification_inputs(bundle, samples, seed)
        source = f"seeded random, seed {seed}"
    trt_backend = TensorRTBackend(bundle, engines_dir=engines_dir, precision=None)
    try:
        precision = trt_backend.engine_manifest.precision
        tolerance = FP16_TOLERANCE if precision == "fp16" else FP32_TOLERANCE
        report = compare_runners(
            bundle,
            OrtModuleRunner(bundle),
            trt_backend.runner,
            inputs,
            tolerance,
        )
    finally:
        trt_backend.close()
    print(
        f"TensorRT {precision} vs ONNX Runtime fp32, {len(inputs)} inputs ({source}), "
        f"tolerance {tolerance}"
    )
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


@_guarded
def _info(args) -> int:
    from flashfas_edge.inference.bundle import BundleError
    from flashfas_edge.inference.engine_manifest import read_engine_manifest
    from flashfas_edge.inference.factory import choose_backend

    bundle, engines_dir = _load(args)
    try:
        engines = json.loads(read_engine_manifest(engines_dir).to_json())
    except BundleError as exc:
        engines = {"absent_or_invalid": str(exc)}
    choice = choose_backend(bundle, "auto", engines_dir=engines_dir)
    info = {
        "bundle": {
            "name": bundle.name,
            "directory": str(bundle.directory),
            "manifest_sha256": bundle.manifest_sha256,
            "n0": bundle.n0,
            "n_diff": bundle.n_diff,
            "flash_levels": list(bundle.flash_levels),
            "challenge_family": bundle.challenge_family,
            "challenge_recorded": bundle.challenge_recorded,
            "input_size": bundle.input_size,
            "depth_size": bundle.depth_size,
            "normalisation": bundle.normalisation,
            "threshold_default": bundle.threshold_default,
            "routing": {
                "sparse": bundle.routing.sparse,
                "min_top_weight": bundle.routing.min_top_weight,
            },
        },
        "engines_dir": str(engines_dir),
        "engines": engines,
        "auto_backend": {"kind": choice.kind, "reason": choice.reason},
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        b = info["bundle"]
        print(f"bundle {b['name']} ({b['directory']}), manifest sha256 {b['manifest_sha256']}")
        print(
            f"  n0 {b['n0']} ({b['challenge_family']} {b['flash_levels']}), "
            f"{b['n_diff']} differential frames, input {b['input_size']}², "
            f"depth {b['depth_size']}², threshold {b['threshold_default']}, "
            f"sparse routing {'on' if bundle.routing.sparse else 'off'}"
        )
        print(f"engines in {engines_dir}: {json.dumps(engines, ensure_ascii=False)}")
        print(f"auto backend: {choice.kind} — {choice.reason}")
    return 0


@_guarded
def _record(args) -> int:
    from flashfas_edge.inference.gpu_environment import GpuEnvironment, probe_gpu
    from flashfas_edge.inference.trt_build.engines import record_engines

    bundle, engines_dir = _load(args)
    options = _options(args, bundle)
    if args.compute_capability:
        version = args.tensorrt_version or _installed_tensorrt_version()
        environment = GpuEnvironment(version, args.compute_capability, "as given")
    else:
        probed = probe_gpu(require_tensorrt=args.tensorrt_version is None)
        version = args.tensorrt_version or probed.tensorrt_version
        environment = GpuEnvironment(version, probed.compute_capability, probed.device_name)
    manifest = record_engines(bundle, engines_dir, options, environment, args.builder)
    print(f"recorded {len(manifest.modules)} engines in {engines_dir / 'engine_manifest.json'}")
    return 0
