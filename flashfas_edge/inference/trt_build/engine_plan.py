"""What to build for each bundle module: its ONNX file, the batch shapes, the trtexec line.

Shared by ``flashfas-edge engines build`` and ``engines/build_engines.sh`` (which asks
``python -m flashfas_edge.inference.trt_build.engine_plan`` for the shapes), so both build the
same engines.
TensorRT ≥ 11 is strongly typed and has no ``--fp16``: FP16 there comes from an ONNX file converted
beforehand (ModelOpt AutoCast, inputs/outputs kept FP32). TensorRT 10 (JetPack 6.x ships 10.3)
still takes ``--fp16``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from flashfas_edge.inference.bundle import Bundle, BundleError, load_bundle

MIN_TENSORRT_MAJOR = 10
Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModulePlan:
    module: str
    onnx_path: Path
    engine_file: str
    shapes: dict[str, tuple[Shape, Shape, Shape]]  # input name → (min, opt, max)

    def trtexec_shapes(self, which: int) -> str:
        return ",".join(
            f"{name}:{'x'.join(str(d) for d in shapes[which])}"
            for name, shapes in self.shapes.items()
        )


@dataclass(frozen=True)
class BuildOptions:
    precision: str = "fp16"
    batch_min: int = 1
    batch_opt: int = 1
    batch_max: int = 8
    mem_pool_mb: int = 1024
    timing_cache: Path | None = None
    dla_core: int | None = None  # Jetson only: opt-in, with GPU fallback for unsupported layers

    def validate(self) -> None:
        if self.precision not in ("fp16", "fp32"):
            raise ValueError(f"precision must be fp16 or fp32, not {self.precision!r}")
        if not 1 <= self.batch_min <= self.batch_opt <= self.batch_max:
            raise ValueError("batch sizes must satisfy 1 ≤ min ≤ opt ≤ max")
        if self.mem_pool_mb < 16:
            raise ValueError("mem_pool_mb must be at least 16")
        if self.dla_core is not None and self.dla_core < 0:
            raise ValueError("dla_core must be ≥ 0")


def plan_modules(bundle: Bundle, options: BuildOptions) -> list[ModulePlan]:
    """One plan per module, input shapes read from the ONNX file (all but the batch are static)."""
    import onnx

    plans = []
    for name, spec in bundle.modules.items():
        model = onnx.load(str(spec.path), load_external_data=False)
        shapes: dict[str, tuple[Shape, Shape, Shape]] = {}
        for value in model.graph.input:
            if value.name not in spec.inputs:
                continue
            dims = [
                d.dim_value if d.HasField("dim_value") else None
                for d in value.type.tensor_type.shape.dim
            ]
            if any(d is None for d in dims[1:]):
                raise BundleError(
                    f"{spec.path}: input {value.name!r} has dynamic dims besides the batch: {dims}"
                )
            rest = tuple(int(d) for d in dims[1:])  # type: ignore[arg-type]
            shapes[value.name] = (
                (options.batch_min, *rest),
                (options.batch_opt, *rest),
                (options.batch_max, *rest),
            )
        plans.append(ModulePlan(name, spec.path, f"{name}.engine", shapes))
    return plans


def fp16_onnx_path(engines_dir: Path, module: str) -> Path:
    return engines_dir / "fp16_onnx" / f"{module}.fp16.onnx"


def autocast_command(plan: ModulePlan, engines_dir: Path, python: str = "python3") -> list[str]:
    """TensorRT ≥ 11: convert the FP32 ONNX to FP16 (I/O kept FP32) before building."""
    return [
        python,
        "-m",
        "modelopt.onnx.autocast",
        f"--onnx_path={plan.onnx_path}",
        f"--output_path={fp16_onnx_path(engines_dir, plan.module)}",
        "--low_precision_type=fp16",
        "--keep_io_types",
    ]


def trtexec_command(
    plan: ModulePlan,
    engines_dir: Path,
    options: BuildOptions,
    tensorrt_major: int,
    trtexec: str = "trtexec",
) -> list[str]:
    if tensorrt_major < MIN_TENSORRT_MAJOR:
        raise ValueError(f"TensorRT {tensorrt_major}.x is too old; engines need TensorRT ≥ 10")
    strongly_typed_fp16 = tensorrt_major >= 11 and options.precision == "fp16"
    onnx_path = fp16_onnx_path(engines_dir, plan.module) if strongly_typed_fp16 else plan.onnx_path
    command = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--saveEngine={engines_dir / plan.engine_file}",
        f"--minShapes={plan.trtexec_shapes(0)}",
        f"--optShapes={plan.trtexec_shapes(1)}",
        f"--maxShapes={plan.trtexec_shapes(2)}",
        f"--memPoolSize=workspace:{options.mem_pool_mb}M",
    ]
    if options.timing_cache is not None:
        command.append(f"--timingCacheFile={options.timing_cache}")
    if options.precision == "fp16" and tensorrt_major == 10:
        command.append("--fp16")  # removed in TensorRT 11 (strongly typed by default)
    if options.dla_core is not None:
        command += [f"--useDLACore={options.dla_core}", "--allowGPUFallback"]
    command.append("--skipInference")  # build only; verification runs against ONNX Runtime
    return command


def main(argv: list[str] | None = None) -> int:
    """``python -m flashfas_edge.inference.trt_build.engine_plan BUNDLE MIN OPT MAX`` (for
    build_engines.sh): one tab-separated line per module: module, onnx path, minShapes,
    optShapes, maxShapes."""
    parser = argparse.ArgumentParser(prog="python -m flashfas_edge.inference.trt_build.engine_plan")
    parser.add_argument("bundle")
    parser.add_argument("batch_min", type=int)
    parser.add_argument("batch_opt", type=int)
    parser.add_argument("batch_max", type=int)
    args = parser.parse_args(argv)
    options = BuildOptions(
        batch_min=args.batch_min, batch_opt=args.batch_opt, batch_max=args.batch_max
    )
    try:
        options.validate()
        plans = plan_modules(load_bundle(args.bundle), options)
    except (BundleError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for plan in plans:
        print(
            "\t".join(
                [
                    plan.module,
                    str(plan.onnx_path),
                    plan.trtexec_shapes(0),
                    plan.trtexec_shapes(1),
                    plan.trtexec_shapes(2),
                ]
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
