"""Preprocessed-sample cache: align every session once, train many epochs on the result.

Rendering + alignment cost far more than a training step on this CPU, so each split is aligned once
into ``<cache>/<split>-s<S>/`` (uint8 aligned frames, brightest first; labels; 64×64 depth; meta)
and every config (any input mode, any depth size) builds its tensors from that in memory.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from flashfas_edge.data.session import Session
from flashfas_edge.inference.backend import ATTACK_TYPES
from flashfas_edge.train.sample import AlignedSample, SampleError, align_session, network_input

CACHE_VERSION = 1


class CacheError(RuntimeError):
    """A cache folder is missing, stale or inconsistent."""


def build_cache(sessions: Iterable[Session], out_dir: Path, size: int, source: str = "") -> dict:
    """Align ``sessions`` into ``out_dir``; returns the info dict (counts, skipped reasons)."""
    samples: list[AlignedSample] = []
    skipped: Counter[str] = Counter()
    for session in sessions:
        try:
            samples.append(align_session(session, size))
        except SampleError as exc:
            skipped[skip_reason(exc)] += 1
    return write_cache(samples, out_dir, size, skipped, source)


def skip_reason(exc: SampleError) -> str:
    """The reason without its per-session detail, so that skips can be counted."""
    return str(exc).split(" (")[0]


def write_cache(
    samples: list[AlignedSample], out_dir: Path, size: int, skipped: Counter[str], source: str
) -> dict:
    """Write aligned samples (in order) as one cache folder; returns its info dict."""
    if not samples:
        raise CacheError(f"no usable session for {out_dir} (skipped: {dict(skipped)})")
    arrays = {
        "aligned": np.stack([s.aligned for s in samples]),
        "attack": np.asarray([s.attack_index for s in samples], dtype=np.int8),
        "depth": np.stack([s.depth.astype(np.float16) for s in samples]),
    }
    return _save_cache(out_dir, arrays, [s.meta for s in samples],
                       {"size": size, "skipped": dict(skipped), "source": source})


def _save_cache(out_dir: Path, arrays: dict[str, np.ndarray], meta: list[dict],
                info: dict) -> dict:
    """The cache folder's files: one array file each, the samples' meta, and ``info.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(out_dir / f"{name}.npy", array)
    (out_dir / "meta.json").write_text(json.dumps(meta, default=str))
    info = {"version": CACHE_VERSION, "count": len(meta), **info}
    (out_dir / "info.json").write_text(json.dumps(info, indent=1))
    return info


def merge_caches(
    cache_dirs: list[Path], out_dir: Path, source: str = "", drop: tuple[str, ...] = ()
) -> dict:
    """One cache folder holding every sample of ``cache_dirs`` (same size), in the order given,
    less the classes named in ``drop`` (``live`` or an attack type): the cache of a split merged
    from several, or of one split without a class (``scripts/merge_splits.py``)."""
    unknown = set(drop) - {"live", *ATTACK_TYPES}
    if unknown:
        raise CacheError(f"no such class to drop: {sorted(unknown)}")
    dropped = [-1 if name == "live" else ATTACK_TYPES.index(name) for name in drop]
    infos = [read_cache_info(d) for d in cache_dirs]
    if len({info["size"] for info in infos}) != 1:
        raise CacheError(f"caches of different sizes: {[info['size'] for info in infos]}")
    attack = [np.load(d / "attack.npy") for d in cache_dirs]
    kept = [~np.isin(a, dropped) for a in attack]
    if not any(k.any() for k in kept):
        raise CacheError(f"nothing left after dropping {list(drop)}")
    arrays = {"attack": np.concatenate([a[k] for a, k in zip(attack, kept, strict=True)])}
    for name in ("aligned", "depth"):
        arrays[name] = np.concatenate([np.load(d / f"{name}.npy", mmap_mode="r")[k]
                                       for d, k in zip(cache_dirs, kept, strict=True)])
    meta = [m for d, k in zip(cache_dirs, kept, strict=True)
            for m, keep in zip(json.loads((d / "meta.json").read_text()), k, strict=True) if keep]
    skipped: Counter[str] = Counter()
    for info in infos:
        skipped.update(info.get("skipped", {}))
    info = {"size": infos[0]["size"], "skipped": dict(skipped), "source": source}
    if drop:
        info["dropped"] = {"classes": list(drop), "samples": sum(int((~k).sum()) for k in kept)}
    return _save_cache(out_dir, arrays, meta, info)


