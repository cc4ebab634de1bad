"""Synthetic data throughput: sessions per second and bytes on disk per 1000 sessions.

    python benchmarks/bench_synth.py                 # 5-frame 640×480 sessions on all cores
    python benchmarks/bench_synth.py --n 64 --workers 1 --width 320 --height 240

Runs the real ``synth`` path (render → shard writer) into a temporary folder, then prints one JSON
line: sessions/s, the projected time for a 20 000-session training set, bytes per 1000 sessions
as written (uncompressed shards) and with ``--compress``, and a per-stage split of one process.

Baselines measured in the same run, each with its ratio:
- the workers' wall-clock rate against what one process's CPU time per session promises on every
  core (parallel efficiency; below 1 where other jobs share the cores);
- the simulated kiosk's frame render (``SimKiosk.render_frame``, the virtual camera's cost per
  frame at this resolution) against the 30 fps frame period. Target: it fits in the period, with
  the render, the pipeline and the daemon sharing the cores. When it does not, the virtual camera
  falls behind and checks end in ``retry / no_clean_frame`` (benchmarks/bench_e2e.py).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

FPS = 30.0  # the simulated kiosk's camera


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--frames", choices=("clean", "all"), default="clean")
    args = ap.parse_args()

    from flashfas_edge.data.dataset_format import write_shard
    from flashfas_edge.sim.frame_composer import FrameComposer
    from flashfas_edge.sim.protocol import draw_request
    from flashfas_edge.sim.scene import build_scene
    from flashfas_edge.sim.synth_dataset import SynthJob, generate, render_sample

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory() as tmp:
        job = SynthJob(out=str(Path(tmp) / "ds"), n=args.n, seed=123, width=args.width,
                       height=args.height, frames=args.frames)
        summary = generate(job, workers=args.workers, progress=False)
        rate = args.n / summary["seconds"]
        sample = [render_sample(job, i) for i in range(4)]
        comp_path = Path(tmp) / "c.npz"
        comp_bytes = write_shard(comp_path, sample, compress=True) / len(sample)

    # one process: scene (geometry + basis images) vs frames (composition + sensor)
    t_scene, t_frames = [], []
    for i in range(6):
        req = draw_request(7, i, "train", width=args.width, height=args.height)
        t0 = time.perf_counter()
        scene = build_scene(req)
        t1 = time.perf_counter()
        comp = FrameComposer(scene, readout_us=16000)
        colours = np.ones((2, 3), np.float32)
        rng = np.random.default_rng(i)
        for k in range(5):
            comp.develop(comp.linear_frame(k * 33_333.0, 0.0, colours[:1].repeat(2, 0),
                                           np.array([0.0]), 10**9), rng)
        t_frames.append((time.perf_counter() - t1) / 5)
        t_scene.append(t1 - t0)
    # the virtual camera's cost per frame, at the same resolution (what the daemon's --sim pays)
    from flashfas_edge.sim.device import PROFILE_BY_NAME
    from flashfas_edge.sim.kiosk import SimKiosk, monotonic_us

    kiosk = SimKiosk(PROFILE_BY_NAME["kiosk15_mipi"], width=args.width, height=args.height)
    kiosk.render_frame(monotonic_us())
    t_render = []
    for _ in range(20):
        t0 = time.perf_counter()
        kiosk.render_frame(monotonic_us())
        t_render.append(time.perf_counter() - t0)
    render_ms = 1e3 * float(np.median(t_render))
    period_ms = 1e3 / FPS
    # CPU seconds of whole sessions in this process: what the cores would give without the
    # other jobs of a shared machine (wall-clock rates above include their load)
    cpu0 = time.process_time()
    n_cpu = 6
    for i in range(n_cpu):
        render_sample(job, 100 + i)
    cpu_per_session = (time.process_time() - cpu0) / n_cpu
    out = {
        "sessions": args.n, "workers": args.workers, "resolution": [args.width, args.height],
        "frames_per_session": summary["mean_frames"], "sessions_per_s": round(rate, 2),
        "minutes_for_20000": round(20000 / rate / 60, 1),
        "bytes_per_1000_sessions": int(summary["bytes"] / args.n * 1000),
        "bytes_per_1000_sessions_compressed": int(comp_bytes * 1000),
        "one_process_scene_s": round(float(np.median(t_scene)), 3),
        "one_process_frame_s": round(float(np.median(t_frames)), 4),
        "cpu_s_per_session": round(cpu_per_session, 3),
        "sessions_per_s_if_cores_were_free": round((os.cpu_count() or 1) / cpu_per_session, 2),
        "kiosk_frame_render_ms": round(render_ms, 2),
        "frame_period_ms": round(period_ms, 2),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    cores = min(args.workers, os.cpu_count() or 1)
    ideal = cores / cpu_per_session
    out["parallel_efficiency"] = round(rate / ideal, 2)
    out["target_render_within_frame_period"] = render_ms < period_ms
    print(json.dumps(out))
    print(f"baseline: {cores} x one process's CPU time per session "
          f"({cpu_per_session:.2f} s) promises {ideal:.2f} sessions/s; measured {rate:.2f}: "
          f"ratio {rate / ideal:.2f} (load average {out['load_average_1min']})")
    print(f"baseline: the {FPS:g} fps frame period {period_ms:.1f} ms; the simulated kiosk renders "
          f"a {args.width}x{args.height} frame in {render_ms:.1f} ms (median of 20): ratio "
          f"{render_ms / period_ms:.2f}, target < 1: "
          f"{'holds' if render_ms < period_ms else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
