"""Model bundle loading: read ``manifest.json``, check every file, expose the bundle's facts.

The contract is docs/MODEL_BUNDLE.md (docs/ARCHITECTURE.md §4). The daemon never runs a model it
cannot vouch
for: a missing file, a sha256 mismatch, another format version, an input contract that differs from
what the pipeline feeds, or ONNX tensor names that differ from the manifest are all a
:class:`BundleError` that names the offending file.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flashfas_edge.flash_levels import (
    DEFAULT_CHALLENGE_FAMILY,
    DEFAULT_LEVELS,
    N0_MAX,
    N0_MIN,
    check_family,
    check_levels,
    n_diff_of,
)
from flashfas_edge.inference.backend import ATTACK_TYPES

FORMAT_VERSION = 1  # one network
ENSEMBLE_FORMAT_VERSION = 2  # several networks of the same contract, logits averaged
READ_VERSIONS = (FORMAT_VERSION, ENSEMBLE_FORMAT_VERSION)
ENSEMBLE_COMBINE = ("mean_logit",)
MAX_MEMBERS = 8
MANIFEST_NAME = "manifest.json"
EXPERT_MODULES = tuple(f"expert_{t}" for t in ATTACK_TYPES)
MODULE_NAMES = ("stem", *EXPERT_MODULES, "type_gate", "attention_gate", "head")

# Tensor names fixed by the contract; the gates may read either the raw input or the stem feature.
_EXPECTED_IO: dict[str, tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]] = {
    "stem": ((("x",),), ("feat",)),
    **{name: ((("feat",),), ("depth",)) for name in EXPERT_MODULES},
    "type_gate": ((("x",), ("feat",)), ("logits",)),
    "attention_gate": ((("x",), ("feat",)), ("attention",)),
    "head": ((("depth",),), ("logit",)),
}


class BundleError(RuntimeError):
    """A model bundle is missing, altered (hash mismatch) or incompatible; names the file."""


def sha256_of_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def member_module_key(member: int, role: str) -> str:
    """The manifest key of one member's module: ``stem`` for member 0, ``m1.stem`` for member 1."""
    return role if member == 0 else f"m{member}.{role}"


@dataclass(frozen=True)
class ModuleSpec:
    """One ONNX file of the bundle, as the manifest lists it."""

    name: str  # the manifest key (what runners and engines are keyed by)
    role: str  # the contract's module name (stem, expert_print, …, head)
    path: Path
    sha256: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class RoutingConfig:
    """Sparse expert routing (beyond the paper): skip experts when the type gate is confident."""

    sparse: bool = False
    min_top_weight: float = 0.95


@dataclass(frozen=True)
class Bundle:
    """A validated model bundle: the facts the pipeline needs plus the module files."""

    directory: Path
    name: str
    manifest_sha256: str
    n0: int
    n_diff: int
    input_size: int
    depth_size: int
    channel_order: str
    layout: str
    normalisation: dict[str, Any]
    threshold_default: float
    routing: RoutingConfig
    # The challenge the networks were trained on (docs/MODEL_BUNDLE.md): levels brightest first.
    flash_levels: tuple[float, ...]
    challenge_family: str
    # False: the manifest predates these fields and they were read as the historical default.
    challenge_recorded: bool
    modules: dict[str, ModuleSpec]  # every module of every member, by manifest key
    # per member: role → module; one member unless the bundle is an ensemble (format 2)
    members: tuple[dict[str, ModuleSpec], ...]
    manifest: dict[str, Any] = field(repr=False)
    # Scores in [spoof_below, threshold_default) answer retry (score_uncertain), lower ones
    # spoof; None: every score below the threshold is spoof (docs/MODEL_BUNDLE.md, threshold).
    spoof_below: float | None = None

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """Shape of one check's input, without the batch dimension: [N, 3, S, S]."""
        return (self.n_diff, 3, self.input_size, self.input_size)


