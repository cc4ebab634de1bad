"""Replay acceptance on the simulated kiosk, through the REST API (docs/SAFETY.md §4).

For each of ``--n`` live checks (fresh seeds, office light): record the check (the daemon keeps its
frames), switch the virtual camera to ``injected_replay`` (that recording, restarted when the next
sequence's first light reaches the camera: an attacker who watches the kiosk and aligns the
replay), run one fresh check against it and count the answers. The lock-out is off
(``[lockout] cooldown_s = 0``) so every replay is tried. ``--baseline`` runs the challenge of
earlier releases (every order of the five levels, one fixed state duration) for comparison.

Prints the observed acceptances, the exact one-sided 95 % upper bound (Clopper–Pearson) and the
analytic match probability of the configured challenge family (1 / the number of challenges). How
many of those challenges a recording's frames really tell apart is measured by
``measure_replay_space.py``.

    .venv/bin/python scripts/measure_replay.py --n 200 --json replay.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from flashfas_edge.api.client import ApiClientError, LivenessClient
from flashfas_edge.capture.base import CameraInfo
from flashfas_edge.pipeline.challenge import challenge_timing
from flashfas_edge.pipeline.config import ChallengeConfig
from flashfas_edge.pipeline.replay_space import challenge_space, upper_bound_95
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.tools.demo import DaemonProcess, demo_config, wait_ready


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="recorded checks to replay")
    parser.add_argument("--baseline", action="store_true",
                        help="the earlier challenge: all 120 orders, fixed timing")
    parser.add_argument("--bundle", type=Path, default=Path("engines/edge-default"))
    parser.add_argument("--json", type=Path, help="write the counts here")
    parser.add_argument("--flash", choices=("sim", "led-sim"), default="sim",
                        help="the simulated flash, or the LED-panel driver on the firmware's "
                        "simulator (docs/LED_PANEL.md)")
    args = parser.parse_args()
    challenge = (ChallengeConfig(timing_steps=1, max_flashes_per_challenge=3, frame_lock=False)
                 if args.baseline else ChallengeConfig())
    recorded: Counter[str] = Counter()
    replayed: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="flashfas-replay-") as tmp:
        directory = Path(tmp)
        config_path, key = demo_config(directory, args.bundle, flash=args.flash)
        extra = ["[lockout]", "cooldown_s = 0.0", "max_mismatches = 1000"]
        if args.baseline:
            extra += ["[pipeline.challenge]", "timing_steps = 1", "max_flashes_per_challenge = 3",
                      "frame_lock = false"]
        config_path.write_text(config_path.read_text() + "\n".join(extra) + "\n")
        daemon = DaemonProcess(config_path, directory / "daemon.log")
        started = time.monotonic()
        try:
            url = daemon.wait_for_url(60)
            with LivenessClient(url, key, timeout_s=60) as client:
                wait_ready(client, daemon, 120)
                for i in range(args.n):
                    client.set_sim_scene("live", ambient="office", seed=5000 + i)
                    try:
                        first = client.check()
                    except ApiClientError as exc:  # e.g. 503: a starved simulated camera
                        recorded[f"error/{exc.code}"] += 1
                        continue
                    recorded[first["verdict"]] += 1
                    if first["verdict"] != "live":
                        continue  # only a recording the daemon accepted is worth replaying
                    client.set_sim_scene("injected_replay")
                    try:
                        answer = client.check()
                    except ApiClientError as exc:  # no answer: not a try
                        replayed[f"error/{exc.code}"] += 1
                        continue
                    replayed[f"{answer['verdict']}/{answer['reason']}"] += 1
                    if (i + 1) % 20 == 0:
                        print(f"{i + 1}/{args.n}: {dict(replayed)}", flush=True)
        finally:
            daemon.stop()
    tries = sum(v for k, v in replayed.items() if not k.startswith("error/"))
    accepted = sum(v for k, v in replayed.items() if k.startswith("live/"))
    # the daemon's own rule (Pipeline.challenge_timing) on the simulated kiosk's camera; both
    # flash surfaces here hold their timing
    profile = PROFILE_BY_NAME["kiosk15_mipi"]
    camera = CameraInfo(640, 480, profile.fps, profile.exposure_us, profile.readout_us)
    timing, _phase = challenge_timing(challenge, camera, profile.display_rise_us,
                                      holds_timing=True)
    space = challenge_space(challenge, "white_levels", timing)
    safe, patterns, analytic = len(space.play_orders), space.timing_patterns, 1.0 / space.size
    result = {
        "challenge": "baseline (120 orders, fixed timing)" if args.baseline else "default",
        "flash": args.flash,
        "recorded_checks": dict(recorded),
        "replays": tries,
        "replay_answers": dict(replayed),
        "accepted": accepted,
        "observed_rate": accepted / tries if tries else None,
        "upper_bound_95": upper_bound_95(accepted, tries) if tries else None,
        "safe_orders": safe,
        "frame_locked": timing.locked,
        "timing_patterns": patterns,
        "analytic_match_probability": analytic,
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
