"""Rendered sessions straight into aligned training caches (``synth --aligned-cache``).

A rendered 640×480 session is ~4.5 MB on disk and is read back only to be aligned into a 64×64 or
128×128 training sample (60–250 kB). When a dataset is rendered only to train on, this skips the
session files: each worker renders a range of sessions, aligns every one at each requested size,
and the parent writes one cache folder per size where ``train --data`` looks for it
(``splits.cache_dir_for``).

The renderer is an argument (``render(index) -> Session``, picklable for the worker processes)
and so is the task runner: training code does not import the simulator. ``synth`` passes its own
``render_sample`` for the split, so samples depend only on (seed, split, index), exactly as with
the full ``synth``, and the cache equals the one ``train`` would build from the same session files.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from flashfas_edge.data.session import Session
from flashfas_edge.train.cache import skip_reason, write_cache
from flashfas_edge.train.sample import AlignedSample, SampleError, align_session
from flashfas_edge.train.splits import cache_dir_for

MARKER = "ALIGNED_ONLY.json"  # in each split folder: it holds no session files

SessionRenderer = Callable[[int], Session]
_Range = tuple[SessionRenderer, int, int, tuple[int, ...]]
_RangeResult = tuple[int, dict[int, list[AlignedSample]], Counter[str]]


class TaskRunner(Protocol):
    """Runs ``fn`` over ``tasks`` (in worker processes), results in any order, with a progress
    count of ``total`` sessions (``count(result)`` each) — ``sim.synth_dataset.imap_tasks``."""

    def __call__(self, fn: Callable[[_Range], _RangeResult], tasks: list[_Range], *, desc: str,
                 total: int, count: Callable[[_RangeResult], int]) -> Iterator[_RangeResult]: ...


def _render_range(args: _Range) -> _RangeResult:
    render, lo, hi, sizes = args
    import cv2

    cv2.setNumThreads(1)
    samples: dict[int, list[AlignedSample]] = {size: [] for size in sizes}
    skipped: Counter[str] = Counter()
    for index in range(lo, hi):
        session = render(index)
        try:
            aligned = [align_session(session, size) for size in sizes]
        except SampleError as exc:
            skipped[skip_reason(exc)] += 1
            continue
        for size, sample in zip(sizes, aligned, strict=True):
            samples[size].append(sample)
    return lo, samples, skipped


def render_split_caches(
    render: SessionRenderer,
    n: int,
    split_dir: Path,
    sizes: tuple[int, ...],
    run_tasks: TaskRunner,
    *,
    chunk: int = 16,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Render sessions 0…n−1 of one split with ``render`` into one aligned cache per size."""
    if n <= 0:
        raise ValueError("the number of sessions must be positive")
    if not sizes or min(sizes) < 32:
        raise ValueError(f"aligned sizes must be ≥ 32, got {sizes}")
    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    tasks: list[_Range] = [(render, lo, min(lo + chunk, n), sizes) for lo in range(0, n, chunk)]
    parts: dict[int, dict[int, list[AlignedSample]]] = {}
    skipped: Counter[str] = Counter()
    t0 = time.perf_counter()
    for lo, samples, skips in run_tasks(
        _render_range, tasks, desc=f"synth+align {split_dir.name}", total=n,
        count=lambda result: min(result[0] + chunk, n) - result[0],
    ):
        parts[lo] = samples
        skipped.update(skips)
    source = str(split_dir.resolve())
    caches = {}
    for size in sizes:
        ordered = [s for lo in sorted(parts) for s in parts[lo][size]]
        info = write_cache(ordered, cache_dir_for(split_dir, size, None), size, skipped, source)
        caches[size] = info["count"]
    marker = {"generator": "flashfas-edge synth --aligned-cache", **(provenance or {}),
              "sizes": list(sizes), "samples": caches, "skipped": dict(skipped)}
    (split_dir / MARKER).write_text(json.dumps(marker, indent=1))
    return {"split": split_dir.name, "sessions": n, "seconds": time.perf_counter() - t0,
            "samples": caches, "skipped": dict(skipped)}