def load_bundle(
    bundle_dir: str | Path,
    *,
    expect_n0: int | None = None,
    expect_input_size: int | None = None,
    expect_normalisation: dict[str, Any] | None = None,
    check_onnx_io: bool = True,
) -> Bundle:
    """Read and validate a bundle folder; raise :class:`BundleError` naming the file on any fault.

    ``expect_*`` are what the caller (the pipeline) will feed; ``None`` skips that check.
    """
    directory = Path(bundle_dir)
    manifest_path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise BundleError(f"{directory}: bundle folder does not exist")
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: manifest is missing")
    raw = manifest_path.read_bytes()
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{manifest_path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: top level must be a JSON object")

    def field_of(key: str, kind: type | tuple[type, ...]) -> Any:
        if key not in manifest:
            raise BundleError(f"{manifest_path}: field {key!r} is missing")
        value = manifest[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise BundleError(f"{manifest_path}: field {key!r} has the wrong type ({value!r})")
        return value

    version = field_of("format_version", int)
    if version not in READ_VERSIONS:
        raise BundleError(
            f"{manifest_path}: format_version {version} is not supported "
            f"(this runtime reads versions {', '.join(map(str, READ_VERSIONS))})"
        )
    n_members = _parse_ensemble(manifest, version, manifest_path)
    n0 = field_of("n0", int)
    n_diff = field_of("n_diff", int)
    input_size = field_of("input_size", int)
    depth_size = field_of("depth_size", int)
    if not N0_MIN <= n0 <= N0_MAX:
        raise BundleError(f"{manifest_path}: n0 = {n0} is outside {N0_MIN}…{N0_MAX}")
    if n_diff != n_diff_of(n0):  # ATR-FAS §3.2: N = 2(N0 − 2) differential frames
        raise BundleError(f"{manifest_path}: n_diff = {n_diff} but n0 = {n0} needs {n_diff_of(n0)}")
    if expect_n0 is not None and n0 != expect_n0:
        raise BundleError(
            f"{manifest_path}: bundle was trained for n0 = {n0}, "
            f"the pipeline feeds n0 = {expect_n0}"
        )
    if expect_input_size is not None and input_size != expect_input_size:
        raise BundleError(
            f"{manifest_path}: bundle input_size = {input_size}, "
            f"the pipeline feeds {expect_input_size}×{expect_input_size}"
        )
    channel_order = manifest.get("channel_order", "RGB")
    layout = manifest.get("layout", "NCHW")
    if channel_order != "RGB" or layout != "NCHW":
        raise BundleError(
            f"{manifest_path}: channel_order/layout {channel_order}/{layout} "
            "is not the RGB/NCHW the runtime feeds"
        )
    normalisation = manifest.get("normalisation", {})
    if not isinstance(normalisation, dict):
        raise BundleError(f"{manifest_path}: field 'normalisation' must be an object")
    if expect_normalisation is not None and normalisation != expect_normalisation:
        raise BundleError(
            f"{manifest_path}: normalisation {normalisation} differs from what the pipeline "
            f"feeds ({expect_normalisation})"
        )
    flash_levels, challenge_family, challenge_recorded = _parse_challenge(
        manifest, n0, manifest_path
    )
    attack_types = tuple(manifest.get("attack_types", ATTACK_TYPES))
    if attack_types != ATTACK_TYPES:
        raise BundleError(
            f"{manifest_path}: attack_types {list(attack_types)} differ from {list(ATTACK_TYPES)}"
        )

    threshold = manifest.get("threshold", {"default": 0.5})
    threshold_default = threshold.get("default") if isinstance(threshold, dict) else None
    # Fail closed: a threshold of 0 (or NaN) would call every face live.
    if not isinstance(threshold_default, (int, float)) or not 0.0 < threshold_default <= 1.0:
        raise BundleError(f"{manifest_path}: threshold.default must be a number in (0, 1]")
    spoof_below = threshold.get("spoof_below")
    if spoof_below is not None and (
            isinstance(spoof_below, bool) or not isinstance(spoof_below, (int, float))
            or not 0.0 < spoof_below <= threshold_default):
        raise BundleError(f"{manifest_path}: threshold.spoof_below must be a number in "
                          f"(0, threshold.default = {threshold_default}]")
    routing = _parse_routing(manifest.get("routing", {}), manifest_path)

    modules_raw = field_of("modules", dict)
    modules: dict[str, ModuleSpec] = {}
    members = []
    for member in range(n_members):
        roles = {}
        for role in MODULE_NAMES:
            key = member_module_key(member, role)
            roles[role] = modules[key] = _check_module(
                key, role, modules_raw.get(key), directory, manifest_path
            )
        members.append(roles)
    unknown = sorted(set(modules_raw) - set(modules))
    if unknown and version == ENSEMBLE_FORMAT_VERSION:  # never leave a listed network unused
        raise BundleError(f"{manifest_path}: modules {unknown} belong to no ensemble member")
    if check_onnx_io:
        for spec in modules.values():
            _check_onnx_io(spec, n_diff=n_diff, input_size=input_size, depth_size=depth_size)

    return Bundle(
        directory=directory,
        name=str(manifest.get("name", directory.name)),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        n0=n0,
        n_diff=n_diff,
        input_size=input_size,
        depth_size=depth_size,
        channel_order=channel_order,
        layout=layout,
        normalisation=normalisation,
        threshold_default=float(threshold_default),
        routing=routing,
        flash_levels=flash_levels,
        challenge_family=challenge_family,
        challenge_recorded=challenge_recorded,
        modules=modules,
        members=tuple(members),
        manifest=manifest,
        spoof_below=None if spoof_below is None else float(spoof_below),
    )


def _parse_challenge(
    manifest: dict[str, Any], n0: int, manifest_path: Path
) -> tuple[tuple[float, ...], str, bool]:
    """``flash_levels`` and ``challenge_family``; a manifest without them (written before they
    existed) is read as the historical default: N0 = 5 white levels ``DEFAULT_LEVELS``."""
    raw_levels = manifest.get("flash_levels")
    raw_family = manifest.get("challenge_family")
    recorded = raw_levels is not None and raw_family is not None
    if raw_levels is None:
        if n0 != len(DEFAULT_LEVELS):
            raise BundleError(
                f"{manifest_path}: n0 = {n0} but no 'flash_levels'; only N0 = "
                f"{len(DEFAULT_LEVELS)} bundles may omit them (read as {list(DEFAULT_LEVELS)})"
            )
        raw_levels = list(DEFAULT_LEVELS)
    if not isinstance(raw_levels, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in raw_levels
    ):
        raise BundleError(f"{manifest_path}: flash_levels must be a list of numbers")
    try:
        levels = check_levels(raw_levels)
        family = check_family(raw_family if raw_family is not None else DEFAULT_CHALLENGE_FAMILY)
    except ValueError as exc:
        raise BundleError(f"{manifest_path}: {exc}") from exc
    if len(levels) != n0:
        raise BundleError(f"{manifest_path}: {len(levels)} flash_levels but n0 = {n0}")
    if tuple(float(v) for v in raw_levels) != levels:
        raise BundleError(f"{manifest_path}: flash_levels must be listed brightest first")
    return levels, family, recorded


def _parse_ensemble(manifest: dict[str, Any], version: int, manifest_path: Path) -> int:
    """Number of member networks: 1 for format 1; format 2 needs an ``ensemble`` block."""
    raw = manifest.get("ensemble")
    if version == FORMAT_VERSION:
        if raw is not None:  # an old reader would run member 0 alone at the ensemble's threshold
            raise BundleError(f"{manifest_path}: an 'ensemble' block needs format_version 2")
        return 1
    if not isinstance(raw, dict):
        raise BundleError(f"{manifest_path}: format_version 2 needs an 'ensemble' object")
    members, combine = raw.get("members"), raw.get("combine")
    if not isinstance(members, int) or isinstance(members, bool) or not 2 <= members <= MAX_MEMBERS:
        raise BundleError(
            f"{manifest_path}: ensemble.members must be an integer in 2…{MAX_MEMBERS}"
        )
    if combine not in ENSEMBLE_COMBINE:
        raise BundleError(
            f"{manifest_path}: ensemble.combine {combine!r} is not one of {list(ENSEMBLE_COMBINE)}"
        )
    return members


def _parse_routing(raw: Any, manifest_path: Path) -> RoutingConfig:
    if not isinstance(raw, dict):
        raise BundleError(f"{manifest_path}: field 'routing' must be an object")
    sparse = raw.get("sparse", False)
    min_top_weight = raw.get("min_top_weight", 0.95)
    if not isinstance(sparse, bool):
        raise BundleError(f"{manifest_path}: routing.sparse must be true or false")
    if not isinstance(min_top_weight, (int, float)) or not 1 / len(ATTACK_TYPES) < min_top_weight:
        raise BundleError(f"{manifest_path}: routing.min_top_weight must be in (1/M, 1]")
    if min_top_weight > 1.0 or math.isnan(min_top_weight):
        raise BundleError(f"{manifest_path}: routing.min_top_weight must be in (1/M, 1]")
    return RoutingConfig(sparse=sparse, min_top_weight=float(min_top_weight))


def _check_module(
    name: str, role: str, raw: Any, directory: Path, manifest_path: Path
) -> ModuleSpec:
    if not isinstance(raw, dict):
        raise BundleError(f"{manifest_path}: module {name!r} is not listed")
    file_name = raw.get("file")
    expected_sha = raw.get("sha256")
    if not isinstance(file_name, str) or not isinstance(expected_sha, str):
        raise BundleError(f"{manifest_path}: module {name!r} needs 'file' and 'sha256'")
    path = directory / file_name
    if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
        raise BundleError(f"{manifest_path}: module {name!r} file {file_name!r} leaves the bundle")
    if not path.is_file():
        raise BundleError(f"{path}: module {name!r} file is missing")
    actual_sha = sha256_of_file(path)
    if actual_sha != expected_sha.lower():
        raise BundleError(
            f"{path}: sha256 mismatch for module {name!r} "
            f"(manifest {expected_sha[:12]}…, file {actual_sha[:12]}…) — the file was altered"
        )
    inputs = tuple(raw.get("inputs", ()))
    outputs = tuple(raw.get("outputs", ()))
    allowed_inputs, expected_outputs = _EXPECTED_IO[role]
    if inputs not in allowed_inputs or outputs != expected_outputs:
        raise BundleError(
            f"{manifest_path}: module {name!r} lists inputs {list(inputs)} / outputs "
            f"{list(outputs)}; the contract allows {[list(i) for i in allowed_inputs]} / "
            f"{list(expected_outputs)}"
        )
    return ModuleSpec(
        name=name, role=role, path=path, sha256=actual_sha, inputs=inputs, outputs=outputs
    )


def _check_onnx_io(spec: ModuleSpec, *, n_diff: int, input_size: int, depth_size: int) -> None:
    """The ONNX graph's tensor names (and static dims) must be what the manifest says."""
    import onnx  # only at load time; ONNX parsing is cheap next to session creation

    try:
        model = onnx.load(str(spec.path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends: all mean "not an ONNX file"
        raise BundleError(f"{spec.path}: not a readable ONNX model ({exc})") from exc
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    inputs = tuple(i.name for i in graph.input if i.name not in initializer_names)
    outputs = tuple(o.name for o in graph.output)
    if inputs != spec.inputs or outputs != spec.outputs:
        raise BundleError(
            f"{spec.path}: ONNX inputs {list(inputs)} / outputs {list(outputs)} do not match "
            f"the manifest ({list(spec.inputs)} / {list(spec.outputs)})"
        )
    expected_dims = {
        "x": (n_diff, 3, input_size, input_size),
        "depth": (
            (n_diff, depth_size, depth_size) if spec.role != "head" else (1, depth_size, depth_size)
        ),
        "attention": (n_diff, depth_size, depth_size),
        "logits": (len(ATTACK_TYPES),),
        "logit": (1,),
    }
    for value in (*graph.input, *graph.output):
        if value.name not in expected_dims:
            continue
        dims = tuple(
            d.dim_value if d.HasField("dim_value") else None
            for d in value.type.tensor_type.shape.dim
        )
        want = expected_dims[value.name]
        if len(dims) != len(want) + 1:
            raise BundleError(
                f"{spec.path}: tensor {value.name!r} has rank {len(dims)}, "
                f"expected [B, {', '.join(map(str, want))}]"
            )
        for got, expected in zip(dims[1:], want, strict=True):
            if got is not None and got != expected:
                raise BundleError(
                    f"{spec.path}: tensor {value.name!r} has shape {list(dims)}, "
                    f"expected [B, {', '.join(map(str, want))}] from the manifest"
                )
