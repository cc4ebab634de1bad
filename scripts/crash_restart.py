"""Crash the daemon in the middle of checks and check the audit log after each restart.

Each round starts `serve --sim`, runs one check, starts another and kills the daemon with SIGKILL
at a random moment while that check is running (its flash playing, its frames being captured or
scored), then starts the daemon again and verifies: every line of the audit log parses, the killed
check has exactly one line, ``reason: "interrupted"``, and no in-flight marker is left.

    python scripts/crash_restart.py --rounds 10

Loopback only; every daemon it starts is stopped (SIGKILL or SIGTERM) before it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

KEY = "x" * 48
AUTH = {"Authorization": f"Bearer {KEY}"}


def _start(config: Path) -> tuple[subprocess.Popen[str], str, float]:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flashfas_edge.cli", "serve", "--sim", "--config", str(config),
         "--log-level", "error"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = proc.stdout.readline().split("listening on ", 1)[1].strip()  # type: ignore[union-attr]
    deadline = time.monotonic() + 120
    while httpx.get(f"{url}/v1/health", timeout=5).status_code != 200:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the daemon did not become ready")
        time.sleep(0.1)
    return proc, url, time.monotonic() - t0


def _post_ignoring_death(url: str) -> None:
    try:
        httpx.post(f"{url}/v1/liveness", headers=AUTH, timeout=30)
    except httpx.TransportError:
        pass  # the daemon was killed before it answered: expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="flashfas-crash-"))
    (work / "api-key").write_text(KEY + "\n")
    (work / "api-key").chmod(0o600)
    audit_path = work / "audit.jsonl"
    marker = audit_path.with_name(audit_path.name + ".inflight")
    config = work / "flashfas-edge.toml"
    config.write_text(f'[server]\nport = 0\napi_key_file = "{work / "api-key"}"\n'
                      f'[audit]\npath = "{audit_path}"\n'
                      "[kiosk.camera]\nwidth = 320\nheight = 240\n")
    failures: list[str] = []
    kill_delays_ms: list[float] = []
    restart_s: list[float] = []
    proc, url, _ = _start(config)
    try:
        for round_no in range(args.rounds):
            httpx.post(f"{url}/v1/liveness", headers=AUTH, timeout=30)
            pending = threading.Thread(target=_post_ignoring_death, args=(url,), daemon=True)
            pending.start()
            deadline = time.monotonic() + 10
            while not marker.exists():
                if time.monotonic() > deadline:
                    raise RuntimeError("the check never started")
                time.sleep(0.001)
            killed_id = json.loads(marker.read_text())["check_id"]
            delay_s = rng.uniform(0.0, 0.4)  # anywhere in the flash, capture or scoring
            time.sleep(delay_s)
            finished_first = not marker.exists()
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            pending.join(timeout=30)
            kill_delays_ms.append(delay_s * 1000)
            proc, url, took_s = _start(config)
            restart_s.append(took_s)
            try:
                lines = [json.loads(x) for x in audit_path.read_text().splitlines()]
            except ValueError as exc:
                failures.append(f"round {round_no}: the audit log does not parse: {exc}")
                continue
            mine = [x for x in lines if x.get("check_id") == killed_id]
            if len(mine) != 1:
                failures.append(f"round {round_no}: {len(mine)} lines for the killed check")
            elif not finished_first and mine[0]["reason"] != "interrupted":
                failures.append(f"round {round_no}: killed check recorded as {mine[0]}")
            if marker.exists():
                failures.append(f"round {round_no}: the in-flight marker was left")
            print(f"round {round_no}: killed {delay_s * 1000:.0f} ms into check "
                  f"{killed_id[:8]} ({'already answered' if finished_first else 'running'}); "
                  f"restart {took_s:.1f} s; {len(lines)} lines parse; "
                  f"recorded as {mine[0]['reason'] if mine else None}", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    lines = [json.loads(x) for x in audit_path.read_text().splitlines()]
    interrupted = sum(1 for x in lines if x.get("reason") == "interrupted")
    print(json.dumps({"rounds": args.rounds, "audit_lines": len(lines),
                      "interrupted_lines": interrupted,
                      "restart_to_ready_s_max": round(max(restart_s), 1),
                      "failures": failures}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
