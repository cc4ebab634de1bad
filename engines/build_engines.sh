#!/usr/bin/env bash
# Build TensorRT engines for a FlashFAS Edge model bundle ON THE TARGET DEVICE (docs/ARCHITECTURE.md §10).
#
# One trtexec run per module (stem, 3 experts, 2 gates, head), then engine_manifest.json (TensorRT
# version, GPU compute capability, precision, source ONNX sha256), then verification against ONNX
# Runtime. Engines are built into <out>.new and only replace <out> when verification passes; the
# engines they replace stay in <out>.previous (roll back: see engines/README.md).
#
# TensorRT 10 (JetPack 6.x ships 10.3): FP16 via `trtexec --fp16`.
# TensorRT 11+: strongly typed, no --fp16: the ONNX is first converted to FP16 with ModelOpt
# AutoCast (I/O kept FP32), and trtexec builds that file as typed.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: engines/build_engines.sh [options]

  --bundle DIR            model bundle folder (default: engines/edge-default)
  --out DIR               engines folder (default: <bundle>/tensorrt)
  --precision fp16|fp32   (default: fp16)
  --batch-min N           optimisation profile for the batch dimension (default 1)
  --batch-opt N           (default 1: one check at a time on a kiosk)
  --batch-max N           (default 8)
  --mem-pool-mb N         builder workspace in MiB (default 1024; 512 on an 8 GB Orin Nano)
  --timing-cache FILE     reused across builds (default: <bundle>/tensorrt.timing.cache)
  --dla-core N            Jetson only, opt-in: build for DLA core N with GPU fallback
  --trtexec PATH          trtexec binary (default: trtexec on PATH, else /usr/src/tensorrt/bin)
  --python PATH           Python with flashfas_edge installed (default: python3)
  --tensorrt-version V    skip detection (e.g. 10.3.0); required for --dry-run without TensorRT
  --skip-verify           do not compare with ONNX Runtime (not recommended)
  --dry-run               print the commands, run nothing, write nothing
  -h, --help              this text

example:
  engines/build_engines.sh --bundle engines/edge-default
EOF
}

die() { echo "build_engines.sh: error: $*" >&2; exit 2; }

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

bundle="engines/edge-default"
out=""
precision="fp16"
batch_min=1
batch_opt=1
batch_max=8
mem_pool_mb=1024
timing_cache=""
dla_core=""
trtexec=""
python="${PYTHON:-python3}"
trt_version=""
skip_verify=0
dry_run=0

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --bundle) need_value "$@"; bundle="$2"; shift 2 ;;
        --out) need_value "$@"; out="$2"; shift 2 ;;
        --precision) need_value "$@"; precision="$2"; shift 2 ;;
        --batch-min) need_value "$@"; batch_min="$2"; shift 2 ;;
        --batch-opt) need_value "$@"; batch_opt="$2"; shift 2 ;;
        --batch-max) need_value "$@"; batch_max="$2"; shift 2 ;;
        --mem-pool-mb) need_value "$@"; mem_pool_mb="$2"; shift 2 ;;
        --timing-cache) need_value "$@"; timing_cache="$2"; shift 2 ;;
        --dla-core) need_value "$@"; dla_core="$2"; shift 2 ;;
        --trtexec) need_value "$@"; trtexec="$2"; shift 2 ;;
        --python) need_value "$@"; python="$2"; shift 2 ;;
        --tensorrt-version) need_value "$@"; trt_version="$2"; shift 2 ;;
        --skip-verify) skip_verify=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
done

[[ "$precision" == fp16 || "$precision" == fp32 ]] || die "--precision must be fp16 or fp32"
for pair in "batch-min:$batch_min" "batch-opt:$batch_opt" "batch-max:$batch_max" \
            "mem-pool-mb:$mem_pool_mb"; do
    is_uint "${pair#*:}" || die "--${pair%%:*} must be a whole number, not '${pair#*:}'"
done
if (( batch_min < 1 || batch_min > batch_opt || batch_opt > batch_max )); then
    die "batch sizes must satisfy 1 <= min <= opt <= max (got $batch_min/$batch_opt/$batch_max)"
fi
[[ -z "$dla_core" ]] || is_uint "$dla_core" || die "--dla-core must be a whole number"
[[ -f "$bundle/manifest.json" ]] || die "$bundle/manifest.json not found (is --bundle right?)"
"$python" -c "import flashfas_edge" 2>/dev/null \
    || die "$python cannot import flashfas_edge (pip install the package, or pass --python)"

out="${out:-$bundle/tensorrt}"
timing_cache="${timing_cache:-$bundle/tensorrt.timing.cache}"
staging="$out.new"

if [[ -z "$trtexec" ]]; then
    if command -v trtexec >/dev/null 2>&1; then
        trtexec="$(command -v trtexec)"
    elif [[ -x /usr/src/tensorrt/bin/trtexec ]]; then
        trtexec=/usr/src/tensorrt/bin/trtexec  # JetPack puts it here, not on PATH
    elif (( dry_run )); then
        trtexec=trtexec
    else
        die "trtexec not found: install TensorRT (JetPack) or pass --trtexec PATH"
    fi
