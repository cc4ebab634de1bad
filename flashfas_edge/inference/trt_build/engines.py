"""Build, record, verify and describe TensorRT engines for a bundle (``flashfas-edge engines``).

build: trtexec per module when it is on PATH (same commands as engines/build_engines.sh), else the
TensorRT builder API; then the engine manifest (engine_manifest.py); then verify. verify: every
module and the whole check against ONNX Runtime FP32 on the same inputs, FP16 tolerances below.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from flashfas_edge.inference.backend import BackendError
from flashfas_edge.inference.bundle import Bundle, RoutingConfig, sha256_of_file
from flashfas_edge.inference.engine_manifest import EngineManifest, EngineModule
from flashfas_edge.inference.forward import BundleForward, ModuleRunner
from flashfas_edge.inference.gpu_environment import GpuEnvironment
from flashfas_edge.inference.trt_build.engine_plan import (
    BuildOptions,
    ModulePlan,
    autocast_command,
    fp16_onnx_path,
    plan_modules,
    trtexec_command,
)

# FP16 parity with ONNX Runtime FP32 (per check). Depth and attention live in [0, 1] and FP16 has
# ~3 significant digits, so a few 1e-3 per op accumulating through ~10 convs stays under 2e-2.
FP16_TOLERANCE = {"p_live": 1e-2, "depth": 2e-2, "type_probs": 1e-2, "module_rel": 3e-2}
FP32_TOLERANCE = {"p_live": 1e-4, "depth": 1e-4, "type_probs": 1e-4, "module_rel": 1e-4}


class EngineBuildError(BackendError):
    """trtexec or the TensorRT builder failed for a module; the message names it."""


def build_commands(
    bundle: Bundle,
    engines_dir: Path,
    options: BuildOptions,
    tensorrt_major: int,
    trtexec: str = "trtexec",
    python: str = "python3",
) -> list[list[str]]:
    """Every command ``build`` would run with trtexec (used by --dry-run and by the build)."""
    options.validate()
    commands: list[list[str]] = []
    for plan in plan_modules(bundle, options):
        if tensorrt_major >= 11 and options.precision == "fp16":
            commands.append(autocast_command(plan, engines_dir, python))
        commands.append(trtexec_command(plan, engines_dir, options, tensorrt_major, trtexec))
    return commands


def build_engines(
    bundle: Bundle,
    engines_dir: Path,
    options: BuildOptions,
    environment: GpuEnvironment,
    *,
    builder: str = "auto",
    log=print,
) -> EngineManifest:
    """Build one engine per module and write the engine manifest; returns it."""
    options.validate()
    engines_dir.mkdir(parents=True, exist_ok=True)
    trtexec = shutil.which("trtexec")
    if builder == "auto":
        builder = "trtexec" if trtexec else "tensorrt-python"
    major = environment.tensorrt_major
    if major is None:
        raise EngineBuildError("TensorRT version unknown: install the tensorrt Python module")
    plans = plan_modules(bundle, options)
    if builder == "trtexec":
        if trtexec is None:
            raise EngineBuildError("trtexec is not on PATH")
        for plan in plans:
            if major >= 11 and options.precision == "fp16":
                fp16_onnx_path(engines_dir, plan.module).parent.mkdir(exist_ok=True)
                _run(autocast_command(plan, engines_dir, "python3"), plan.module, log)
            _run(trtexec_command(plan, engines_dir, options, major, trtexec), plan.module, log)
    elif builder == "tensorrt-python":
        for plan in plans:
            _build_with_tensorrt_api(plan, engines_dir, options, major, log)
    else:
        raise EngineBuildError(f"unknown builder {builder!r}")
    manifest = record_engines(bundle, engines_dir, options, environment, builder)
    log(f"wrote {engines_dir / 'engine_manifest.json'}")
    return manifest


def record_engines(
    bundle: Bundle,
    engines_dir: Path,
    options: BuildOptions,
    environment: GpuEnvironment,
    builder: str,
) -> EngineManifest:
    """Write engine_manifest.json for engines already built in ``engines_dir``."""
    if environment.tensorrt_version is None:
        raise EngineBuildError("cannot record engines without the TensorRT version")
    modules = {}
    for name, spec in bundle.modules.items():
        engine_path = engines_dir / f"{name}.engine"
        if not engine_path.is_file():
            raise EngineBuildError(f"{engine_path}: engine was not built")
        converted = fp16_onnx_path(engines_dir, name)
        modules[name] = EngineModule(
            file=engine_path.name,
            sha256=sha256_of_file(engine_path),
            onnx_sha256=spec.sha256,
            built_from=str(converted.relative_to(engines_dir))
            if converted.is_file()
            else spec.path.name,
        )
    manifest = EngineManifest(
        bundle_name=bundle.name,
        bundle_manifest_sha256=bundle.manifest_sha256,
        tensorrt_version=environment.tensorrt_version,
        compute_capability=environment.compute_capability,
        device_name=environment.device_name,
        precision=options.precision,
        builder=builder,
        batch_min=options.batch_min,
        batch_opt=options.batch_opt,
        batch_max=options.batch_max,
        modules=modules,
        dla_core=options.dla_core,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    manifest.write(engines_dir)
    return manifest


def _run(command: list[str], module: str, log) -> None:
    log("+ " + " ".join(command))
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-2000:]
        raise EngineBuildError(f"{module}: {command[0]} exited {result.returncode}\n{tail}")


def _build_with_tensorrt_api(
    plan: ModulePlan, engines_dir: Path, options: BuildOptions, major: int, log
) -> None:
    """The trtexec build through the TensorRT 10/11 Python builder API."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT ≥ 10
    parser = trt.OnnxParser(network, logger)
    onnx_path = plan.onnx_path
    if major >= 11 and options.precision == "fp16":
        onnx_path = _autocast_in_process(plan, engines_dir)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"{onnx_path}: TensorRT ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.mem_pool_mb << 20)
    if options.precision == "fp16" and major == 10:
        config.set_flag(trt.BuilderFlag.FP16)
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    profile = builder.create_optimization_profile()
    for name, (min_shape, opt_shape, max_shape) in plan.shapes.items():
        profile.set_shape(name, min_shape, opt_shape, max_shape)
    config.add_optimization_profile(profile)
    cache_path = options.timing_cache
    if cache_path is not None:
        cache_bytes = cache_path.read_bytes() if cache_path.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(cache_bytes), ignore_mismatch=False)
    log(f"building {plan.module} with the TensorRT {trt.__version__} builder API")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"{plan.onnx_path}: TensorRT builder failed for {plan.module}")
    (engines_dir / plan.engine_file).write_bytes(bytes(serialized))
    if cache_path is not None:
        cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))


