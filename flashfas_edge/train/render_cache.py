"""Render sessions straight into aligned training caches (``synth --aligned-cache``).

A rendered 640×480 session is ~4.5 MB on disk and is read back only to be aligned into a 64×64 or
128×128 training sample (60–250 kB). When a dataset is rendered only to train on, this skips the
session files: each worker renders a range of sessions, aligns every one at each requested size,
and the parent writes one cache folder per size where ``train --data`` looks for it
(``splits.cache_dir_for``). Samples depend only on (seed, split, index), exactly as with the full
``synth``, so the cache equals the one ``train`` would build from the same ``synth`` folder.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flashfas_edge.sim.synth_dataset import (
    SynthJob,
    imap_tasks,
    render_sample,
    split_jobs,
    write_dataset_info,
)
from flashfas_edge.train.cache import skip_reason, write_cache
from flashfas_edge.train.sample import AlignedSample, SampleError, align_session
from flashfas_edge.train.splits import cache_dir_for

MARKER = "ALIGNED_ONLY.json"  # in each split folder: it holds no session files


def _render_range(
    args: tuple[SynthJob, int, int, tuple[int, ...]],
) -> tuple[int, dict[int, list[AlignedSample]], Counter[str]]:
    job, lo, hi, sizes = args
    import cv2

    cv2.setNumThreads(1)
    samples: dict[int, list[AlignedSample]] = {size: [] for size in sizes}
    skipped: Counter[str] = Counter()
    for index in range(lo, hi):
        session = render_sample(job, index)
        try:
            aligned = [align_session(session, size) for size in sizes]
        except SampleError as exc:
            skipped[skip_reason(exc)] += 1
            continue
        for size, sample in zip(sizes, aligned, strict=True):
            samples[size].append(sample)
    return lo, samples, skipped


def render_split_caches(
    job: SynthJob, sizes: tuple[int, ...], workers: int, progress: bool = True
) -> dict[str, Any]:
    """Render ``job.n`` sessions of ``job.split`` into one aligned cache per size."""
    if job.n <= 0:
        raise ValueError("the number of sessions must be positive")
    if not sizes or min(sizes) < 32:
        raise ValueError(f"aligned sizes must be ≥ 32, got {sizes}")
    split_dir = Path(job.out)
    split_dir.mkdir(parents=True, exist_ok=True)
    chunk = job.shard_size
    tasks = [(job, lo, min(lo + chunk, job.n), sizes) for lo in range(0, job.n, chunk)]
    parts: dict[int, dict[int, list[AlignedSample]]] = {}
    skipped: Counter[str] = Counter()
    t0 = time.perf_counter()
    for lo, samples, skips in imap_tasks(
        _render_range, tasks, workers, progress=progress, desc=f"synth+align {job.split}",
        total=job.n, count=lambda result: min(result[0] + chunk, job.n) - result[0],
    ):
        parts[lo] = samples
        skipped.update(skips)
    source = str(split_dir.resolve())
    caches = {}
    for size in sizes:
        ordered = [s for lo in sorted(parts) for s in parts[lo][size]]
        info = write_cache(ordered, cache_dir_for(split_dir, size, None), size, skipped, source)
        caches[size] = info["count"]
    marker = {"generator": "flashfas-edge synth --aligned-cache", "job": asdict(job),
              "sizes": list(sizes), "samples": caches, "skipped": dict(skipped)}
    (split_dir / MARKER).write_text(json.dumps(marker, indent=1))
    return {"split": job.split, "sessions": job.n, "seconds": time.perf_counter() - t0,
            "samples": caches, "skipped": dict(skipped)}


def render_caches(
    job: SynthJob, splits: dict[str, int], sizes: tuple[int, ...], workers: int,
    progress: bool = True,
) -> dict[str, Any]:
    """``generate_splits`` for training-only datasets: OUT/<split>/ + caches + dataset.json."""
    per_split = {
        sub.split: render_split_caches(sub, sizes, workers, progress)
        for sub in split_jobs(job, splits)
    }
    write_dataset_info(job, {k: v["sessions"] for k, v in per_split.items()},
                       format="flashfas-aligned-cache", frames="aligned",
                       aligned_sizes=list(sizes))
    return {"sessions": sum(v["sessions"] for v in per_split.values()), "splits": per_split}
