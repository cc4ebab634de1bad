"""Soak the daemon: `serve --sim` on a loopback port, one check a second for a bounded time.

Every few seconds the simulated scene changes (live, print, replay, mask), so checks of every
kind go through the real API, pipeline and model. At the end it reports checks answered, the
daemon's memory (RSS) and open file descriptors over time, and whether the accounting is exact:
answers received = audit lines = /metrics counters. Exits 1 if the accounting differs, memory grew
by more than --max-rss-growth-mb after the warm-up minute, or descriptors leaked.

    python scripts/soak_daemon.py --minutes 20 --out soak.json

Loopback only; bounded in count and time; stops the daemon with SIGTERM at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

SCENES = ("live", "print", "replay", "mask")


def _proc_stats(pid: int) -> tuple[float, int]:
    """(RSS in MiB, open file descriptors) of a process, from /proc."""
    rss_kib = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
    return rss_kib / 1024.0, len(os.listdir(f"/proc/{pid}/fd"))


def _metric_total(text: str, name: str) -> float:
    return sum(float(m.group(1)) for m in re.finditer(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text,
                                                      re.MULTILINE))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=1.0, help="checks per second")
    parser.add_argument("--scene-every", type=int, default=5, help="checks per scene")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--max-rss-growth-mb", type=float, default=50.0)
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="flashfas-soak-"))
    key = "s" * 48
    (work / "api-key").write_text(key + "\n")
    (work / "api-key").chmod(0o600)
    config = work / "flashfas-edge.toml"
    config.write_text(
        f'[server]\nport = 0\napi_key_file = "{work / "api-key"}"\n'
        f'[audit]\npath = "{work / "audit.jsonl"}"\nmax_bytes = 104857600\n'
        f"[kiosk.camera]\nwidth = {args.width}\nheight = {args.height}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashfas_edge.cli", "serve", "--sim", "--config", str(config),
         "--log-level", "warning"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    auth = {"Authorization": f"Bearer {key}"}
    answers: dict[int, int] = {}
    verdicts: dict[str, int] = {}
    latencies_ms: list[float] = []
    samples: list[dict[str, float]] = []
    try:
        url = proc.stdout.readline().split("listening on ", 1)[1].strip()  # type: ignore[union-attr]
        http = httpx.Client(base_url=url, headers=auth, timeout=30)
        deadline = time.monotonic() + 120
        while http.get("/v1/health").status_code != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                print("the daemon did not become ready", file=sys.stderr)
                return 2
            time.sleep(0.2)
        t_start = time.monotonic()
        end = t_start + args.minutes * 60
        period_s = 1.0 / args.rate
        n = 0
        next_sample = t_start
        while time.monotonic() < end:
            if n % args.scene_every == 0:
                scene = SCENES[(n // args.scene_every) % len(SCENES)]
                http.put("/v1/sim/scene", json={"scene": scene, "seed": n})
            sent = time.monotonic()
            r = http.post("/v1/liveness", json={"client_ref": f"soak-{n}"})
            latencies_ms.append((time.monotonic() - sent) * 1000)
            answers[r.status_code] = answers.get(r.status_code, 0) + 1
            if r.status_code == 200:
                verdict = f'{r.json()["verdict"]}/{r.json()["reason"]}'
                verdicts[verdict] = verdicts.get(verdict, 0) + 1
            n += 1
            if time.monotonic() >= next_sample:
                rss, fds = _proc_stats(proc.pid)
                samples.append({"t_s": round(time.monotonic() - t_start, 1), "rss_mb": rss,
                                "fds": fds})
                next_sample += 30
            time.sleep(max(0.0, sent + period_s - time.monotonic()))
        rss, fds = _proc_stats(proc.pid)
        samples.append({"t_s": round(time.monotonic() - t_start, 1), "rss_mb": rss, "fds": fds})
        metrics = http.get("/metrics").text
        status = http.get("/v1/status").json()
        http.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            exit_code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            exit_code = -9
    audit = [json.loads(line) for line in (work / "audit.jsonl").read_text().splitlines()]
    audited_200 = sum(1 for line in audit if line["http_status"] == 200)
    counted = _metric_total(metrics, "flashfas_checks_total")
    rejected = _metric_total(metrics, "flashfas_requests_rejected_total")
    warm = [s for s in samples if s["t_s"] >= 60] or samples
    report = {
        "minutes": args.minutes, "checks_sent": sum(answers.values()),
        "answers_by_status": answers, "verdicts": verdicts,
        "request_to_verdict_ms": {"p50": round(statistics.median(latencies_ms), 1),
                                  "p95": round(sorted(latencies_ms)[int(0.95 * len(latencies_ms))
                                                                    ], 1),
                                  "max": round(max(latencies_ms), 1)},
        "audit_lines": len(audit), "audit_lines_answered_200": audited_200,
        "metrics_checks_total": counted, "metrics_rejected_total": rejected,
        "status_counters_total": sum(status["counters"].values()),
        "rss_mb": {"after_warmup": round(warm[0]["rss_mb"], 1),
                   "end": round(samples[-1]["rss_mb"], 1),
                   "max": round(max(s["rss_mb"] for s in samples), 1)},
        "fds": {"after_warmup": warm[0]["fds"], "end": samples[-1]["fds"],
                "max": max(s["fds"] for s in samples)},
        "daemon_exit_code": exit_code, "samples": samples,
    }
    problems = []
    if not (answers.get(200, 0) == audited_200 == counted == report["status_counters_total"]):
        problems.append("accounting differs between answers, audit log and metrics")
    if len(audit) != sum(answers.values()):
        problems.append("audit lines differ from checks sent")
    growth = report["rss_mb"]["end"] - report["rss_mb"]["after_warmup"]
    if growth > args.max_rss_growth_mb:
        problems.append(f"memory grew by {growth:.1f} MiB after the warm-up")
    if report["fds"]["end"] > report["fds"]["after_warmup"] + 5:
        problems.append("file descriptors leaked")
    if exit_code != 0:
        problems.append(f"the daemon exited {exit_code} on SIGTERM")
    report["problems"] = problems
    shown = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(shown, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
