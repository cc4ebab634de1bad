#!/usr/bin/env python3
"""One short GPU lease: render the training data, run a queue of (config, seed) trainings, pack.

The sweep behind docs/RESULTS.md's multi-seed rows. It is written for a bare, borrowed GPU
machine with a hard time limit, so it (1) renders dataset A (seed 1: train/dev/test) and dataset B
(seed 3: train) straight into aligned caches with ``synth --aligned-cache``, (2) runs the jobs in
priority order as ``flashfas-edge ablate`` subprocesses, a few at once on the one GPU (a single
small-batch run keeps a GPU mostly idle: it is bound by Python's kernel launches), (3) stops
starting jobs at the soft deadline and kills what still runs at the hard one, and (4) packs every
finished run (best checkpoint without optimiser state, result.json, history.json) and the logs into
OUT as ≤15 MB parts. Nothing is scored here beyond ablate's own dev/test rows: the checkpoints are
scored again on the build machine's canonical test splits.

    python3 scripts/gpu_sweep.py OUT --budget 520 --lanes 6
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

ABLATIONS = (
    "ablation-wo-memm",
    "ablation-memm-avg",
    "ablation-memm-sum",
    "ablation-memm-cat",
    "ablation-wo-memm-att",
    "ablation-memm-att",
    "ablation-memm-rg",
    "ablation-memm-rg-att",
    "ablation-memm-tg",
    "ablation-wo-dn",
    "ablation-aurora-guard",
    "moesa",
    "baseline-binary-cnn",
)


def job_queue() -> list[tuple[str, int]]:
    """(config, seed) in priority order: the 128² candidates and the full model's missing seeds
    first, then one seed of every ablation row before the second and third."""
    jobs = [("edge128-relight", s) for s in (0, 1, 2)] + [("edge", 1), ("edge", 2)]
    jobs += [(c, 0) for c in ABLATIONS] + [("edge128", 0)]
    jobs += [(c, 1) for c in ABLATIONS] + [("edge128", 1)]
    jobs += [(c, 2) for c in ABLATIONS] + [("edge128", 2)]
    return jobs


class Sweep:
    def __init__(self, out: Path, work: Path, budget: float, lanes: int, epochs: int) -> None:
        self.out, self.work, self.lanes, self.epochs = out, work, lanes, epochs
        self.t0 = time.monotonic()
        self.hard = self.t0 + budget - 25  # leave time to pack
        self.soft = self.hard - 60  # no job starts later than this
        self.lock = threading.Lock()
        self.queue = job_queue()
        self.ok = 0
        self.failed = 0
        self.running = True
        self.log_file = (out / "sweep.log").open("a")

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f}s] {text}"
        print(line, flush=True)
        with self.lock:
            self.log_file.write(line + "\n")
            self.log_file.flush()

    def run(self, cmd: list[str], log: Path, env: dict | None = None) -> int:
        """Outside the source tree, so that the installed package (with _core) is imported."""
        with log.open("w") as f:
            return subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=self.work)

    def render(self, workers: int, sessions: tuple[int, int] = (2400, 3000)) -> bool:
        """Dataset A (seed 1, all splits) and B (seed 3, train) as aligned caches."""
        cli = [sys.executable, "-m", "flashfas_edge.cli", "synth", "--aligned-cache", "64,128",
               "--workers", str(workers), "--no-progress"]
        n_a, n_b = sessions
        for name, extra in (("dsA", ["--n", str(n_a), "--seed", "1"]),
                            ("dsB", ["--n", str(n_b), "--seed", "3", "--split", "train"])):
            start = time.monotonic()
            rc = self.run([*cli, "--out", str(self.work / name), *extra],
                          self.out / f"synth-{name}.log")
            self.log(f"synth {name}: rc {rc} in {time.monotonic() - start:.0f} s")
            if rc:
                return False
        return True

    def lane(self, k: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        while True:
            with self.lock:
                if self.failed >= 3 and self.ok == 0:
                    self.queue.clear()  # something is broken: give the machine back early
                if not self.queue or time.monotonic() > self.soft:
                    return
                config, seed = self.queue.pop(0)
            tag = f"{config}-s{seed}"
            cmd = [sys.executable, "-m", "flashfas_edge.cli", "ablate", "--configs", config,
                   "--seeds", str(seed), "--data", str(self.work / "dsA"),
                   "--extra-train", str(self.work / "dsB"), "--out", str(self.work / "runs"),
                   "--epochs", str(self.epochs), "--threads", "1", "--no-progress"]
            start = time.monotonic()
            self.log(f"lane {k}: start {tag}")
            with (self.work / "logs" / f"{tag}.log").open("w") as f:
                proc = subprocess.Popen(
                    cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=self.work
                )
                while proc.poll() is None:
                    if time.monotonic() > self.hard:
                        proc.kill()
                        proc.wait()
                        self.log(f"lane {k}: killed {tag} at the deadline")
                        return
                    time.sleep(1.0)
            self.log(f"lane {k}: {tag} rc {proc.returncode} in {time.monotonic() - start:.0f} s")
            with self.lock:
                if proc.returncode == 0:
                    self.ok += 1
                else:
                    self.failed += 1
            if proc.returncode:
                tail = (self.work / "logs" / f"{tag}.log").read_text()[-1500:]
                self.log(f"{tag} failed:\n{tail}")

    def monitor(self) -> None:
        """GPU load every 20 s: is the GPU or Python's kernel launching the bottleneck?"""
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader"]
        while self.running:
            try:
                load = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError) as exc:
                load = f"nvidia-smi: {exc}"
            self.log(f"gpu {load.strip()}; runs ok {self.ok}, failed {self.failed}")
            for _ in range(20):
                if not self.running:
                    return
                time.sleep(1.0)

    def train_all(self) -> None:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        watcher = threading.Thread(target=self.monitor, daemon=True)
        watcher.start()
        threads = [threading.Thread(target=self.lane, args=(k,)) for k in range(self.lanes)]
        for t in threads:
            t.start()
            time.sleep(2.0)  # stagger the data loading
        for t in threads:
            t.join()
        self.running = False

    def pack(self) -> None:
        import torch

        stage = self.work / "pack"
        shutil.rmtree(stage, ignore_errors=True)
        stage.mkdir()
        runs = self.work / "runs"
        done = 0
        for run in sorted(runs.glob("*-s*")) if runs.is_dir() else []:
            if not run.is_dir():
                continue
            dest = stage / run.name
            dest.mkdir()
            for name in ("result.json", "history.json"):
                if (run / name).is_file():
                    shutil.copy(run / name, dest / name)
            if (run / "result.json").is_file() and (run / "best.pt").is_file():
                state = torch.load(run / "best.pt", map_location="cpu", weights_only=False)
                for key in ("optimizer", "scheduler"):
                    state.pop(key, None)
                torch.save(state, dest / "best.pt")
                done += 1
        if (self.work / "logs").is_dir():
            shutil.copytree(self.work / "logs", stage / "logs")
        archive = self.work / "runs.tgz"
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(stage, arcname="sweep")
        data = archive.read_bytes()
        part = 15 * 1024 * 1024
        for i in range(0, len(data), part):
            (self.out / f"runs.tgz.part{i // part:02d}").write_bytes(data[i : i + part])
        self.log(f"packed {done} finished runs, {len(data) / 1e6:.1f} MB")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--work", type=Path, default=Path("/tmp/sweep"))
    p.add_argument("--budget", type=float, default=520, help="seconds for the whole script")
    p.add_argument("--lanes", type=int, default=6, help="trainings at once on the GPU")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--epochs", type=int, default=7)
    p.add_argument("--smoke", action="store_true", help="tiny data, tiny config: rehearsal")
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    sweep = Sweep(args.out, args.work, args.budget, args.lanes, args.epochs)
    try:
        import torch

        sweep.log(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}, "
                  f"{torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}")
    except ImportError as exc:
        sweep.log(f"no torch: {exc}")
        return 1
    if args.smoke:
        sweep.queue = [("edge", 0), ("ablation-wo-dn", 0), ("edge128-relight", 0)]
    ok = sweep.render(args.workers, (60, 20) if args.smoke else (2400, 3000))
    if ok:
        sweep.train_all()
    sweep.pack()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