def _autocast_in_process(plan: ModulePlan, engines_dir: Path) -> Path:
    try:
        import onnx
        from modelopt.onnx.autocast import convert_to_mixed_precision
    except ImportError as exc:
        raise EngineBuildError(
            "TensorRT ≥ 11 builds FP16 only from an FP16 ONNX: pip install 'nvidia-modelopt[onnx]'"
        ) from exc
    out = fp16_onnx_path(engines_dir, plan.module)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = convert_to_mixed_precision(
        onnx_path=str(plan.onnx_path), low_precision_type="fp16", keep_io_types=True
    )
    onnx.save(model, str(out))
    return out


# --- verification ---------------------------------------------------------------------------


@dataclass
class ParityReport:
    samples: int
    module_max_abs: dict[str, float] = field(default_factory=dict)
    module_max_rel: dict[str, float] = field(default_factory=dict)
    p_live_max_abs: float = 0.0
    depth_max_abs: float = 0.0
    type_probs_max_abs: float = 0.0
    decision_flips: int = 0  # samples clear of the threshold whose live/spoof differs
    decision_flips_any: int = 0  # every sample whose live/spoof differs (incl. borderline ones)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        out = [
            f"{name:15s} max|Δ| {self.module_max_abs[name]:.3e}  "
            f"rel {self.module_max_rel[name]:.3e}"
            for name in self.module_max_abs
        ]
        out.append(
            f"p_live max|Δ| {self.p_live_max_abs:.3e}, depth max|Δ| "
            f"{self.depth_max_abs:.3e}, type probs max|Δ| {self.type_probs_max_abs:.3e}, "
            f"decision flips {self.decision_flips}/{self.samples} "
            f"({self.decision_flips_any} counting borderline scores)"
        )
        out += [f"FAIL: {f}" for f in self.failures]
        out.append("PASS" if self.ok else "FAIL")
        return out


