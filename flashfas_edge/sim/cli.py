"""Sub-command ``synth``: generate a synthetic flash-session dataset (docs/DATASET.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# sim/face_shape.py FACE_SHAPES (not imported here: `--help` stays free of numpy and OpenCV)
FACE_SHAPE_CHOICES = ("procedural", "scanned")

EPILOG = """examples:
  flashfas-edge synth --out data/ds --n 200 --preview
  flashfas-edge synth --out data/train --n 20000 --split train --workers 2
  flashfas-edge synth --out data/small --n 1000 --width 320 --height 240 --frames all
  flashfas-edge synth --out data/big --n 20000 --split train --aligned-cache 64,128
  flashfas-edge synth --out data/spectral --n 400 --physics spectral --challenge hue_levels
  flashfas-edge synth --out data/procedural --n 200 --face-shape procedural --preview
"""
# what masks the spectral renderer can draw (sim/mask_attack.py; a test keeps the two equal)
MASK_MATERIALS = ("resin", "silicone", "plaster")
ABLATIONS = ("paint_is_skin", "skin_without_diffusion", "gloss_is_skin")  # mask_attack.py


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "synth",
        help="render a synthetic flash-session dataset (live, print, replay, mask)",
        description="Render sessions of a kiosk flash challenge with the physically based scene "
        "renderer and write them in the dataset format (docs/DATASET.md).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--n", type=int, default=200, help="number of sessions (default 200)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--split-protocol", choices=("atr", "random"), default="atr",
                   help="atr: splits differ in ambient scenario, identity and device (default)")
    p.add_argument("--split", choices=("all", "train", "dev", "test"), default="all",
                   help="which split to render; all = OUT/train, OUT/dev, OUT/test with 70/15/15 "
                   "%% of --n (default)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="worker processes (default: all cores)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--frames", choices=("clean", "all"), default="clean",
                   help="clean: one exposure-clean frame per flash state; all: every camera "
                   "frame of the sequence (default clean)")
    p.add_argument("--face-shape", choices=FACE_SHAPE_CHOICES, default="scanned",
                   help="scanned: identities and expressions of the ICT-FaceKit morphable model, "
                   "the faces the shipped model was fine-tuned on; procedural: the hand-made "
                   "relief of the earlier datasets (docs/DATASET.md, Face shapes) "
                   "(default scanned)")
    p.add_argument("--shard-size", type=int, default=16, help="sessions per shard file")
    p.add_argument("--compress", action="store_true", help="deflate shards (slower, ~smaller)")
    p.add_argument("--preview", action="store_true", help="also write OUT/preview.png")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--physics", choices=("rgb", "spectral"), default="rgb",
                   help="rgb: RGB albedo × flash colour (what the shipped bundle was trained on); "
                   "spectral: per-wavelength skin, paint, inks, flash primaries and camera "
                   "channels, masks as attackers make them (docs/DATASET.md)")
    p.add_argument("--challenge", choices=("white_levels", "hue_levels"), default="white_levels",
                   help="the challenge family the sessions flash (docs/MODEL_BUNDLE.md): white "
                   "levels, or hue levels (each level in its own hue: the face's response per "
                   "display primary)")
    p.add_argument("--mask-materials", default=",".join(MASK_MATERIALS), metavar="LIST",
                   help="spectral physics: the mask materials drawn, comma-separated from "
                   f"{', '.join(MASK_MATERIALS)} (hold one back from training to measure "
                   "transfer to it)")
    p.add_argument("--ablate", action="append", default=[], choices=ABLATIONS,
                   help="spectral physics, for test sets that measure which cue a model uses: "
                   "paint_is_skin (mask paint with the victim's skin spectrum), "
                   "skin_without_diffusion (no light diffusing under skin), gloss_is_skin (the "
                   "mask's surface with the victim's skin gloss); repeatable")
    p.add_argument("--aligned-cache", metavar="SIZES",
                   help="training-only dataset: write no session files, only the aligned "
                   "training caches at these comma-separated face sizes (e.g. 64,128), where "
                   "`flashfas-edge train --data OUT` reads them (~1/70 of the disk)")
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from flashfas_edge.sim.preview import write_preview
    from flashfas_edge.sim.synth_dataset import SynthJob, generate_splits, sizes_for

    if args.width < 64 or args.height < 64:
        print("flashfas-edge synth: --width and --height must be at least 64", file=sys.stderr)
        return 2
    if args.n < 1:
        print("flashfas-edge synth: --n must be at least 1", file=sys.stderr)
        return 2
    materials = tuple(m.strip() for m in args.mask_materials.split(",") if m.strip())
    unknown = sorted(set(materials) - set(MASK_MATERIALS)) or ([] if materials else ["(none)"])
    if unknown:
        print(f"flashfas-edge synth: --mask-materials: unknown {', '.join(unknown)}; choose from "
              f"{', '.join(MASK_MATERIALS)}", file=sys.stderr)
        return 2
    job = SynthJob(out=str(args.out), n=args.n, seed=args.seed, protocol=args.split_protocol,
                   width=args.width, height=args.height, frames=args.frames,
                   shard_size=args.shard_size, compress=args.compress, physics=args.physics,
                   challenge_family=args.challenge, mask_materials=materials,
                   face_shape=args.face_shape, ablations=tuple(args.ablate))
    if args.aligned_cache:
        return _synth_aligned(args, job)
    summary = generate_splits(job, sizes_for(args.split, args.n), workers=max(1, args.workers),
                              progress=not args.no_progress)
    if args.preview:
        folders = [args.out / s for s in ("train", "dev", "test") if (args.out / s).is_dir()]
        rows = write_preview(folders, args.out / "preview.png")
        summary["preview"] = str(args.out / "preview.png")
        summary["preview_rows"] = rows
    print(json.dumps(summary, indent=1))
    return 0


def _synth_aligned(args: argparse.Namespace, job) -> int:
    if args.frames != "clean" or args.preview or args.compress:
        print("flashfas-edge synth: --aligned-cache writes no frames; drop --frames all, "
              "--preview and --compress", file=sys.stderr)
        return 2
    try:
        sizes = tuple(sorted({int(s) for s in args.aligned_cache.split(",")}))
    except ValueError:
        print(f"flashfas-edge synth: --aligned-cache wants sizes like 64,128, got "
              f"{args.aligned_cache!r}", file=sys.stderr)
        return 2
    try:
        from flashfas_edge.train.render_cache import render_split_caches
    except ImportError as exc:  # torch lives in the training extra
        print(f"flashfas-edge synth: --aligned-cache needs the training code and its extra "
              f"(pip install 'flashfas-edge[train]'): {exc}", file=sys.stderr)
        return 2
    from dataclasses import asdict
    from functools import partial

    from flashfas_edge.sim.synth_dataset import (
        imap_tasks,
        render_sample,
        sizes_for,
        split_jobs,
        write_dataset_info,
    )

    run_tasks = partial(imap_tasks, workers=max(1, args.workers), progress=not args.no_progress)
    try:
        per_split = {
            sub.split: render_split_caches(
                partial(render_sample, sub), sub.n, Path(sub.out), sizes, run_tasks,
                chunk=sub.shard_size, provenance={"job": asdict(sub)},
            )
            for sub in split_jobs(job, sizes_for(args.split, args.n))
        }
    except ValueError as exc:
        print(f"flashfas-edge synth: {exc}", file=sys.stderr)
        return 2
    write_dataset_info(job, {k: v["sessions"] for k, v in per_split.items()},
                       format="flashfas-aligned-cache", frames="aligned",
                       aligned_sizes=list(sizes))
    summary = {"sessions": sum(v["sessions"] for v in per_split.values()), "splits": per_split}
    print(json.dumps(summary, indent=1))
    return 0
