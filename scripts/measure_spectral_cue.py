"""How far a colour challenge can tell skin from a skin-coloured paint (docs/RESULTS.md, masks).

Under the ``hue_levels`` challenge every pixel answers each display primary separately, so a check
measures a 3 × 3 response (camera channel × primary) instead of one RGB colour. Divided by its
sum, the response no longer depends on shading, distance or flash brightness: what is left is the
surface's spectrum as this camera sees it under these primaries. This script measures how much
of a difference that leaves between a person's skin and the paint an attacker mixed to match it
(sim/mask_attack.py: pigments mixed by eye under a workshop light), and how much of it a camera
can see:

1. **Physics alone** (``--people``): for every kiosk build of the simulator (its primaries and
   camera channels) and fresh identities, the normalised response of the skin and of its matched
   paint, exactly as the spectral renderer computes them, with no noise, no geometry and no
   camera. Reported: the mean and spread of the skin − paint difference per entry, the spread of
   the entry among people's skin, the Fisher discriminability d' of the best linear combination
   of the nine entries (skin against paint, per build, cross-validated) with the equal error it
   implies for Gaussian classes, Φ(−d'/2) — and **how large that difference is**: skin − paint
   along the Fisher direction (a unit vector) and skin's spread along it, beside d' along the
   plain mean difference, the direction that does not lean on skin's spread being small.
2. **What a camera measures** (``--render N``): N live and mask sessions of the test protocol,
   rendered as the dataset renders them; for each, the face's true response (the scene's own
   per-primary flash image over the estimator's face region) and the response the daemon's
   estimator measures from the frames (``pipeline/colour_response.py``: native resolution, each
   frame warped onto the ambient-only frame's face, the room light's drift and ripple fitted),
   and the same without the room-light model. Reported per build and scenario: the measurement
   error's spread (1.4826 × its median absolute deviation) along the Fisher direction and along
   the mean difference, against the physical difference there.
3. **On a stored split** (``--data``, a spectral hue-levels test split): the measured responses
   of its live and mask sessions, and d' for live against mask with the Fisher direction fitted
   on one half of each build's sessions and applied to the other, both ways.

    .venv/bin/python scripts/measure_spectral_cue.py --people 200
    .venv/bin/python scripts/measure_spectral_cue.py --people 200 --ablate paint_is_skin
    .venv/bin/python scripts/measure_spectral_cue.py --people 200 --render 200
    .venv/bin/python scripts/measure_spectral_cue.py --people 200 --data data/spec-A-test/test
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from flashfas_edge.data import Session, iter_sessions
from flashfas_edge.flash_levels import DEFAULT_LEVELS
from flashfas_edge.pipeline.colour_response import (
    ColourResponseError,
    estimate_colour_response,
    face_region_mask,
)
from flashfas_edge.pipeline.session_check import SessionInvalid, validate_session
from flashfas_edge.sim.device import PROFILE_BY_NAME, PROFILES
from flashfas_edge.sim.head import HeadIdentity
from flashfas_edge.sim.mask_attack import ABLATIONS, draw_mask
from flashfas_edge.sim.protocol import draw_request
from flashfas_edge.sim.scene import build_scene
from flashfas_edge.sim.schedule import ScheduleSpec
from flashfas_edge.sim.spectral_render import device_spectra, skin_material
from flashfas_edge.sim.synth_session import SessionOptions, render_session

HUE_FAMILY = "hue_levels"


def normalised_response(reflectance: np.ndarray, primary_channel: np.ndarray) -> np.ndarray:
    """[9]: the 3 primaries × 3 channels response of a reflectance, divided by its sum."""
    m = np.einsum("l,plc->pc", reflectance, primary_channel)
    return (m / m.sum()).ravel()


def fisher_dprime(a: np.ndarray, b: np.ndarray, fit: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> float:
    """d' of classes ``a`` and ``b`` [n, k] along the Fisher direction of ``fit`` (default: of
    ``a`` and ``b`` themselves)."""
    fa, fb = fit if fit is not None else (a, b)
    pooled = np.cov(fa.T) + np.cov(fb.T)
    pooled += 1e-9 * np.trace(pooled) / len(pooled) * np.eye(len(pooled))
    w = np.linalg.solve(pooled, fa.mean(axis=0) - fb.mean(axis=0))
    pa, pb = a @ w, b @ w
    return float(abs(pa.mean() - pb.mean()) / math.sqrt(0.5 * (pa.var() + pb.var()) + 1e-30))


def fisher_direction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Unit vector [k]: the Fisher direction separating ``a`` from ``b`` (pointing to ``a``)."""
    pooled = np.cov(a.T) + np.cov(b.T)
    pooled += 1e-9 * np.trace(pooled) / len(pooled) * np.eye(len(pooled))
    w = np.linalg.solve(pooled, a.mean(axis=0) - b.mean(axis=0))
    return w / np.linalg.norm(w)


