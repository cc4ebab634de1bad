"""One split folder that holds the sessions of several: a dev split drawn from two renderers, so a
checkpoint or a threshold is chosen on both; or one split less a class (``--drop mask``: a
renderer's live faces, prints and replays without its masks).

What the sources have, the merged folder has, every source's sessions in the order given:
- session files: each shard is linked (not copied) into OUT under its source's position
  (``a0-shard-…``, ``a1-shard-…``) and OUT's index lists every session;
- aligned training caches (``synth --aligned-cache``, or a cache ``train`` built): for each size
  that every source has, one cache with all their samples, where ``train --data`` and
  ``ensemble --data`` look for it. Splits rendered as caches only give a cache-only split.

    python scripts/merge_splits.py --out data/mixA/dev data/specW-A-dev/dev data/scA-dev/dev
    python scripts/merge_splits.py --out data/scA-nomask/train --drop mask data/scA-train/train
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flashfas_edge.data.dataset_format import INDEX_FILE, DatasetFormatError, write_index
from flashfas_edge.inference.backend import ATTACK_TYPES
from flashfas_edge.train.cache import CacheError, merge_caches
from flashfas_edge.train.render_cache import MARKER
from flashfas_edge.train.splits import cache_dir_for

CACHE_SIZES = (64, 128)


def _link_sessions(sources: list[Path], indexes: list[dict], out: Path, drop: tuple[str, ...]
                   ) -> int:
    shards, samples = [], []
    for k, (source, index) in enumerate(zip(sources, indexes, strict=True)):
        for shard in index["shards"]:
            name = f"a{k}-{shard['file']}"
            os.symlink((source / shard["file"]).resolve(), out / name)
            shards.append({**shard, "file": name})
        samples += [{**s, "shard": f"a{k}-{s['shard']}"} for s in index["samples"]
                    if s.get("attack_type") not in drop]
    info = {
        "generator": "scripts/merge_splits.py",
        "merged_from": [
            {"path": str(source), "sessions": len(index["samples"]), "info": index.get("info", {})}
            for source, index in zip(sources, indexes, strict=True)
        ],
        "dropped": list(drop),
    }
    write_index(out, shards, samples, info)
    return len(samples)


def merge_splits(sources: list[Path], out: Path, drop: tuple[str, ...] = ()) -> dict:
    """Merge ``sources`` into ``out`` less the classes in ``drop``: the sessions linked and the
    samples per cache size."""
    if len(sources) < 2 and not drop:
        raise ValueError("merging needs at least two split folders (or a class to --drop)")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    with_files = [(s / INDEX_FILE).is_file() for s in sources]
    sizes = [size for size in CACHE_SIZES
             if all((cache_dir_for(s, size, None) / "info.json").is_file() for s in sources)]
    if not all(with_files) and not sizes:
        raise DatasetFormatError(
            "the sources share neither session files (index.json) nor an aligned cache size")
    out.mkdir(parents=True, exist_ok=True)
    merged: dict = {"sessions": 0, "cached": {}}
    if all(with_files):
        indexes = [json.loads((s / INDEX_FILE).read_text()) for s in sources]
        merged["sessions"] = _link_sessions(sources, indexes, out, drop)
    else:
        (out / MARKER).write_text(json.dumps(
            {"generator": "scripts/merge_splits.py", "merged_from": [str(s) for s in sources],
             "sizes": sizes, "dropped": list(drop)}, indent=1))
    for size in sizes:
        info = merge_caches([cache_dir_for(s, size, None) for s in sources],
                            cache_dir_for(out, size, None), source=str(out.resolve()),
                            drop=drop)
        merged["cached"][size] = info["count"]
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="new split folder")
    parser.add_argument("--drop", action="append", default=[], metavar="CLASS",
                        choices=["live", *ATTACK_TYPES],
                        help="leave out every session of this class (repeatable)")
    parser.add_argument("sources", type=Path, nargs="+", help="split folders")
    args = parser.parse_args(argv)
    try:
        merged = merge_splits(args.sources, args.out, tuple(args.drop))
    except (ValueError, FileExistsError, DatasetFormatError, CacheError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    cached = ", ".join(f"{n} samples at {size}²" for size, n in merged["cached"].items())
    linked = f"{merged['sessions']} sessions linked" if merged["sessions"] else "no session files"
    print(f"{args.out}: {linked} from {len(args.sources)} split(s)"
          + (f"; cache: {cached}" if cached else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