def read_cache_info(cache_dir: Path) -> dict:
    try:
        info = json.loads((cache_dir / "info.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CacheError(f"{cache_dir}: no readable cache ({exc})") from exc
    if info.get("version") != CACHE_VERSION:
        raise CacheError(f"{cache_dir}: cache version {info.get('version')} != {CACHE_VERSION}")
    return info


@dataclass
class SplitTensors:
    """One split, ready for the network: everything in memory (a few hundred MB at most)."""

    x: torch.Tensor  # float16 [n, N, 3, S, S]
    attack_index: torch.Tensor  # long [n], −1 live
    depth: torch.Tensor  # float32 [n, D, D]
    meta: list[dict]
    aligned: np.ndarray | None = None  # uint8 [n, N0, S, S, 3] for on-the-fly augmentation

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def labels(self) -> list[str]:
        return ["live" if i < 0 else ATTACK_TYPES[i] for i in self.attack_index.tolist()]

    @property
    def live(self) -> torch.Tensor:
        return (self.attack_index < 0).float()

    def head(self, n: int) -> SplitTensors:
        """The first ``n`` samples (``--max-train``)."""
        aligned = self.aligned[:n] if self.aligned is not None else None
        return SplitTensors(
            self.x[:n], self.attack_index[:n], self.depth[:n], self.meta[:n], aligned
        )


def concat_splits(parts: list[SplitTensors]) -> SplitTensors:
    """One split from several (``train --extra-train``): samples in the order given."""
    if not parts:
        raise CacheError("no split to concatenate")
    if len(parts) == 1:
        return parts[0]
    shapes = {tuple(p.x.shape[1:]) for p in parts} | {tuple(p.depth.shape[1:]) for p in parts}
    if len(shapes) != 2:
        raise CacheError(f"splits differ in input or depth shape: {sorted(shapes)}")
    kept = [p.aligned for p in parts]
    aligned = None
    if all(a is not None for a in kept):
        aligned = np.concatenate([np.asarray(a) for a in kept])
    return SplitTensors(
        x=torch.cat([p.x for p in parts]),
        attack_index=torch.cat([p.attack_index for p in parts]),
        depth=torch.cat([p.depth for p in parts]),
        meta=[m for p in parts for m in p.meta],
        aligned=aligned,
    )


def load_split(
    cache_dir: Path, input_mode: str, depth_size: int, keep_aligned: bool = False
) -> SplitTensors:
    read_cache_info(cache_dir)
    aligned = np.load(cache_dir / "aligned.npy", mmap_mode="r")
    x = torch.from_numpy(
        np.stack([network_input(np.asarray(a), input_mode) for a in aligned]).astype(np.float16)
    )
    depth = torch.from_numpy(np.load(cache_dir / "depth.npy").astype(np.float32))
    if depth.shape[-1] != depth_size:  # area average keeps the mean depth of each cell
        depth = F.interpolate(depth[:, None], size=(depth_size, depth_size), mode="area")[:, 0]
    attack = torch.from_numpy(np.load(cache_dir / "attack.npy").astype(np.int64))
    meta = json.loads((cache_dir / "meta.json").read_text())
    kept = np.ascontiguousarray(aligned) if keep_aligned else None
    return SplitTensors(x=x, attack_index=attack, depth=depth, meta=meta, aligned=kept)
