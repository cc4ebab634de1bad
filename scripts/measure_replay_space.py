"""Replay match probability per try, measured over the challenge space (docs/SAFETY.md §4).

Runs ``--n`` live checks on the simulated kiosk in this process (the daemon's pipeline, the
bundle's networks, ground-truth landmarks, office light, fresh seeds) and keeps each accepted
check's frames and playback. Each recording is then replayed, perfectly aligned, against
challenges of the same configuration (flashfas_edge/pipeline/replay_space.py) and judged by
``Pipeline.verify_frames``:

- every timing pattern with the recording's own play order (``--patterns`` of them at random when
  the space has more), which measures how many timings the timing fit cannot tell apart;
- every safe play order with the recording's own timing (the order and colour check);
- ``--pairs`` challenges drawn uniformly from the whole space: the direct estimate.

The per-try probability is the share of the whole space a recording passes, averaged over
recordings; it is estimated twice: directly from the uniform draws (with its exact one-sided
95 % bound), and as P(order passes) × P(timing passes | own order) from the two slices, which
resolves figures far below 1 / (draws).

    .venv/bin/python scripts/measure_replay_space.py --n 200 --json replay-space.json
    .venv/bin/python scripts/measure_replay_space.py --n 100 --frame-lock-steps 5
    .venv/bin/python scripts/measure_replay_space.py --n 100 --free-timing --timing-steps 5 \
        --timing-step-us 12500
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

from flashfas_edge.face.ground_truth import GroundTruthLandmarks
from flashfas_edge.inference.factory import create_backend
from flashfas_edge.kiosk.recording import CheckRecording
from flashfas_edge.pipeline.config import PipelineConfig
from flashfas_edge.pipeline.pipeline import Pipeline
from flashfas_edge.pipeline.rejection import CheckRejected
from flashfas_edge.pipeline.replay_space import (
    challenge_space,
    pattern_of,
    play_order_of,
    replayed,
    upper_bound_95,
)
from flashfas_edge.pipeline.result import Reason, Verdict
from flashfas_edge.sim.device import PROFILE_BY_NAME
from flashfas_edge.sim.kiosk import SimKiosk, Subject
from flashfas_edge.sim.kiosk_camera import SimCamera
from flashfas_edge.sim.kiosk_flash import SimFlashDriver


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="live checks to record")
    parser.add_argument("--bundle", type=Path, default=Path("engines/edge-default"))
    parser.add_argument("--timing-steps", type=int, help="override [pipeline.challenge]")
    parser.add_argument("--timing-step-us", type=int, help="override [pipeline.challenge]")
    parser.add_argument("--frame-lock-steps", type=int, help="override [pipeline.challenge]")
    parser.add_argument("--free-timing", action="store_true",
                        help="[pipeline.challenge] frame_lock = false: onsets at any phase")
    parser.add_argument("--max-timing-residual", type=float,
                        help="override [pipeline.gates] max_timing_residual_steps")
    parser.add_argument("--max-ambient-fit-residual", type=float,
                        help="override [pipeline.gates] max_ambient_fit_residual_steps (2.0, its "
                        "bound: the second timing fit as good as off)")
    parser.add_argument("--patterns", type=int, default=400,
                        help="timing patterns tried per recording (all when fewer)")
    parser.add_argument("--pairs", type=int, default=300,
                        help="uniform draws from the whole space per recording")
    parser.add_argument("--profile", default="kiosk15_mipi")
    parser.add_argument("--size", default="640x480", help="camera width x height")
    parser.add_argument("--fps", type=float, help="camera frame rate (default: the profile's)")
    parser.add_argument("--physics", choices=("rgb", "spectral"), default="rgb")
    parser.add_argument("--face-shape", choices=("procedural", "scanned"), default="procedural")
    parser.add_argument("--seed", type=int, default=7000, help="first subject seed")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    overrides = {k: v for k, v in (("timing_steps", args.timing_steps),
                                   ("timing_step_us", args.timing_step_us),
                                   ("frame_lock_steps", args.frame_lock_steps),
                                   ("frame_lock", False if args.free_timing else None))
                 if v is not None}
    backend = create_backend(args.bundle, "onnxruntime", intra_op_threads=1)
    width, height = (int(v) for v in args.size.split("x"))
    kiosk = SimKiosk(PROFILE_BY_NAME[args.profile], width=width, height=height, seed=1,
                     face_shape=args.face_shape, physics=args.physics)
    recorder = CheckRecording(SimCamera(kiosk, fps=args.fps), SimFlashDriver(kiosk, colour=True))
    gates = {k: v for k, v in (("max_timing_residual_steps", args.max_timing_residual),
                               ("max_ambient_fit_residual_steps", args.max_ambient_fit_residual))
             if v is not None}
    config = PipelineConfig.model_validate({"latency_us": kiosk.latency_us,
                                            "challenge": overrides, "gates": gates})
    pipeline = Pipeline(recorder.camera, recorder.flash, GroundTruthLandmarks(), backend, config)
    family = pipeline.challenge_family
    timing, _ = pipeline.challenge_timing(recorder.camera.info())  # frame-locked where it can be
    space = challenge_space(config.challenge, family, timing)
    rng = random.Random(args.seed)
    started = time.monotonic()
    answers: dict[str, int] = {}
    per_recording = []
    live_residuals = []  # the timing fit of the live checks themselves: the margin to the limit
    live_ambient = []  # frame-locked: the same with the room light's ripple and drift fitted
    pipeline.start()
    try:
        for i in range(args.n):
            kiosk.set_subject(Subject(attack_type="live", scenario="office", seed=args.seed + i))
            time.sleep(0.1)
            result = pipeline.run_check()
            if result.reason is Reason.NO_CLEAN_FRAME:  # a starved simulated camera: ask again
                result = pipeline.run_check()
            key = f"{result.verdict.value}/{result.reason.value}"
            answers[key] = answers.get(key, 0) + 1
            if result.verdict is not Verdict.LIVE:
                print(f"seed {args.seed + i}: {key} {result.detail}", file=sys.stderr)
            if "timing_residual_steps" in result.detail:
                live_residuals.append(float(result.detail["timing_residual_steps"]))
            if "ambient_fit_residual_steps" in result.detail:
                live_ambient.append(float(result.detail["ambient_fit_residual_steps"]))
            playback = recorder.last_playback()
            if result.verdict is not Verdict.LIVE or playback is None:
                continue
            per_recording.append(_replay_everywhere(pipeline, space, recorder.take_frames(),
                                                    playback, config, rng, args))
            if len(per_recording) % 10 == 0:
                print(f"{i + 1}/{args.n}: {len(per_recording)} recordings, "
                      f"{_summary(per_recording, space)}", flush=True)
    finally:
        pipeline.stop()
    out = {
        "bundle": str(args.bundle),
        "family": family,
        "landmarks": "simulated kiosk ground truth",
        "profile": args.profile,
        "size": args.size,
        "fps": recorder.camera.info().fps,
        "physics": args.physics,
        "face_shape": args.face_shape,
        "max_timing_residual_steps": config.gates.max_timing_residual_steps,
        "max_ambient_fit_residual_steps": config.gates.max_ambient_fit_residual_steps,
        "frame_locked": timing.locked,
        "timing_steps": timing.steps,
        "timing_step_us": timing.step_us,
        "base_state_us": timing.base_us,
        "mean_sequence_ms": round(space.mean_sequence_us / 1000, 1),
        "safe_orders": len(space.play_orders),
        "timing_patterns": space.timing_patterns,
        "analytic_match_probability": 1.0 / space.size,
        "live_check_answers": answers,
        "live_timing_residual_steps": {
            q: round(float(np.percentile(live_residuals, v)), 3)
            for q, v in (("p50", 50), ("p95", 95), ("max", 100))
        } if live_residuals else None,
        "live_ambient_fit_residual_steps": {
            q: round(float(np.percentile(live_ambient, v)), 3)
            for q, v in (("p50", 50), ("p95", 95), ("max", 100))
        } if live_ambient else None,
        "recordings": len(per_recording),
        **_summary(per_recording, space),
        "minutes": round((time.monotonic() - started) / 60, 1),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


def _replay_everywhere(pipeline, space, frames, recorded, config, rng, args) -> dict:
    own_order = play_order_of(recorded.schedule)
    own_pattern = pattern_of(recorded.schedule, space.timing)
    # the camera's exposure sets the free base duration per check
    timing = dataclasses.replace(space.timing, base_us=recorded.schedule.state_duration_us)

    def passes(order, pattern) -> bool:
        challenge = space.schedule(order, pattern, timing)
        replay_frames, playback = replayed(frames, recorded, challenge, config.latency_us)
        try:
            pipeline.verify_frames(replay_frames, playback)
        except CheckRejected:
            return False
        return True

    if space.timing_patterns <= args.patterns:
        patterns = list(space.all_patterns())
    else:
        patterns = [space.pattern(j) for j in rng.sample(range(space.timing_patterns),
                                                         args.patterns)]
    others = [p for p in patterns if p != own_pattern]
    passing = [p for p in others if passes(own_order, p)]
    timing_passed = len(passing)
    if passing:  # which timings the frames could not tell apart, for the record
        print(f"order {own_order}, timing {own_pattern}: also passes {passing[:5]}",
              file=sys.stderr)
    orders_passed = sum(passes(o, own_pattern) for o in space.play_orders if o != own_order)
    pairs = sum(passes(space.play_orders[rng.randrange(len(space.play_orders))],
                       space.pattern(rng.randrange(space.timing_patterns)))
                for _ in range(args.pairs))
    return {"own_passes": passes(own_order, own_pattern), "timing_tried": len(others),
            "timing_passed": timing_passed, "orders_tried": len(space.play_orders) - 1,
            "orders_passed": orders_passed, "pairs_tried": args.pairs, "pairs_passed": pairs}


def _timing_share(r: dict, space) -> float:
    """The share of the recording's own order's timing patterns it passes (its own included)."""
    if not r["timing_tried"]:
        return 1.0
    others = r["timing_passed"] * (space.timing_patterns - 1) / r["timing_tried"]
    return (1 + others) / space.timing_patterns


def _summary(rows: list[dict], space) -> dict:
    if not rows:
        return {}
    # The share of the space each recording passes: its own challenge, plus the other timings
    # (own order) and the other orders (own timing) it passes, scaled to their slices.
    shares = np.array([_timing_share(r, space) for r in rows])
    p_timing = float(shares.mean())
    boot = np.random.default_rng(0).choice(shares, size=(2000, len(shares))).mean(axis=1)
    orders_tried = sum(r["orders_tried"] for r in rows)
    orders_passed = sum(r["orders_passed"] for r in rows)
    n_orders = len(space.play_orders)
    p_order = (1 + (n_orders - 1) * orders_passed / orders_tried) / n_orders
    p_order_ub = (1 + (n_orders - 1) * upper_bound_95(orders_passed, orders_tried)) / n_orders
    tries = sum(r["pairs_tried"] for r in rows)
    passed = sum(r["pairs_passed"] for r in rows)
    return {
        "own_challenge_passes": sum(r["own_passes"] for r in rows),
        "other_timings_passed": sum(r["timing_passed"] for r in rows),
        "other_timings_tried": sum(r["timing_tried"] for r in rows),
        "other_orders_passed": orders_passed,
        "other_orders_tried": orders_tried,
        "p_timing_given_order": p_timing,
        "p_timing_given_order_upper_95": float(np.percentile(boot, 95)),
        "p_order": p_order,
        "p_order_upper_95": p_order_ub,
        "match_probability_sliced": p_timing * p_order,
        "match_probability_sliced_upper_95": float(np.percentile(boot, 95)) * p_order_ub,
        "uniform_draws": tries,
        "uniform_draws_passed": passed,
        "match_probability_direct": passed / tries if tries else None,
        "direct_upper_bound_95": upper_bound_95(passed, tries),
    }


if __name__ == "__main__":
    sys.exit(main())
