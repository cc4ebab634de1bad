"""How long the flash-safety governor makes a check wait after the one before (docs/SAFETY.md §2).

Draws challenges as the daemon does (frame-locked on the simulated kiosk's camera), plays
``--checks`` of them in a row with a random gap of 0 to ``--max-gap-ms`` between one's end and
the next request, and lets a ``FlashSafetyGovernor`` place each one. Reports, per idle screen the
governor counts against (the worst one, the simulated kiosk's grey 0.3 UI, a dark panel), how
often a check had to wait, the wait's mean and 90th percentile, and how many checks found no
start at all (``retry`` / ``flash_unsafe`` in the daemon). Nothing is rendered or played: the
schedules and the governor are the daemon's own.

    .venv/bin/python scripts/measure_safety_wait.py --runs 300 --checks 2 --max-gap-ms 150
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from flashfas_edge.capture.base import CameraInfo
from flashfas_edge.flash.base import DARK, FlashPlayback, FlashState
from flashfas_edge.flash.safety import FlashSafetyGovernor, UnsafeFlashError, schedule_steps
from flashfas_edge.pipeline.challenge import draw_challenge, locked_timing
from flashfas_edge.pipeline.config import ChallengeConfig
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.sim.schedule import IDLE_STATE

IDLES: dict[str, FlashState | None] = {"worst": None, "sim_grey_0.3": IDLE_STATE, "dark": DARK}


def measure(idle: FlashState | None, runs: int, checks: int, max_gap_ms: float,
            seed: int) -> dict[str, float | int]:
    """Waits of every check after the first, over ``runs`` rows of ``checks`` checks."""
    rng = np.random.default_rng(seed)
    config = ChallengeConfig()
    profile = PROFILE_BY_NAME["kiosk15_usb"]
    camera = CameraInfo(640, 480, float(profile.fps), profile.exposure_us, profile.readout_us)
    timing = locked_timing(config, camera)
    waits: list[float] = []
    refused = 0
    for _ in range(runs):
        governor = FlashSafetyGovernor(config.max_flashes_per_s, idle)
        now = 10_000_000
        for k in range(checks):
            schedule = draw_challenge(config, False, camera, None, timing)
            try:
                start = governor.earliest_start_us(schedule, now)
            except UnsafeFlashError:
                refused += 1
                break
            if k > 0:
                waits.append((start - now) / 1000)
            onsets = tuple(step.t_us for step in schedule_steps(schedule, start))
            governor.record(FlashPlayback(schedule, onsets, start + schedule.total_us))
            now = start + schedule.total_us + int(rng.uniform(0, max_gap_ms) * 1000)
    w = np.asarray(waits) if waits else np.zeros(1)
    return {"checks_after_another": len(waits), "waited": int((w > 0).sum()),
            "waited_share": round(float((w > 0).mean()), 3),
            "mean_wait_ms": round(float(w.mean()), 1),
            "p90_wait_ms": round(float(np.percentile(w, 90)), 1), "refused": refused}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="rows of checks")
    parser.add_argument("--checks", type=int, default=2, help="checks in a row")
    parser.add_argument("--max-gap-ms", type=float, default=150.0,
                        help="a check's request comes 0 to this long after the last one ended")
    parser.add_argument("--seed", type=int, default=0,
                        help="of the gaps (the challenges are secret draws, as in the daemon)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.checks < 2:
        parser.error("--runs must be ≥ 1 and --checks ≥ 2")
    report = {name: measure(idle, args.runs, args.checks, args.max_gap_ms, args.seed)
              for name, idle in IDLES.items()}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{args.runs} rows of {args.checks} checks, 0–{args.max_gap_ms:.0f} ms apart "
          f"(frame-locked, kiosk15_usb at 30 fps)")
    for name, r in report.items():
        print(f"  idle {name:<13} waited {r['waited']:4d} of {r['checks_after_another']:4d} "
              f"({r['waited_share']:.0%}), mean {r['mean_wait_ms']:6.1f} ms, "
              f"p90 {r['p90_wait_ms']:6.1f} ms, refused {r['refused']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
