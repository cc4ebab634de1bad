"""How many live people land in a bundle's retry band, and whether trying again lets them in
(docs/RESULTS.md, "The shipped threshold").

A bundle thresholded for the worst attack type answers ``retry`` / ``score_uncertain`` to a score
between its dev EER point and its threshold. This script puts live people one after another in
front of the simulated kiosk (scanned faces, the renderer's landmarks) and runs the daemon's
pipeline on each; a person whose check lands in the band tries again, up to ``--tries`` checks in
all, each with a fresh challenge: the same person, room and camera, new flash timing and noise.
Reported per scenario: first-try answers, and of the people in the band how many pass at the
second try, within all tries, or never.

    .venv/bin/python scripts/retry_band.py --bundle engines/edge-default
    .venv/bin/python scripts/retry_band.py --bundle engines/edge-masks --json runs/band.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from flashfas_edge.face.config import LandmarkConfig
from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.inference.factory import create_backend
from flashfas_edge.pipeline.config import PipelineConfig
from flashfas_edge.pipeline.pipeline import Pipeline
from flashfas_edge.pipeline.result import CheckResult, Reason
from flashfas_edge.sim.ambient import SCENARIOS
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.sim.kiosk import SimKiosk, Subject
from flashfas_edge.sim.kiosk_camera import SimCamera
from flashfas_edge.sim.kiosk_flash import SimFlashDriver


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def check(kiosk: SimKiosk, pipeline: Pipeline, subject: Subject) -> CheckResult:
    """One check of ``subject``; asked again (3 tries) only when the loaded machine made the
    simulated camera drop a needed frame, as a kiosk's own retry would."""
    kiosk.set_subject(subject)
    time.sleep(0.1)
    result = pipeline.run_check()
    for _ in range(2):
        if result.reason is not Reason.NO_CLEAN_FRAME:
            break
        result = pipeline.run_check()
    return result


def summarise(rows: list[dict]) -> dict:
    band = [r for r in rows if r["tries"][0]["reason"] == Reason.SCORE_UNCERTAIN.value]
    return {
        "people": len(rows),
        "first_try": dict(Counter(f"{r['tries'][0]['verdict']}/{r['tries'][0]['reason']}"
                                  for r in rows)),
        "in_band_first_try": len(band),
        "band_pass_second_try": sum(len(r["tries"]) > 1 and r["tries"][1]["verdict"] == "live"
                                    for r in band),
        "band_pass_within_tries": sum(any(t["verdict"] == "live" for t in r["tries"])
                                      for r in band),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--people", type=int, default=30, help="people per scenario")
    parser.add_argument("--scenarios", default="office,dark_room,backlight",
                        help=f"comma-separated, of: {', '.join(SCENARIOS)}")
    parser.add_argument("--tries", type=int, default=3, help="checks per person at most")
    parser.add_argument("--seed", type=int, default=500, help="the first person's seed")
    parser.add_argument("--profile", default="kiosk15_mipi", choices=sorted(PROFILE_BY_NAME),
                        help="simulated kiosk build")
    parser.add_argument("--json", type=Path, help="write every try and the summary here")
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios.split(",") if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(SCENARIOS)}")
    profile = PROFILE_BY_NAME[args.profile]
    kiosk = SimKiosk(profile, seed=5)
    camera, flash = SimCamera(kiosk), SimFlashDriver(kiosk)
    camera.start()
    flash.start()
    backend = create_backend(args.bundle, "onnxruntime", intra_op_threads=1)
    pipeline = Pipeline(camera, flash, GroundTruthLandmarks(), backend,
                        PipelineConfig(latency_us=profile.latency_us,
                                       display_rise_us=profile.display_rise_us,
                                       landmarks=LandmarkConfig(provider="ground_truth")))
    rows: list[dict] = []
    try:
        for scenario in args.scenarios.split(","):
            for seed in range(args.seed, args.seed + args.people):
                subject = Subject("live", scenario, seed=seed)
                tries = []
                for _ in range(args.tries):
                    r = check(kiosk, pipeline, subject)
                    tries.append({"verdict": r.verdict.value, "reason": r.reason.value,
                                  "score": r.score})
                    if r.reason is not Reason.SCORE_UNCERTAIN:
                        break
                rows.append({"scenario": scenario, "seed": seed, "tries": tries})
    finally:
        pipeline.stop()
        flash.stop()
        camera.stop()
    report: dict = {"bundle": str(args.bundle), "threshold": pipeline.threshold,
              "spoof_below": pipeline.spoof_below, "all": summarise(rows),
              "per_scenario": {s: summarise([r for r in rows if r["scenario"] == s])
                               for s in args.scenarios.split(",")}}
    print(f"{args.bundle}: threshold {pipeline.threshold:.4f}, retry band from "
          f"{pipeline.spoof_below:.4f}")
    for name, part in [*report["per_scenario"].items(), ("all", report["all"])]:
        answers = ", ".join(f"{k} {v}" for k, v in sorted(part["first_try"].items()))
        print(f"  {name:10} {part['people']:3d} live people; first try: {answers}; in the band "
              f"{part['in_band_first_try']}, of them passing at the second try "
              f"{part['band_pass_second_try']}, within {args.tries} tries "
              f"{part['band_pass_within_tries']}")
    if args.json is not None:
        args.json.write_text(json.dumps({**report, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
