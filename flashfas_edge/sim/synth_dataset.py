"""``flashfas-edge synth``: render a dataset in parallel, shard by shard, deterministically.

Layout: ``OUT/dataset.json`` (provenance) and one dataset folder per split (``OUT/train``,
``OUT/dev``, ``OUT/test``), each with ``index.json`` and shards (docs/DATASET.md). Shard k always
holds samples [k·S, (k+1)·S), and every sample depends only on (seed, split, index), so the
result is byte-identical whatever the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from flashfas_edge.data.dataset_format import write_index, write_shard
from flashfas_edge.data.session import Session
from flashfas_edge.sim.mask_attack import MASK_MATERIALS
from flashfas_edge.sim.protocol import SPLITS, draw_request, split_sizes
from flashfas_edge.sim.schedule import ScheduleSpec
from flashfas_edge.sim.synth_session import SessionOptions, render_session

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SynthJob:
    out: str
    n: int
    seed: int = 0
    protocol: str = "atr"
    split: str = "train"  # one split per job; ``generate_splits`` runs one job per split
    width: int = 640
    height: int = 480
    frames: str = "clean"
    shard_size: int = 16
    compress: bool = False
    levels: tuple[float, ...] = ScheduleSpec().levels
    state_duration_us: int = ScheduleSpec().state_duration_us
    physics: str = "rgb"  # SceneRequest.physics
    challenge_family: str = "white_levels"  # white_levels | hue_levels (ScheduleSpec.family)
    mask_materials: tuple[str, ...] = MASK_MATERIALS  # spectral physics: masks drawn from these
    face_shape: str = "scanned"  # sim/face_shape.py FACE_SHAPES
    ablations: tuple[str, ...] = ()  # spectral physics, test sets only (mask_attack.ABLATIONS)


def render_sample(job: SynthJob, index: int) -> Session:
    split = job.split
    req = replace(draw_request(job.seed, index, split, job.protocol, job.width, job.height),
                  physics=job.physics, mask_materials=job.mask_materials,
                  face_shape=job.face_shape, ablations=job.ablations)
    opts = SessionOptions(schedule=ScheduleSpec(levels=job.levels,
                                                state_duration_us=job.state_duration_us,
                                                family=job.challenge_family),
                          frames=job.frames)
    session = render_session(req, opts)
    session.meta.update({"split": split, "protocol": job.protocol, "index": index,
                         "dataset_seed": job.seed})
    return session


def _index_row(shard: str, j: int, s: Session) -> dict[str, Any]:
    m = s.meta
    return {"shard": shard, "key": f"s{j:04d}", "attack_type": s.attack_type,
            "split": m["split"], "scenario": m["scenario"], "device": m["device"],
            "identity_seed": m["identity_seed"], "index": m["index"],
            "frames": int(s.frames.shape[0]), "height": int(s.frames.shape[1]),
            "width": int(s.frames.shape[2])}


def _render_shard(args: tuple[SynthJob, int]) -> tuple[int, list[dict[str, Any]], int]:
    job, k = args
    import cv2

    cv2.setNumThreads(1)
    lo, hi = k * job.shard_size, min((k + 1) * job.shard_size, job.n)
    sessions = [render_sample(job, i) for i in range(lo, hi)]
    name = f"shard-{k:05d}.npz"
    size = write_shard(Path(job.out) / name, sessions, compress=job.compress)
    return k, [_index_row(name, j, s) for j, s in enumerate(sessions)], size


def generate(job: SynthJob, workers: int, progress: bool = True) -> dict[str, Any]:
    """Render ``job.n`` sessions of ``job.split`` into the dataset folder ``job.out``."""
    if job.n <= 0:
        raise ValueError("the number of sessions must be positive")
    if job.split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}")
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    n_shards = -(-job.n // job.shard_size)
    tasks = [(job, k) for k in range(n_shards)]
    results: dict[int, tuple[list[dict[str, Any]], int]] = {}
    t0 = time.perf_counter()
    for k, rows, size in imap_tasks(_render_shard, tasks, workers, progress=progress,
                                    desc=f"synth {job.split}", total=job.n,
                                    count=lambda result: len(result[1])):
        results[k] = (rows, size)
    elapsed = time.perf_counter() - t0
    shards = [{"file": f"shard-{k:05d}.npz", "sessions": len(results[k][0]),
               "bytes": results[k][1]} for k in range(n_shards)]
    samples = [row for k in range(n_shards) for row in results[k][0]]
    write_index(out, shards, samples, {"generator": "flashfas-edge synth", "job": asdict(job)})
    total = sum(int(results[k][1]) for k in range(n_shards))
    counts: dict[str, int] = {}
    for row in samples:
        counts[row["attack_type"]] = counts.get(row["attack_type"], 0) + 1
    return {"split": job.split, "sessions": job.n, "seconds": elapsed, "bytes": total,
            "counts": dict(sorted(counts.items())),
            "mean_frames": float(np.mean([r["frames"] for r in samples]))}


def imap_tasks(fn: Callable[[T], R], tasks: list[T], workers: int, *, progress: bool, desc: str,
               total: int, count: Callable[[R], int]) -> Iterator[R]:
    """``fn`` over ``tasks`` in ``workers`` processes, results in completion order, with a
    progress bar of ``total`` sessions (``count(result)`` each); a failure or interruption
    leaves no workers behind."""
    parallel = workers > 1 and len(tasks) > 1
    # fork the workers before the progress bar starts its monitor thread
    ctx = mp.get_context("fork" if os.name == "posix" else "spawn")
    pool = ctx.Pool(min(workers, len(tasks))) if parallel else None
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="session", desc=desc)
    try:
        for result in (pool.imap_unordered(fn, tasks) if pool is not None else map(fn, tasks)):
            if bar:
                bar.update(count(result))
            yield result
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    finally:
        if pool is not None:
            pool.close()
            pool.join()
        if bar:
            bar.close()


def first_rendered(fn: Callable[[tuple[int, int]], dict | None], seed: int, n: int,
                   workers: int) -> list[dict]:
    """The first ``n`` non-None results of ``fn((seed, index))`` for index 0, 1, … in index
    order, whichever worker finished first (measurement scripts: ``fn`` renders one session of
    the test protocol and returns None for the attack types it does not measure). Each result
    must carry its ``"index"``."""
    rows: list[dict] = []
    index = 0
    while len(rows) < n:
        batch = [(seed, index + k) for k in range(max(2 * (n - len(rows)), 8))]
        index += len(batch)
        done = [row for row in imap_tasks(fn, batch, workers, progress=False, desc="render",
                                          total=len(batch), count=lambda _r: 1)
                if row is not None]
        rows += sorted(done, key=lambda row: row["index"])[: n - len(rows)]
    return rows


def generate_splits(job: SynthJob, splits: dict[str, int], workers: int,
                    progress: bool = True) -> dict[str, Any]:
    """One dataset folder per split under ``job.out`` plus ``dataset.json`` (provenance)."""
    t0 = time.perf_counter()
    per_split = {sub.split: generate(sub, workers, progress) for sub in split_jobs(job, splits)}
    elapsed = time.perf_counter() - t0
    total_n = sum(r["sessions"] for r in per_split.values())
    total_bytes = sum(r["bytes"] for r in per_split.values())
    write_dataset_info(job, {k: v["sessions"] for k, v in per_split.items()})
    return {"sessions": total_n, "seconds": elapsed, "sessions_per_s": total_n / elapsed,
            "bytes": total_bytes, "bytes_per_1000": total_bytes / total_n * 1000,
            "workers": workers, "splits": per_split}


def split_jobs(job: SynthJob, splits: dict[str, int]) -> list[SynthJob]:
    """One job per non-empty split, writing to ``job.out/<split>`` (created)."""
    Path(job.out).mkdir(parents=True, exist_ok=True)
    return [replace(job, out=str(Path(job.out) / split), n=n, split=split)
            for split, n in splits.items() if n > 0]


def write_dataset_info(job: SynthJob, sessions: dict[str, int], **fields: Any) -> None:
    """``job.out/dataset.json``: how the dataset was rendered (``fields`` add or override)."""
    info = {"generator": "flashfas-edge synth", "format": "flashfas-sessions", "version": 1,
            "seed": job.seed, "protocol": job.protocol, "width": job.width,
            "height": job.height, "frames": job.frames, "levels": list(job.levels),
            "challenge_family": job.challenge_family,
            "state_duration_us": job.state_duration_us, "physics": job.physics,
            "mask_materials": list(job.mask_materials), "face_shape": job.face_shape,
            "ablations": list(job.ablations), "splits": sessions, **fields}
    (Path(job.out) / "dataset.json").write_text(json.dumps(info, indent=1, sort_keys=True))


def sizes_for(split: str, n: int) -> dict[str, int]:
    return split_sizes(n) if split == "all" else {split: n}