def verification_inputs(bundle: Bundle, samples: int, seed: int = 0) -> np.ndarray:
    """Seeded inputs in the range diffnorm produces (roughly zero-mean, unit scale) plus zeros."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (samples, *bundle.input_shape)).astype(np.float32)
    x[0] = 0.0
    return x


def compare_runners(
    bundle: Bundle,
    reference: ModuleRunner,
    candidate: ModuleRunner,
    inputs: np.ndarray,
    tolerance: dict[str, float],
) -> ParityReport:
    """Module by module on the reference's intermediate values, then whole checks end to end."""
    report = ParityReport(samples=int(inputs.shape[0]))
    dense = RoutingConfig(sparse=False)
    ref_forward = BundleForward(bundle, reference, dense)
    cand_forward = BundleForward(bundle, candidate, dense)
    for x in inputs:
        batch = x[None]
        feat = reference.run_module("stem", {"x": batch})["feat"]
        values = {"x": batch, "feat": feat}
        # The head reads a mixed depth map; one reference expert's first frame is a valid stand-in.
        head_in = reference.run_module("expert_print", {"feat": feat})["depth"][:, :1]
        feeds = {
            name: {"depth": np.ascontiguousarray(head_in)}
            if name == "head"
            else {spec.inputs[0]: values[spec.inputs[0]]}
            for name, spec in bundle.modules.items()
        }
        for name, feed in feeds.items():
            ref_out = reference.run_module(name, feed)
            cand_out = candidate.run_module(name, feed)
            for key, ref_value in ref_out.items():
                diff = float(np.max(np.abs(cand_out[key].astype(np.float64) - ref_value)))
                scale = max(1.0, float(np.max(np.abs(ref_value))))
                report.module_max_abs[name] = max(report.module_max_abs.get(name, 0.0), diff)
                report.module_max_rel[name] = max(
                    report.module_max_rel.get(name, 0.0), diff / scale
                )
    # One check at a time, as the daemon runs (and within any engine's batch profile).
    ref_outs = [ref_forward.run(x) for x in inputs]
    cand_outs = [cand_forward.run(x) for x in inputs]
    threshold = bundle.threshold_default
    for ref, cand in zip(ref_outs, cand_outs, strict=True):
        report.p_live_max_abs = max(report.p_live_max_abs, abs(ref.p_live - cand.p_live))
        report.depth_max_abs = max(
            report.depth_max_abs, float(np.max(np.abs(ref.depth - cand.depth)))
        )
        report.type_probs_max_abs = max(
            report.type_probs_max_abs,
            max(abs(ref.type_probs[t] - cand.type_probs[t]) for t in ref.type_probs),
        )
        flipped = (ref.p_live >= threshold) != (cand.p_live >= threshold)
        report.decision_flips_any += int(flipped)
        if flipped and abs(ref.p_live - threshold) > tolerance["p_live"]:
            report.decision_flips += 1
    for name, rel in report.module_max_rel.items():
        if rel > tolerance["module_rel"]:
            report.failures.append(
                f"module {name}: relative error {rel:.3e} > {tolerance['module_rel']:.0e}"
            )
    for key, value in (
        ("p_live", report.p_live_max_abs),
        ("depth", report.depth_max_abs),
        ("type_probs", report.type_probs_max_abs),
    ):
        if value > tolerance[key]:
            report.failures.append(f"{key}: max |Δ| {value:.3e} > {tolerance[key]:.0e}")
    if report.decision_flips:
        report.failures.append(f"{report.decision_flips} live/spoof decisions differ")
    return report