fi

# TensorRT version: given, else the Python module, else trtexec's banner "[TensorRT v100300]".
if [[ -z "$trt_version" ]]; then
    trt_version="$("$python" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)"
fi
if [[ -z "$trt_version" ]] && (( ! dry_run )); then
    banner="$("$trtexec" --help 2>&1 | grep -o 'TensorRT v[0-9]*' | head -n1 || true)"
    code="${banner#TensorRT v}"
    if is_uint "$code" && (( code >= 10000 )); then
        trt_version="$((code / 10000)).$((code / 100 % 100)).$((code % 100))"
    elif is_uint "$code"; then
        trt_version="$((code / 1000)).$((code / 100 % 10)).$((code % 100))"
    fi
fi
[[ -n "$trt_version" ]] || die "cannot tell the TensorRT version; pass --tensorrt-version"
trt_major="${trt_version%%.*}"
is_uint "$trt_major" || die "bad TensorRT version '$trt_version'"
(( trt_major >= 10 )) || die "TensorRT $trt_version is too old: engines need TensorRT >= 10"

run() {
    # Print every command; run it unless --dry-run. Output goes to a per-module log.
    local log="$1"; shift
    echo "$*"
    if (( ! dry_run )); then
        if ! "$@" >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            die "failed: $1 (full log: $log)"
        fi
    fi
}

if (( dry_run )); then
    echo "# dry run: TensorRT $trt_version, $precision, batch $batch_min/$batch_opt/$batch_max," \
         "engines -> $staging then $out"
else
    rm -rf "$staging"
    mkdir -p "$staging/logs"
    [[ "$precision" == fp16 && "$trt_major" -ge 11 ]] && mkdir -p "$staging/fp16_onnx"
fi

plan="$("$python" -m flashfas_edge.inference.trt_build.engine_plan "$bundle" \
        "$batch_min" "$batch_opt" "$batch_max")" || die "bundle $bundle is not valid"

while IFS=$'\t' read -r module onnx min_shapes opt_shapes max_shapes; do
    source_onnx="$onnx"
    if [[ "$precision" == fp16 && "$trt_major" -ge 11 ]]; then
        # TensorRT 11+ is strongly typed: FP16 must already be in the ONNX file.
        source_onnx="$staging/fp16_onnx/$module.fp16.onnx"
        run "$staging/logs/$module.autocast.log" "$python" -m modelopt.onnx.autocast \
            "--onnx_path=$onnx" "--output_path=$source_onnx" \
            --low_precision_type=fp16 --keep_io_types
    fi
    args=("$trtexec" "--onnx=$source_onnx" "--saveEngine=$staging/$module.engine"
          "--minShapes=$min_shapes" "--optShapes=$opt_shapes" "--maxShapes=$max_shapes"
          "--memPoolSize=workspace:${mem_pool_mb}M" "--timingCacheFile=$timing_cache")
    if [[ "$precision" == fp16 && "$trt_major" -eq 10 ]]; then
        args+=(--fp16)
    fi
    if [[ -n "$dla_core" ]]; then
        args+=("--useDLACore=$dla_core" --allowGPUFallback)
    fi
    args+=(--skipInference)
    run "$staging/logs/$module.trtexec.log" "${args[@]}"
done <<<"$plan"

record=("$python" -m flashfas_edge.cli engines record --bundle "$bundle" --engines-dir "$staging"
        --precision "$precision" --batch-min "$batch_min" --batch-opt "$batch_opt"
        --batch-max "$batch_max" --mem-pool-mb "$mem_pool_mb" --timing-cache "$timing_cache"
        --builder trtexec --tensorrt-version "$trt_version")
[[ -n "$dla_core" ]] && record+=(--dla-core "$dla_core")
run "$staging/logs/record.log" "${record[@]}"

if (( ! skip_verify )); then
    # FP16 tolerance vs ONNX Runtime FP32: |Δp_live| <= 1e-2, |Δdepth| <= 2e-2,
    # |Δtype probs| <= 1e-2, module outputs <= 3e-2 relative, no live/spoof flip.
    echo "$python -m flashfas_edge.cli engines verify --bundle $bundle --engines-dir $staging"
    if (( ! dry_run )); then
        "$python" -m flashfas_edge.cli engines verify --bundle "$bundle" --engines-dir "$staging" \
            || die "verification failed; the engines in $out were left untouched"
    fi
fi

if (( dry_run )); then
    echo "# would move $out to $out.previous and $staging to $out"
    exit 0
fi
rm -rf "$out.previous"
[[ -d "$out" ]] && mv "$out" "$out.previous"
mv "$staging" "$out"
echo "OK: engines for $(basename "$bundle") in $out (previous engines kept in $out.previous)"