def dprime_along(a: np.ndarray, b: np.ndarray, direction: np.ndarray) -> float:
    pa, pb = a @ direction, b @ direction
    return float(abs(pa.mean() - pb.mean()) / math.sqrt(0.5 * (pa.var() + pb.var()) + 1e-30))


def cross_validated_dprime(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """d' with the Fisher direction fitted on one random half of each class and measured on the
    other, both ways, averaged (in-sample d' grows with the number of entries alone)."""
    halves = []
    for cls in (a, b):
        order = rng.permutation(len(cls))
        halves.append((cls[order[: len(cls) // 2]], cls[order[len(cls) // 2:]]))
    (a1, a2), (b1, b2) = halves
    return 0.5 * (fisher_dprime(a2, b2, fit=(a1, b1)) + fisher_dprime(a1, b1, fit=(a2, b2)))


def equal_error_of(dprime: float) -> float:
    return 0.5 * math.erfc(dprime / 2 / math.sqrt(2))


def physics(people: int, seed: int, ablations: tuple[str, ...] = ()
            ) -> tuple[dict, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """(the report per build, per build the unit Fisher direction and the unit mean difference
    of skin against paint)."""
    builds = {}
    directions = {}
    for profile in PROFILES:
        device = device_spectra(profile)
        rng = np.random.default_rng(seed)
        skins, paints = [], []
        for _ in range(people):
            victim = HeadIdentity.draw(rng)
            skin = skin_material(victim.skin_rgb, device).reflectance
            _look, paint, _params = draw_mask(rng, victim, device, ablations=ablations)
            skins.append(normalised_response(skin, device.primary_channel))
            paints.append(normalised_response(paint.reflectance, device.primary_channel))
        s, p = np.array(skins), np.array(paints)
        d = cross_validated_dprime(s, p, np.random.default_rng(seed + 1))
        fisher = fisher_direction(s, p)
        shift = s.mean(axis=0) - p.mean(axis=0)
        mean_dir = shift / max(float(np.linalg.norm(shift)), 1e-30)
        directions[profile.name] = (fisher, mean_dir)
        builds[profile.name] = {
            "skin_mean": np.round(s.mean(axis=0), 4).tolist(),
            "skin_minus_paint_mean": np.round((s - p).mean(axis=0), 4).tolist(),
            "skin_minus_paint_sd": np.round((s - p).std(axis=0), 4).tolist(),
            "skin_sd_among_people": np.round(s.std(axis=0), 4).tolist(),
            "largest_entry_shift_in_skin_sds": round(float(
                np.max(np.abs((s - p).mean(axis=0)) / (s.std(axis=0) + 1e-12))), 2),
            "fisher_dprime": round(d, 2),
            "equal_error_rate": round(equal_error_of(d), 4),
            # how large the difference is that the Fisher direction finds (normalised units)
            "skin_minus_paint_along_fisher": float(f"{shift @ fisher:.3g}"),
            "skin_sd_along_fisher": float(f"{(s @ fisher).std():.3g}"),
            "skin_minus_paint_along_mean_shift": float(f"{shift @ mean_dir:.3g}"),
            "mean_shift_dprime": round(dprime_along(s, p, mean_dir), 2),
        }
    return builds, directions


def session_drives(session: Session) -> np.ndarray:
    """[K, 3]: each frame's state's drive of the R, G, B primaries (clean frames: one per state,
    in play order)."""
    return np.asarray(session.flash_rgb, np.float64) * np.asarray(
        session.flash_intensity, np.float64)[:, None]


def measure_session(session: Session, ripple_hz: tuple[float, ...] | None = None
                    ) -> np.ndarray | None:
    """[9]: the session's normalised response as the daemon's estimator measures it, with the
    camera's locked white balance divided out (the physics has none); None when the frames
    cannot give one. ``ripple_hz=()``: without the room-light model."""
    profile = PROFILE_BY_NAME[str(session.meta["device"])]
    kwargs = {} if ripple_hz is None else {"ripple_hz": ripple_hz}
    try:
        r = estimate_colour_response(list(session.frames), session_drives(session),
                                     session.frame_times_us.astype(np.float64),
                                     session.exposure_us, session.readout_us,
                                     session.landmarks, profile.gamma, **kwargs)
    except ColourResponseError:
        return None
    m = r.response / np.asarray(profile.wb_gains, np.float64)[None, :]
    return (m / m.sum()).ravel()


def _rendered(args: tuple[int, int]) -> dict | None:
    """One live or mask session of the test protocol, rendered as the dataset renders it: its
    true and measured normalised responses (None for prints and replays)."""
    seed, index = args
    req = draw_request(seed, index, "test")
    if req.attack_type not in ("live", "mask"):
        return None
    req = replace(req, physics="spectral", face_shape="scanned")
    scene = build_scene(req)
    session = render_session(req, SessionOptions(schedule=ScheduleSpec(family=HUE_FAMILY)), scene)
    first = session.landmarks[int(np.argmin(session_drives(session).sum(axis=1)))]
    region = face_region_mask(scene.flash.shape[:2], first)
    truth = scene.flash_primaries[region].sum(axis=0)
    measured = measure_session(session)
    plain = measure_session(session, ripple_hz=())
    if measured is None or plain is None:
        return None
    return {"index": index, "type": req.attack_type, "device": req.profile.name,
            "scenario": req.scenario, "truth": (truth / truth.sum()).ravel(),
            "measured": measured, "plain": plain}


def rendered(n: int, seed: int, directions: dict[str, tuple[np.ndarray, np.ndarray]],
             workers: int) -> dict:
    """The measurement error against the physical difference, per build (``--render``)."""
    from flashfas_edge.sim.synth_dataset import first_rendered

    rows = first_rendered(_rendered, seed, n, workers)
    report: dict = {}
    for build in sorted({r["device"] for r in rows}):
        fisher, mean_dir = directions[build]
        for scenario in sorted({r["scenario"] for r in rows}):
            mine = [r for r in rows if r["device"] == build and r["scenario"] == scenario]
            if not mine:
                continue
            entry: dict = {"live": sum(r["type"] == "live" for r in mine),
                           "mask": sum(r["type"] == "mask" for r in mine)}
            for name, direction in (("fisher", fisher), ("mean_shift", mean_dir)):
                for kind in ("measured", "plain"):
                    err = np.array([(r[kind] - r["truth"]) @ direction for r in mine])
                    entry[f"{kind}_error_along_{name}"] = float(f"{robust_sd(err):.3g}")
            entry["measured_error_per_entry"] = np.round(
                [robust_sd(e) for e in np.array([r["measured"] - r["truth"] for r in mine]).T],
                4).tolist()
            report[f"{build}, {scenario}"] = entry
    return report


def robust_sd(x: np.ndarray) -> float:
    """The spread of ``x`` as 1.4826 × its median absolute deviation (the sd of a normal
    distribution; a few checks where the flash is lost in sunlight do not dominate it)."""
    x = np.asarray(x, np.float64)
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def measured(folder: Path, seed: int) -> dict:
    """Cross-validated d' of live against mask per build, on a stored hue-levels split."""
    rows: dict[str, dict[str, list[np.ndarray]]] = {}
    skipped = 0
    for session in iter_sessions(folder):
        if session.attack_type not in ("live", "mask"):
            continue
        try:  # the daemon's own check that a recording carries the hue ladder
            validate_session(session, len(DEFAULT_LEVELS), HUE_FAMILY)
        except SessionInvalid as exc:
            raise SystemExit(f"{folder}: {exc} (render it with --challenge hue_levels)") from exc
        response = measure_session(session)
        if response is None:
            skipped += 1
            continue
        build = rows.setdefault(str(session.meta["device"]), {"live": [], "mask": []})
        build[str(session.attack_type)].append(response)
    report: dict = {"skipped": skipped}
    for name, build in sorted(rows.items()):
        live, mask = np.array(build["live"]), np.array(build["mask"])
        if len(live) < 4 or len(mask) < 4:
            continue
        d = cross_validated_dprime(live, mask, np.random.default_rng(seed))
        report[name] = {
            "live": len(live), "mask": len(mask),
            "live_minus_mask_mean": np.round(live.mean(axis=0) - mask.mean(axis=0), 4).tolist(),
            "live_sd": np.round(live.std(axis=0), 4).tolist(),
            "fisher_dprime_cross_validated": round(d, 2),
            "equal_error_rate": round(equal_error_of(d), 4),
        }
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=200, help="identities per kiosk build")
    parser.add_argument("--render", type=int, default=0,
                        help="live and mask test sessions to render and measure (0: none)")
    parser.add_argument("--data", type=Path, help="a spectral hue-levels split to measure on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="processes for --render")
    parser.add_argument("--ablate", choices=ABLATIONS, action="append", default=[],
                        help="physics part: the renderer's ablation (paint_is_skin: the paint "
                        "gets the victim's own skin spectrum, so the cue must vanish)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    builds, directions = physics(args.people, args.seed, tuple(args.ablate))
    report: dict = {"entries": "primary (R, G, B) × camera channel (R, G, B), row-major",
                    "ablations": args.ablate, "physics": builds}
    print(f"physics alone, {args.people} people per kiosk build (normalised 3 × 3 response"
          f"{', ablated: ' + ', '.join(args.ablate) if args.ablate else ''}):")
    print(f"{'build':16}{'d_prime':>8}{'EER':>7}{'shift/sd':>9}{'along Fisher: skin-paint':>26}"
          f"{'skin sd':>9}{'mean-shift d_prime':>20}")
    for name, row in builds.items():
        print(f"{name:16}{row['fisher_dprime']:8.2f}{100 * row['equal_error_rate']:6.1f}%"
              f"{row['largest_entry_shift_in_skin_sds']:9.2f}"
              f"{row['skin_minus_paint_along_fisher']:26.2g}{row['skin_sd_along_fisher']:9.2g}"
              f"{row['mean_shift_dprime']:20.2f}")
    if args.render:
        report["rendered"] = rendered(args.render, args.seed + 51, directions, args.workers)
        print(f"what a camera measures ({args.render} rendered live and mask test sessions): the "
              "measurement's error (robust sd) along each direction (room light modelled / not)")
        for name, row in report["rendered"].items():
            build = name.split(",")[0]
            phys = builds[build]
            print(f"  {name:26} live {row['live']:3d} mask {row['mask']:3d}  along Fisher "
                  f"{row['measured_error_along_fisher']:.2g} / "
                  f"{row['plain_error_along_fisher']:.2g} against a difference of "
                  f"{phys['skin_minus_paint_along_fisher']:.2g};  along the mean shift "
                  f"{row['measured_error_along_mean_shift']:.2g} / "
                  f"{row['plain_error_along_mean_shift']:.2g} against "
                  f"{phys['skin_minus_paint_along_mean_shift']:.2g}")
    if args.data is not None:
        report["measured"] = measured(args.data, args.seed)
        for name, m in report["measured"].items():
            if name == "skipped":
                continue
            print(f"as a check measures it ({args.data}, {name}, {m['live']} live, {m['mask']} "
                  f"masks): cross-validated d' {m['fisher_dprime_cross_validated']:.2f}, "
                  f"EER {100 * m['equal_error_rate']:.1f} %")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
